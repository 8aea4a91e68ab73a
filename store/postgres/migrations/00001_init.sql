-- The PostgreSQL schema of Vigil's store. It keeps the meaning of the SQLite
-- schema (store/sqlite/migrations) in PostgreSQL's types:
--
-- Times are timestamptz, which keeps microseconds. Where a caller's time must
-- come back exactly (a reading's measured_at and received_at, to the
-- nanosecond), the nanoseconds below the microsecond are kept beside it in a
-- *_ns column (0..999), and every order and range uses the pair. Times the
-- store makes itself (alert, audit, registry and outbox times) are truncated
-- to the microsecond before they are used, so what is returned is what is
-- stored.
--
-- Identifiers are COLLATE "C": lists ordered by id (patients, alerts, trials)
-- sort by bytes, as in SQLite and in Go, whatever the database's locale.
--
-- Documents are json where the bytes are the record (readings and scores,
-- written on the hot path and never queried by content) and jsonb where the
-- database may one day look inside (alerts, protocols, patients, outbox).
-- Audit values are text: their bytes are hashed.

-- +goose Up
CREATE TABLE readings (
    seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Idempotency across nodes: one row per reading id, whoever inserts it.
    reading_id   text        COLLATE "C" NOT NULL UNIQUE,
    patient_id   text        COLLATE "C" NOT NULL,
    trial_id     text        COLLATE "C" NOT NULL,
    site_id      text        COLLATE "C" NOT NULL,
    measured_at  timestamptz NOT NULL,
    measured_ns  smallint    NOT NULL CHECK (measured_ns BETWEEN 0 AND 999),
    received_at  timestamptz NOT NULL,
    received_ns  smallint    NOT NULL CHECK (received_ns BETWEEN 0 AND 999),
    -- The reading exactly as the client sent it (ALCOA: original).
    payload      bytea       NOT NULL,
    reading_json json        NOT NULL,
    content_hash text        NOT NULL
);

-- A patient's readings in (measured_at, seq) order: the history, the latest
-- reading (one step back from the end of the range) and the model's window.
CREATE INDEX readings_patient_measured
    ON readings (trial_id, site_id, patient_id, measured_at, measured_ns, seq);

-- Scores live apart from readings so that scoring never rewrites a reading
-- (ALCOA++: original). The primary key makes the first score win.
CREATE TABLE scores (
    reading_id    text        COLLATE "C" PRIMARY KEY REFERENCES readings (reading_id),
    score_json    json        NOT NULL,
    rules_version text        NOT NULL,
    model_version text,
    risk          text        NOT NULL,
    scored_at     timestamptz NOT NULL
);

-- The work left for the scorer, kept by triggers: derived state, not a
-- record, so deleting from it obscures nothing.
CREATE TABLE unscored (
    seq         bigint      PRIMARY KEY REFERENCES readings (seq),
    received_at timestamptz NOT NULL,
    received_ns smallint    NOT NULL
);
CREATE INDEX unscored_received ON unscored (received_at, received_ns, seq);

CREATE TABLE alerts (
    alert_id           text        COLLATE "C" PRIMARY KEY,
    patient_id         text        COLLATE "C" NOT NULL,
    trial_id           text        COLLATE "C" NOT NULL,
    site_id            text        COLLATE "C" NOT NULL,
    severity           text        NOT NULL,
    status             text        NOT NULL
        CHECK (status IN ('open', 'acknowledged', 'escalated', 'resolved')),
    reasons            jsonb       NOT NULL,
    reading_id         text        COLLATE "C",
    opened_at          timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    alert_json         jsonb       NOT NULL,
    -- When the next escalation tier is due (NULL: none, e.g. acknowledged).
    next_escalation_at timestamptz
);

-- One unresolved alert per patient, enforced by the database for every node;
-- it also finds that alert in one probe.
CREATE UNIQUE INDEX alerts_unresolved_patient
    ON alerts (trial_id, site_id, patient_id) WHERE status <> 'resolved';
CREATE INDEX alerts_updated ON alerts (updated_at DESC, alert_id);
CREATE INDEX alerts_site_updated
    ON alerts (trial_id, site_id, updated_at DESC, alert_id);
CREATE INDEX alerts_escalation_due ON alerts (next_escalation_at)
    WHERE next_escalation_at IS NOT NULL AND status <> 'resolved';

