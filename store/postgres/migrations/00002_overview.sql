-- +goose Up
-- One patient's alerts, newest update first (GET /v1/alerts?patient=).
CREATE INDEX alerts_patient_updated
    ON alerts (trial_id, site_id, patient_id, updated_at DESC, alert_id);
-- A trial's recently opened alerts (the overview's time to acknowledge).
CREATE INDEX alerts_trial_opened ON alerts (trial_id, opened_at);

-- +goose Down
DROP INDEX alerts_trial_opened;
DROP INDEX alerts_patient_updated;
