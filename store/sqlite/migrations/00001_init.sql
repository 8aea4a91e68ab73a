-- Times are UTC text in one fixed-width layout (2006-01-02T15:04:05.000000000Z)
-- so that they stay legible to an auditor and sort as strings. Column types
-- are plain TEXT on purpose: modernc.org/sqlite turns DATETIME/TIMESTAMP
-- columns into time.Time behind our back.

-- +goose Up
CREATE TABLE readings (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    reading_id   TEXT    NOT NULL UNIQUE,
    patient_id   TEXT    NOT NULL,
    trial_id     TEXT    NOT NULL,
    site_id      TEXT    NOT NULL,
    measured_at  TEXT    NOT NULL,
    received_at  TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    reading_json TEXT    NOT NULL,
    content_hash TEXT    NOT NULL
);

-- seq is the rowid, so it is implicitly the last column of this index: the
-- latest reading of a patient is one backwards step, ties broken by seq.
CREATE INDEX readings_patient_measured
    ON readings (trial_id, site_id, patient_id, measured_at);

-- Scores live apart from readings so that scoring never rewrites a reading
-- (ALCOA++: original). The primary key makes the first score win.
CREATE TABLE scores (
    reading_id    TEXT PRIMARY KEY REFERENCES readings (reading_id),
    score_json    TEXT NOT NULL,
    rules_version TEXT NOT NULL,
    model_version TEXT,
    risk          TEXT NOT NULL,
    scored_at     TEXT NOT NULL
);

-- The work left for the scorer. Finding unscored readings by anti-joining
-- readings with scores would scan the whole history on every recovery pass;
-- this queue holds only the backlog. It is derived state kept by triggers,
-- not a record, so deleting from it obscures nothing.
CREATE TABLE unscored (
    seq         INTEGER PRIMARY KEY REFERENCES readings (seq),
    received_at TEXT NOT NULL
);
CREATE INDEX unscored_received ON unscored (received_at);

CREATE TABLE alerts (
    alert_id    TEXT PRIMARY KEY,
    patient_id  TEXT NOT NULL,
    trial_id    TEXT NOT NULL,
    site_id     TEXT NOT NULL,
    severity    TEXT NOT NULL,
    status      TEXT NOT NULL
        CHECK (status IN ('open', 'acknowledged', 'escalated', 'resolved')),
    reasons     TEXT NOT NULL,
    reading_id  TEXT,
    opened_at   TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    alert_json  TEXT NOT NULL
);

-- One unresolved alert per patient, enforced by the database and not only by
-- the serialised writer; it also finds that alert in one probe.
CREATE UNIQUE INDEX alerts_unresolved_patient
    ON alerts (trial_id, site_id, patient_id) WHERE status <> 'resolved';
CREATE INDEX alerts_updated ON alerts (updated_at DESC, alert_id);
CREATE INDEX alerts_site_updated
    ON alerts (trial_id, site_id, updated_at DESC, alert_id);

-- The audit trail of every change to an alert, a protocol or a registry
-- record: who (sub, name, role), what (entity, action, old and new value),
-- when (server UTC), why (reason) and, for signed actions, the meaning.
-- prev_hash/hash chain the records so an edit or deletion is detectable.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    actor_name  TEXT NOT NULL DEFAULT '',
    actor_role  TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    meaning     TEXT NOT NULL DEFAULT '',
    old_value   TEXT,
    new_value   TEXT,
    at          TEXT NOT NULL,
    prev_hash   TEXT NOT NULL DEFAULT '',
    hash        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_entity ON audit (entity_type, entity_id, id);

-- +goose StatementBegin
CREATE TRIGGER readings_enqueue AFTER INSERT ON readings
BEGIN
    INSERT INTO unscored (seq, received_at) VALUES (NEW.seq, NEW.received_at);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER scores_dequeue AFTER INSERT ON scores
BEGIN
    DELETE FROM unscored
    WHERE seq = (SELECT seq FROM readings WHERE reading_id = NEW.reading_id);
END;
-- +goose StatementEnd

-- Readings, scores and the audit trail are append-only (21 CFR 11.10(e),
-- ALCOA++). These triggers make a stray UPDATE or DELETE fail loudly instead
-- of silently rewriting history.

-- +goose StatementBegin
CREATE TRIGGER readings_immutable_update BEFORE UPDATE ON readings
BEGIN
    SELECT RAISE(ABORT, 'readings are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER readings_immutable_delete BEFORE DELETE ON readings
BEGIN
    SELECT RAISE(ABORT, 'readings are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER scores_immutable_update BEFORE UPDATE ON scores
BEGIN
    SELECT RAISE(ABORT, 'scores are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER scores_immutable_delete BEFORE DELETE ON scores
BEGIN
    SELECT RAISE(ABORT, 'scores are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_immutable_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_immutable_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE audit;
DROP TABLE alerts;
DROP TABLE unscored;
DROP TABLE scores;
DROP TABLE readings;
