-- +goose Up
-- A site's readings in measured_at order, for the board's trends
-- (GET /v1/trials/{trial}/sites/{site}/trends): one range scan over the
-- window, newest first, instead of a walk through every patient's history.
-- seq is the rowid, so it is implicitly the last column.
CREATE INDEX readings_site_measured ON readings (trial_id, site_id, measured_at);

-- +goose Down
DROP INDEX readings_site_measured;
