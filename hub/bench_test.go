package hub

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"testing"

	"vigil/auth"
	"vigil/bus"
)

// scoreEvent is a realistic score payload (about 400 bytes).
var scoreEvent = []byte(`{"kind":"score","reading_id":"6f1c2b1e-3b7a-4c55-9d5e-0a3f5c2b9e11","patient_id":"P1001","trial_id":"T008","site_id":"S01","measured_at":"2026-11-26T08:00:05Z","scored_at":"2026-11-26T08:00:05.012Z","news2":{"total":7,"band":"high","partial":false,"parameters":{"respiratory_rate":3,"spo2":2,"systolic_bp":0,"heart_rate":1,"consciousness":0,"temperature":1}},"model":{"probability":0.41,"version":"v1"},"risk":"high","degraded":false}`)

type nopVerifier struct{}

func (nopVerifier) Verify(string) (*auth.Claims, error) { return nil, auth.ErrInvalid }

// BenchmarkFanout measures dispatch of one event to n live sessions of a room
// without sockets: encoding the frame once and the fan-out workers offering
// it to every queue.
// Each iteration also drains the queues, standing in for the writers.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			const room = "site:T008:S01"
			h := New(bus.NewMemory(0), Config{Verifier: nopVerifier{}, SendQueue: 1, Logger: slog.New(slog.DiscardHandler)})
			sessions := make([]*session, n)
			for i := range sessions {
				s := newSession(h, nil, nil)
				s.writing = true // stands in for a writer: none is started
				sub := &subscription{s: s, room: room}
				s.subs = append(s.subs, sub)
				if err := h.join(context.Background(), sub); err != nil {
					b.Fatal(err)
				}
				sessions[i] = s
			}
			ev := bus.Event{Room: room, Data: scoreEvent}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				ev.Offset = uint64(i + 1)
				h.dispatch(ev)
				for !h.fan.idle() {
					runtime.Gosched()
				}
				for _, s := range sessions {
					s.mu.Lock()
					clear(s.queue)
					s.queue = s.queue[:0]
					s.mu.Unlock()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkFanoutWebSocket publishes one event on the in-process bus and
// waits until each of n real loopback clients has read it.
func BenchmarkFanoutWebSocket(b *testing.B) {
	const room = "site:T008:S01"
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			e := newEnv(b, Config{}, envOptions{})
			var received sync.WaitGroup
			ready := make(chan struct{}, n)
			for range n {
				c := e.connect(pi())
				c.subscribe(map[string]any{"room": room})
				go func() {
					ready <- struct{}{}
					for {
						f, err := c.tryRead()
						if err != nil {
							return
						}
						if f.Type == "event" {
							received.Done()
						}
					}
				}()
			}
			for range n {
				<-ready
			}
			b.ReportAllocs()
			for b.Loop() {
				received.Add(n)
				if _, err := e.broker.Publish(context.Background(), room, scoreEvent); err != nil {
					b.Fatal(err)
				}
				received.Wait()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}
