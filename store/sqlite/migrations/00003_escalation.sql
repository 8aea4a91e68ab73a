-- +goose Up
-- When an unresolved alert's next escalation tier is due (NULL: none, e.g.
-- acknowledged). The scheduler polls the index; the state lives here, not in
-- memory, so escalation survives a restart.
ALTER TABLE alerts ADD COLUMN next_escalation_at TEXT;
CREATE INDEX alerts_escalation_due ON alerts (next_escalation_at)
    WHERE next_escalation_at IS NOT NULL AND status <> 'resolved';

-- +goose Down
DROP INDEX alerts_escalation_due;
ALTER TABLE alerts DROP COLUMN next_escalation_at;
