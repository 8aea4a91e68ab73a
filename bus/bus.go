// Package bus owns the fan-out of events between the scoring pipeline and the
// WebSocket hubs: per-room ordered offsets, a bounded per-room history for
// recovery, and delivery to subscribed nodes. The in-process Memory broker
// serves one node; a Redis broker serves several. It imports nothing of Vigil's.
package bus

import (
	"context"
	"errors"
)

// Event is one published message in a room. Offsets in a room start at 1 and
// each next event's offset is the one before plus one, so gaps are visible.
type Event struct {
	Room   string `json:"room"`
	Offset uint64 `json:"offset"`
	Data   []byte `json:"data"`
}

// Reset is the event a broker delivers when every room's offsets restarted
// under a new epoch (Redis lost its data): offsets its subscribers hold mean
// nothing now, and they must take a fresh snapshot. A reset of one room
// (Event{Room: room}) means this node lost events of that room that history
// no longer holds. Real events never have offset 0.
var Reset = Event{}

// IsReset reports whether e is a reset, of every room (Room empty) or of
// e.Room.
func (e Event) IsReset() bool { return e.Offset == 0 }

// ErrUnrecoverable means History cannot return every event after the
// requested offset (it fell out of the bounded buffer, or the offset belongs
// to another epoch); the subscriber must take a fresh snapshot instead.
var ErrUnrecoverable = errors.New("bus: history cannot cover the requested offset")

// ErrClosed is returned by a broker's operations after Close.
var ErrClosed = errors.New("bus: broker closed")

// Handler receives every event of the rooms the node is subscribed to, in
// offset order per room. It must not block for long: it runs on the broker's
// delivery path.
type Handler func(Event)

// Broker is what a hub needs from a bus. Its shape follows centrifuge's
// Broker: the node subscribes once per room, whatever the number of sessions.
type Broker interface {
	// Publish appends data to the room's history under the next offset and
	// delivers it to subscribed nodes. An event must be visible to History
	// before any node receives it: a hub joining a room relies on this to
	// find, in history, every event it was not yet subscribed to receive.
	Publish(ctx context.Context, room string, data []byte) (Event, error)
	// History returns the events with offsets greater than since, in order,
	// and the room's latest offset. It returns ErrUnrecoverable (with latest
	// set) when it cannot return all of them. A since beyond latest is always
	// ErrUnrecoverable, so History(ctx, room, math.MaxUint64) asks for latest
	// alone.
	History(ctx context.Context, room string, since uint64) (events []Event, latest uint64, err error)
	// Epoch identifies the room's offset sequence; it changes when offsets
	// restart (for the in-process broker, at every process start), so a client
	// holding offsets from another epoch knows it cannot recover.
	Epoch() string
	// Subscribe makes the node receive the room's events through the handler.
	Subscribe(ctx context.Context, room string) error
	// Unsubscribe stops delivery of the room's events to this node.
	Unsubscribe(ctx context.Context, room string) error
	// SetHandler installs the delivery handler; call it before Subscribe.
	SetHandler(h Handler)
	// Ping reports whether the broker can take publishes.
	Ping(ctx context.Context) error
	Close() error
}

// SiteRoom and TrialRoom name the rooms of DESIGN.md.
func SiteRoom(trial, site string) string { return "site:" + trial + ":" + site }

// TrialRoom names a trial's room.
func TrialRoom(trial string) string { return "trial:" + trial }
