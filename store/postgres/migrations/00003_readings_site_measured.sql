-- A site's readings in (measured_at, seq) order, for the board's trends
-- (GET /v1/trials/{trial}/sites/{site}/trends): one range scan over the
-- window, newest first, instead of a walk through every patient's history.
--
-- Built CONCURRENTLY, outside a transaction, so that adding it to a large
-- readings table does not hold up ingest while it builds. A build that
-- failed half-way leaves an invalid index of this name behind, so the
-- migration drops any first and can simply run again.

-- +goose NO TRANSACTION
-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS readings_site_measured;
CREATE INDEX CONCURRENTLY readings_site_measured
    ON readings (trial_id, site_id, measured_at, measured_ns, seq);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS readings_site_measured;
