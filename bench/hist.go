//go:build linux

package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to two minutes, with three
// significant digits.
const (
	histMinMicros = 1
	histMaxMicros = int64(2 * time.Minute / time.Microsecond)
	histSigFigs   = 3
	histShards    = 16
)

func newHDR() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
}

// shardedHist is an HDR histogram that many goroutines record into.
// hdrhistogram-go is not safe for concurrent use, and one histogram per
// session would cost ~150 KB each (1.5 GB for 10,000 sessions), so sessions
// record into one of a few shards under that shard's lock, merged at the end.
type shardedHist struct {
	shards [histShards]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
		_  [40]byte // keep shards' locks off one cache line
	}
}

func newShardedHist() *shardedHist {
	s := &shardedHist{}
	for i := range s.shards {
		s.shards[i].h = newHDR()
	}
	return s
}

func clampMicros(d time.Duration) int64 {
	us := int64(d / time.Microsecond)
	return min(max(us, histMinMicros), histMaxMicros)
}

// record adds one latency to shard (any number; it is reduced modulo the
// shard count).
func (s *shardedHist) record(shard int, d time.Duration) {
	sh := &s.shards[uint(shard)%histShards]
	sh.mu.Lock()
	_ = sh.h.RecordValue(clampMicros(d))
	sh.mu.Unlock()
}

// merged returns the sum of the shards.
func (s *shardedHist) merged() *hdrhistogram.Histogram {
	out := newHDR()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		out.Merge(sh.h)
		sh.mu.Unlock()
	}
	return out
}

// latency is the summary of a histogram the tables print.
type latency struct {
	Count                    int64
	P50, P90, P99, P999, Max time.Duration
}

func summarize(h *hdrhistogram.Histogram) latency {
	if h == nil || h.TotalCount() == 0 {
		return latency{}
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return latency{
		Count: h.TotalCount(),
		P50:   us(h.ValueAtQuantile(50)),
		P90:   us(h.ValueAtQuantile(90)),
		P99:   us(h.ValueAtQuantile(99)),
		P999:  us(h.ValueAtQuantile(99.9)),
		Max:   us(h.Max()),
	}
}
