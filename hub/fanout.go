package hub

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/coder/websocket"

	"vigil/metrics"
)

// fanout is the hub's shared writer pool: a few long-lived goroutines (one
// per CPU) that offer each event to its sessions. A session always goes to
// the same worker (by its id), whose queue is first in, first out, so a
// session sees a room's events in the bus's order. A worker writes an event
// straight to the session's socket when the socket takes it at once (a
// non-blocking write), and only otherwise queues it for a writer goroutine
// of the session's own; so fanning an event out to ten thousand sessions
// starts no goroutine, and runs on every CPU, off the bus's delivery path.
type fanout struct {
	workers []*fanWorker
}

type fanJob struct {
	offset uint64
	frame  []byte // a prepared frame, shared by every session
	subs   []*subscription
}

type fanWorker struct {
	log     *slog.Logger
	mu      sync.Mutex
	cond    sync.Cond
	jobs    []fanJob
	spare   []fanJob
	busy    bool // a batch is being delivered (tests wait for idle)
	stopped bool
}

func newFanout(workers int, log *slog.Logger) *fanout {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	f := &fanout{workers: make([]*fanWorker, workers)}
	for i := range f.workers {
		w := &fanWorker{log: log}
		w.cond.L = &w.mu
		f.workers[i] = w
		go w.run()
	}
	return f
}

// offer queues the event for members, each with its worker. It never blocks
// on a session.
func (f *fanout) offer(offset uint64, frame []byte, members []*subscription) {
	k := uint64(len(f.workers))
	if k == 1 {
		f.workers[0].push(fanJob{offset, frame, members})
		return
	}
	parts := make([][]*subscription, k)
	for _, sub := range members {
		i := sub.s.id % k
		if parts[i] == nil {
			parts[i] = make([]*subscription, 0, len(members)/int(k)+1)
		}
		parts[i] = append(parts[i], sub)
	}
	for i, p := range parts {
		if len(p) > 0 {
			f.workers[i].push(fanJob{offset, frame, p})
		}
	}
}

func (f *fanout) stop() {
	for _, w := range f.workers {
		w.mu.Lock()
		w.stopped = true
		w.cond.Signal()
		w.mu.Unlock()
	}
}

// idle reports whether no event is waiting or being delivered.
func (f *fanout) idle() bool {
	for _, w := range f.workers {
		w.mu.Lock()
		busy := w.busy || len(w.jobs) > 0
		w.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

func (w *fanWorker) push(j fanJob) {
	w.mu.Lock()
	if !w.stopped {
		w.jobs = append(w.jobs, j)
	}
	w.mu.Unlock()
	w.cond.Signal()
}

func (w *fanWorker) run() {
	for {
		w.mu.Lock()
		for len(w.jobs) == 0 && !w.stopped {
			w.busy = false
			w.cond.Wait()
		}
		if w.stopped {
			w.mu.Unlock()
			return
		}
		jobs := w.jobs
		w.jobs, w.spare = w.spare[:0], nil
		w.busy = true
		w.mu.Unlock()

		for _, j := range jobs {
			n := 0
			for i := 0; i < len(j.subs); {
				var d int
				i, d = w.deliverFrom(j, i)
				n += d
			}
			metrics.HubDelivered.Add(float64(n))
		}
		clear(jobs)
		w.mu.Lock()
		if w.spare == nil && cap(jobs) <= 1024 {
			w.spare = jobs[:0]
		}
		w.mu.Unlock()
	}
}

// deliverFrom offers j's frame to j.subs[i:] and returns where it stopped:
// at the end, or just past a session whose delivery panicked. That session
// is closed (1011, it reconnects and recovers from history) and the others
// still get the event: a bug must not cost a whole room its events, nor the
// process its life.
func (w *fanWorker) deliverFrom(j fanJob, i int) (next, delivered int) {
	defer func() {
		if r := recover(); r != nil {
			sub := j.subs[next]
			w.log.Error("fan-out: delivery panicked", "room", sub.room, "offset", j.offset, "session", sub.s.id,
				"panic", r, "stack", string(debug.Stack()))
			sub.s.close(websocket.StatusInternalError, "internal error")
			next++
		}
	}()
	for next = i; next < len(j.subs); next++ {
		if j.subs[next].deliver(j.offset, j.frame) {
			delivered++
		}
	}
	return next, delivered
}
