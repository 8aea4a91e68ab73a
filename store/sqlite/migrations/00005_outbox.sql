-- +goose Up
-- The durable outbox of notifications: a row is written in the same
-- transaction as the alert change that calls for it, and the dispatcher
-- delivers it later, so a crash between "escalated" and "paged" cannot lose
-- the page (at worst it is sent twice, which receivers can detect by id).
--
-- alert_id is deliberately not a foreign key: a row is a self-contained
-- message (payload is the alert as it was when the notification was made),
-- and delivery never reads the alerts table.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id        TEXT    NOT NULL,
    trial_id        TEXT    NOT NULL,
    tier            INTEGER NOT NULL,
    channel         TEXT    NOT NULL CHECK (json_valid(channel)),
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    status          TEXT    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'dead', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      TEXT    NOT NULL,
    sent_at         TEXT
);

-- What the dispatcher polls: only pending rows, in the order they fall due.
-- Sent and dead rows, the bulk of the table over time, are not in it.
CREATE INDEX notifications_due ON notifications (next_attempt_at, id)
    WHERE status = 'pending';
-- Notifications(q) lists newest first by id, filtered by one of these.
CREATE INDEX notifications_alert ON notifications (alert_id, id);
CREATE INDEX notifications_trial ON notifications (trial_id, id);
CREATE INDEX notifications_status ON notifications (status, id);

-- +goose Down
DROP TABLE notifications;
