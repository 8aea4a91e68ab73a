package postgres

import (
	"context"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
)

// RoomOffsets implements store.Store.
func (s *Store) RoomOffsets(ctx context.Context) (map[string]uint64, bool, error) {
	var clean bool
	if err := s.pool.QueryRow(ctx, `SELECT clean FROM room_offsets_state WHERE id = 1`).Scan(&clean); err != nil {
		return nil, false, fmt.Errorf("postgres: room offsets state: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT room, last_offset FROM room_offsets`)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: room offsets: %w", err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var (
			room string
			off  int64
		)
		if err := rows.Scan(&room, &off); err != nil {
			return nil, false, fmt.Errorf("postgres: room offsets: %w", err)
		}
		out[room] = uint64(off)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("postgres: room offsets: %w", err)
	}
	return out, clean, nil
}

// SaveRoomOffsets implements store.Store. Offsets only ever rise: a stale
// save (from this node or another) cannot lower a room's stored offset.
func (s *Store) SaveRoomOffsets(ctx context.Context, offsets map[string]uint64, clean bool) error {
	rooms := make([]string, 0, len(offsets))
	offs := make([]int64, 0, len(offsets))
	for room, off := range offsets {
		if off > math.MaxInt64 {
			return fmt.Errorf("postgres: save room offsets: room %s: offset %d out of range", room, off)
		}
		rooms = append(rooms, room)
		offs = append(offs, int64(off))
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		if len(rooms) > 0 {
			// Sorted by room (the unnest's ORDER BY), so concurrent saves
			// lock rows in one order.
			b.Queue(`
				INSERT INTO room_offsets (room, last_offset)
				SELECT room, last_offset FROM unnest($1::text[], $2::int8[]) AS u(room, last_offset)
				ORDER BY room
				ON CONFLICT (room) DO UPDATE
					SET last_offset = GREATEST(room_offsets.last_offset, excluded.last_offset)`,
				rooms, offs)
		}
		b.Queue(`UPDATE room_offsets_state SET clean = $1 WHERE id = 1`, clean)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: save room offsets: %w", err)
	}
	return nil
}
