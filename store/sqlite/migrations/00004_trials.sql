-- +goose Up
-- Trial protocols and the patient registry. Each row is the current version
-- of its record; every earlier version is in the audit trail (old_value and
-- new_value of each protocol.put / patient.put record), so replacing a row
-- here obscures nothing. doc is the record's JSON; the columns beside it are
-- what queries filter on, and version/updated_at are authoritative over the
-- copies inside doc.
CREATE TABLE protocols (
    trial_id   TEXT    PRIMARY KEY,
    doc        TEXT    NOT NULL CHECK (json_valid(doc)),
    version    INTEGER NOT NULL CHECK (version > 0),
    updated_at TEXT    NOT NULL
) WITHOUT ROWID;

-- created_at is the first registration and never changes: an enrolled
-- patient who never reported is silent since then (SilentPatients).
CREATE TABLE patients (
    trial_id   TEXT    NOT NULL,
    site_id    TEXT    NOT NULL,
    patient_id TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('enrolled', 'withdrawn')),
    doc        TEXT    NOT NULL CHECK (json_valid(doc)),
    version    INTEGER NOT NULL CHECK (version > 0),
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (trial_id, site_id, patient_id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE patients;
DROP TABLE protocols;
