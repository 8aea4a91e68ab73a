package bus

import (
	"context"
	"crypto/rand"
	"sync"
	"sync/atomic"
)

// DefaultHistorySize is the number of events a Memory broker keeps per room
// when NewMemory is given a size of zero or less.
const DefaultHistorySize = 1000

// Memory is the in-process Broker of a single node. Every room keeps its
// offset counter and a ring of its latest events. Rooms are never forgotten:
// they are trials and sites, a small and slowly growing set, and forgetting one
// would restart its offsets under the same epoch.
type Memory struct {
	epoch string
	size  int
	// start and startDefault are the offsets rooms continue after, published
	// by an earlier process (see WithStartOffsets).
	start        map[string]uint64
	startDefault uint64

	handler atomic.Pointer[Handler]
	closed  atomic.Bool

	mu    sync.RWMutex
	rooms map[string]*memRoom
}

type memRoom struct {
	// mu is held across append and delivery so that the handler sees a room's
	// events in offset order even with concurrent publishers.
	mu     sync.Mutex
	latest uint64
	// base is the room's latest offset when this process took it over;
	// events up to base are not in the ring.
	base uint64
	// ring holds the latest events, the one with offset o at
	// ring[(o-base-1)%size]. It grows to size as events come rather than
	// being allocated whole: a node knows a thousand rooms, most of them
	// quiet, and a full ring of each would cost megabytes before any event.
	ring       []Event
	subscribed bool
}

var _ Broker = (*Memory)(nil)

// MemoryOption configures a Memory broker.
type MemoryOption func(*Memory)

// WithStartOffsets makes rooms continue the offsets of an earlier process
// instead of starting at 1: a room in offsets continues after its value,
// every other room after def. A client that sends DESIGN.md's since without
// an epoch then sees its old offset fall before the room's history and is
// told recovered:false, rather than being "recovered" into a different
// sequence that reused its numbers.
func WithStartOffsets(offsets map[string]uint64, def uint64) MemoryOption {
	return func(m *Memory) {
		m.start = make(map[string]uint64, len(offsets))
		for k, v := range offsets {
			m.start[k] = v
		}
		m.startDefault = def
	}
}

// NewMemory returns an in-process broker keeping the last historySize events
// of every room (DefaultHistorySize when historySize <= 0).
func NewMemory(historySize int, opts ...MemoryOption) *Memory {
	if historySize <= 0 {
		historySize = DefaultHistorySize
	}
	// A fresh epoch lets a client holding offsets from before a restart see
	// that they no longer mean anything.
	m := &Memory{epoch: rand.Text(), size: historySize, rooms: make(map[string]*memRoom)}
	for _, o := range opts {
		o(m)
	}
	return m
}

// startOf is the offset a room continues after.
func (m *Memory) startOf(room string) uint64 {
	if v, ok := m.start[room]; ok {
		return v
	}
	return m.startDefault
}

// Offsets returns every room's latest offset, for a caller that persists them
// to continue them after a restart.
func (m *Memory) Offsets() map[string]uint64 {
	m.mu.RLock()
	rooms := make(map[string]*memRoom, len(m.rooms))
	for k, r := range m.rooms {
		rooms[k] = r
	}
	m.mu.RUnlock()
	out := make(map[string]uint64, len(rooms))
	for k, r := range rooms {
		r.mu.Lock()
		out[k] = r.latest
		r.mu.Unlock()
	}
	return out
}

func (m *Memory) room(name string) *memRoom {
	m.mu.RLock()
	r := m.rooms[name]
	m.mu.RUnlock()
	if r != nil {
		return r
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r = m.rooms[name]; r == nil {
		start := m.startOf(name)
		r = &memRoom{latest: start, base: start}
		m.rooms[name] = r
	}
	return r
}

func (m *Memory) lookup(name string) *memRoom {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.rooms[name]
}

// Publish appends data under the room's next offset and, if the node is
// subscribed to the room, hands the event to the handler before returning.
// Data is copied, so the caller may reuse its buffer; the handler and History
// callers share the copy and must not modify it.
func (m *Memory) Publish(ctx context.Context, room string, data []byte) (Event, error) {
	if m.closed.Load() {
		return Event{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return Event{}, err
	}
	r := m.room(room)
	ev := Event{Room: room, Data: append([]byte(nil), data...)}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.latest++
	ev.Offset = r.latest
	if len(r.ring) < m.size {
		r.ring = append(r.ring, ev)
	} else {
		r.ring[(ev.Offset-r.base-1)%uint64(m.size)] = ev
	}
	if r.subscribed {
		if h := m.handler.Load(); h != nil {
			(*h)(ev)
		}
	}
	return ev, nil
}

// History returns the events after since. since == latest is a complete,
// empty answer; since beyond latest can only come from another epoch and, like
// since older than the ring, is ErrUnrecoverable.
func (m *Memory) History(ctx context.Context, room string, since uint64) ([]Event, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	r := m.lookup(room)
	if r == nil {
		latest := m.startOf(room)
		if since != latest {
			return nil, latest, ErrUnrecoverable
		}
		return nil, latest, nil
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	latest := r.latest
	if since > latest {
		return nil, latest, ErrUnrecoverable
	}
	if since == latest {
		return nil, latest, nil
	}
	if since < r.base || latest-since > uint64(len(r.ring)) {
		return nil, latest, ErrUnrecoverable
	}
	size := uint64(m.size)
	events := make([]Event, 0, latest-since)
	for o := since + 1; o <= latest; o++ {
		events = append(events, r.ring[(o-r.base-1)%size])
	}
	return events, latest, nil
}

// Epoch is chosen at construction.
func (m *Memory) Epoch() string { return m.epoch }

// Subscribe starts delivery of the room's events to the handler. It is
// idempotent: the hub counts its own sessions.
func (m *Memory) Subscribe(ctx context.Context, room string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	r := m.room(room)
	r.mu.Lock()
	r.subscribed = true
	r.mu.Unlock()
	return nil
}

// Unsubscribe stops delivery of the room's events. Once it returns, the
// handler is not running for the room and will not be called for it again.
func (m *Memory) Unsubscribe(ctx context.Context, room string) error {
	r := m.lookup(room)
	if r == nil {
		return nil
	}
	r.mu.Lock()
	r.subscribed = false
	r.mu.Unlock()
	return nil
}

// SetHandler installs the delivery handler.
func (m *Memory) SetHandler(h Handler) {
	if h == nil {
		m.handler.Store(nil)
		return
	}
	m.handler.Store(&h)
}

// Ping reports ErrClosed after Close, nil before.
func (m *Memory) Ping(context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Close makes later publishes and subscribes fail with ErrClosed. It is
// idempotent and keeps the history readable, so a hub draining its sessions
// can still answer them.
func (m *Memory) Close() error {
	m.closed.Store(true)
	return nil
}
