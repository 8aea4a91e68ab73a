-- +goose Up
-- The in-process bus's per-room offsets, so a restarted node continues them
-- instead of reusing numbers a client already holds.
CREATE TABLE room_offsets (
    room        TEXT PRIMARY KEY,
    last_offset INTEGER NOT NULL
) WITHOUT ROWID;

-- One row: whether the offsets were saved by a clean shutdown (exact) or are
-- only as recent as the last periodic save.
CREATE TABLE room_offsets_state (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    clean INTEGER NOT NULL
);
-- A new database is clean: no room has published, so offsets start at 1.
INSERT INTO room_offsets_state (id, clean) VALUES (1, 1);

-- +goose Down
DROP TABLE room_offsets_state;
DROP TABLE room_offsets;
