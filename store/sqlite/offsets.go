package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// RoomOffsets implements store.Store.
func (s *Store) RoomOffsets(ctx context.Context) (map[string]uint64, bool, error) {
	var clean bool
	if err := s.rdb.QueryRowContext(ctx, `SELECT clean FROM room_offsets_state WHERE id = 1`).Scan(&clean); err != nil {
		return nil, false, fmt.Errorf("sqlite: room offsets state: %w", err)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT room, last_offset FROM room_offsets`)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: room offsets: %w", err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var (
			room string
			off  int64
		)
		if err := rows.Scan(&room, &off); err != nil {
			return nil, false, fmt.Errorf("sqlite: room offsets: %w", err)
		}
		out[room] = uint64(off)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("sqlite: room offsets: %w", err)
	}
	return out, clean, nil
}

// SaveRoomOffsets implements store.Store. Offsets only ever rise: a stale
// save cannot lower a room's stored offset.
func (s *Store) SaveRoomOffsets(ctx context.Context, offsets map[string]uint64, clean bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for room, off := range offsets {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO room_offsets (room, last_offset) VALUES (?, ?)
				ON CONFLICT (room) DO UPDATE SET last_offset = max(last_offset, excluded.last_offset)`,
				room, int64(off)); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE room_offsets_state SET clean = ? WHERE id = 1`, clean)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: save room offsets: %w", err)
	}
	return nil
}
