//go:build linux

package bench

import (
	"sync/atomic"
	"time"
)

// Flags of a reading in tracker.flags; the low byte is its phase.
const (
	flagSent     = 1 << 8  // the POST was (about to be) sent
	flagAccepted = 1 << 9  // it got a 2xx
	flagCritical = 1 << 10 // it should open an alert
	phaseMask    = 0xff
)

// tracker follows every reading of one scenario by its sequence number, from
// the moment its POST is sent to the last session receiving its events. All
// per-reading state lives in slices indexed by the sequence number, so a
// receiver needs no map and no lock to find a reading: ids carry the number
// (idCodec). Slices are allocated once at their maximum size; pages that are
// never touched are never resident.
type tracker struct {
	base time.Time
	ids  idCodec
	next atomic.Uint64

	sent    []atomic.Int64  // when the POST was sent, ns after base
	flags   []atomic.Uint32 // flag* | phase
	patient []int32         // index in the cohort; written before the POST, read after the phase
	scores  []atomic.Int32  // score events received (each session counts once)
	alerts  []atomic.Int32  // first alert event of the reading received, per session
	last    []atomic.Int64  // latest score arrival over all sessions, ns after base

	phases [phaseMask + 1]atomic.Pointer[phase]

	// Events a session received that do not belong to a sent reading of this
	// run (another run's readings on a reused server, or an unknown seq).
	foreign atomic.Int64
}

func newTracker(tag uint32, capacity int) *tracker {
	return &tracker{
		base:    time.Now(),
		ids:     newIDCodec(tag),
		sent:    make([]atomic.Int64, capacity),
		flags:   make([]atomic.Uint32, capacity),
		patient: make([]int32, capacity),
		scores:  make([]atomic.Int32, capacity),
		alerts:  make([]atomic.Int32, capacity),
		last:    make([]atomic.Int64, capacity),
	}
}

// now is the time since base; monotonic.
func (t *tracker) now() int64 { return int64(time.Since(t.base)) }

// take reserves the next sequence number; false when the tracker is full,
// which ends the phase (the bench is bounded in count as well as time).
func (t *tracker) take() (uint64, bool) {
	seq := t.next.Add(1) - 1
	if seq >= uint64(len(t.sent)) || seq > maxSeq {
		return 0, false
	}
	return seq, true
}

// phase is the receive-side record of one measured phase.
type phase struct {
	index   int
	name    string
	score   *shardedHist
	alert   *shardedHist
	first   uint64 // first seq of the phase
	startNs int64

	scoreGot     atomic.Int64
	alertGot     atomic.Int64
	lastArrival  atomic.Int64 // ns after base
	alertUpdates atomic.Int64 // further alert events of a reading already seen (escalation re-publishes)
}

// startPhase opens phase index; readings taken from now on belong to it.
func (t *tracker) startPhase(index int, name string) *phase {
	p := &phase{index: index, name: name, score: newShardedHist(), alert: newShardedHist(),
		first: t.next.Load(), startNs: t.now()}
	t.phases[index].Store(p)
	return p
}

// deliverScore records one session's receipt of a reading's score event.
func (t *tracker) deliverScore(seq uint64, now int64, shard int) {
	_, p := t.lookup(seq)
	if p == nil {
		return
	}
	lat := now - t.sent[seq].Load()
	p.score.record(shard, time.Duration(lat))
	t.scores[seq].Add(1)
	p.scoreGot.Add(1)
	storeMax(&t.last[seq], now)
	storeMax(&p.lastArrival, now)
}

// deliverAlert records one session's first receipt of an alert event for a
// reading; the session filters repeats.
func (t *tracker) deliverAlert(seq uint64, now int64, shard int) {
	_, p := t.lookup(seq)
	if p == nil {
		return
	}
	p.alert.record(shard, time.Duration(now-t.sent[seq].Load()))
	t.alerts[seq].Add(1)
	p.alertGot.Add(1)
	storeMax(&p.lastArrival, now)
}

// lookup returns the flags and phase of a seq a session received, or a nil
// phase (counted as foreign) when this run never sent it.
func (t *tracker) lookup(seq uint64) (uint32, *phase) {
	if seq >= uint64(len(t.flags)) {
		t.foreign.Add(1)
		return 0, nil
	}
	f := t.flags[seq].Load()
	if f&flagSent == 0 {
		t.foreign.Add(1)
		return 0, nil
	}
	p := t.phases[f&phaseMask].Load()
	if p == nil {
		t.foreign.Add(1)
	}
	return f, p
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}