-- The audit trail of every change to an alert, a protocol or a registry
-- record: who, what (entity, action, old and new value), when, why and, for
-- signed actions, the meaning. prev_hash/hash chain the records (package
-- auditlog). Ids are assigned by the appender, without gaps, under the lock
-- on audit_head.
CREATE TABLE audit (
    id          bigint      PRIMARY KEY,
    entity_type text        NOT NULL,
    entity_id   text        COLLATE "C" NOT NULL,
    actor       text        NOT NULL,
    actor_name  text        NOT NULL DEFAULT '',
    actor_role  text        NOT NULL DEFAULT '',
    action      text        NOT NULL,
    reason      text        NOT NULL DEFAULT '',
    meaning     text        NOT NULL DEFAULT '',
    old_value   text,
    new_value   text,
    at          timestamptz NOT NULL,
    prev_hash   text        NOT NULL DEFAULT '',
    hash        text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_entity ON audit (entity_type, entity_id, id);

-- The head of the chain: one row, locked (SELECT ... FOR UPDATE) by every
-- append until its transaction ends, so appends from every node are
-- serialised and no two records can claim one predecessor. last_id is the
-- highest id ever issued (SQLite's sqlite_sequence): a deletion from the end
-- of the trail shows as a shortfall against it.
CREATE TABLE audit_head (
    id        integer PRIMARY KEY CHECK (id = 1),
    last_id   bigint  NOT NULL,
    last_hash text    NOT NULL
);
INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, '');

-- Statement-level, with transition tables: one INSERT … SELECT per batch of
-- readings rather than a trigger call per row.

-- +goose StatementBegin
CREATE FUNCTION vigil_enqueue_unscored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO unscored (seq, received_at, received_ns)
    SELECT seq, received_at, received_ns FROM new_readings;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION vigil_dequeue_unscored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM unscored u
    USING new_scores n, readings r
    WHERE r.reading_id = n.reading_id AND u.seq = r.seq;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER readings_enqueue AFTER INSERT ON readings
    REFERENCING NEW TABLE AS new_readings
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_enqueue_unscored();
CREATE TRIGGER scores_dequeue AFTER INSERT ON scores
    REFERENCING NEW TABLE AS new_scores
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_dequeue_unscored();

-- Readings, scores and the audit trail are append-only (21 CFR 11.10(e),
-- ALCOA++). These triggers make a stray UPDATE, DELETE or TRUNCATE fail
-- loudly instead of silently rewriting history. TG_ARGV[0] is the message.

-- +goose StatementBegin
CREATE FUNCTION vigil_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER readings_immutable BEFORE UPDATE OR DELETE ON readings
    FOR EACH ROW EXECUTE FUNCTION vigil_append_only('readings are append-only');
CREATE TRIGGER readings_no_truncate BEFORE TRUNCATE ON readings
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_append_only('readings are append-only');
CREATE TRIGGER scores_immutable BEFORE UPDATE OR DELETE ON scores
    FOR EACH ROW EXECUTE FUNCTION vigil_append_only('scores are append-only');
CREATE TRIGGER scores_no_truncate BEFORE TRUNCATE ON scores
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_append_only('scores are append-only');
CREATE TRIGGER audit_immutable BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION vigil_append_only('the audit trail is append-only');
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_append_only('the audit trail is append-only');

-- The bus's per-room offsets, so a restarted node continues them instead of
-- reusing numbers a client already holds.
CREATE TABLE room_offsets (
    room        text   COLLATE "C" PRIMARY KEY,
    last_offset bigint NOT NULL
);

-- One row: whether the offsets were saved by a clean shutdown (exact) or are
-- only as recent as the last periodic save. A new database is clean.
CREATE TABLE room_offsets_state (
    id    integer PRIMARY KEY CHECK (id = 1),
    clean boolean NOT NULL
);
INSERT INTO room_offsets_state (id, clean) VALUES (1, true);

-- Trial protocols and the patient registry. Each row is the current version
-- of its record; every earlier version is in the audit trail, so replacing a
-- row here obscures nothing. version/updated_at are authoritative over the
-- copies inside doc.
CREATE TABLE protocols (
    trial_id   text        COLLATE "C" PRIMARY KEY,
    doc        jsonb       NOT NULL,
    version    integer     NOT NULL CHECK (version > 0),
    updated_at timestamptz NOT NULL
);

-- created_at is the first registration and never changes: an enrolled
-- patient who never reported is silent since then (SilentPatients).
CREATE TABLE patients (
    trial_id   text        COLLATE "C" NOT NULL,
    site_id    text        COLLATE "C" NOT NULL,
    patient_id text        COLLATE "C" NOT NULL,
    status     text        NOT NULL CHECK (status IN ('enrolled', 'withdrawn')),
    doc        jsonb       NOT NULL,
    version    integer     NOT NULL CHECK (version > 0),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (trial_id, site_id, patient_id)
);

-- The durable outbox of notifications, written in the same transaction as
-- the alert change that calls for it. alert_id is deliberately not a foreign
-- key: a row is a self-contained message.
CREATE TABLE notifications (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        text        COLLATE "C" NOT NULL,
    trial_id        text        COLLATE "C" NOT NULL,
    tier            integer     NOT NULL,
    channel         jsonb       NOT NULL,
    payload         jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'dead', 'cancelled')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz
);

-- What dispatchers poll: only pending rows, in the order they fall due.
CREATE INDEX notifications_due ON notifications (next_attempt_at, id)
    WHERE status = 'pending';
CREATE INDEX notifications_alert ON notifications (alert_id, id);
CREATE INDEX notifications_trial ON notifications (trial_id, id);
CREATE INDEX notifications_status ON notifications (status, id);

-- +goose Down
DROP TABLE notifications;
DROP TABLE patients;
DROP TABLE protocols;
DROP TABLE room_offsets_state;
DROP TABLE room_offsets;
DROP TABLE audit_head;
DROP TABLE audit;
DROP TABLE alerts;
DROP TABLE unscored;
DROP TABLE scores;
DROP TABLE readings;
DROP FUNCTION vigil_append_only();
DROP FUNCTION vigil_dequeue_unscored();
DROP FUNCTION vigil_enqueue_unscored();
