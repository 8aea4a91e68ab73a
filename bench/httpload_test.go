//go:build linux

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"vigil/auth"
)

// syncBuf is a bytes.Buffer safe for the echo server's logger and the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startEcho runs the echo server in the test process and returns its address.
func startEcho(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := &syncBuf{}
	done := make(chan error, 1)
	go func() { done <- ServeEcho(ctx, "127.0.0.1:0", log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("echo: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var rec struct{ Msg, Addr string }
		if line, _, _ := bytes.Cut([]byte(log.String()), []byte("\n")); json.Unmarshal(line, &rec) == nil && rec.Addr != "" {
			return rec.Addr
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("echo did not listen: %s", log.String())
	return ""
}

// TestLoadGenAgainstEcho posts real bodies to the echo server, which decodes
// and validates them with Vigil's decoder: every one must be accepted, in
// both the open-loop and the paced mode, with critical readings among them.
func TestLoadGenAgainstEcho(t *testing.T) {
	addr := startEcho(t)
	iss := auth.Issuer{Secret: []byte("0123456789abcdef0123456789abcdef"), Issuer: "vigil", Audience: "vigil"}
	co, err := newCohort(iss, 5, "W00000005", 4, 64, true, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(co.reserved) != 16 || len(co.normal) != 48 {
		t.Fatalf("reserved %d, normal %d; want a quarter reserved", len(co.reserved), len(co.normal))
	}
	tr := newTracker(5, 100_000)
	lg := newLoadGen(addr, 4, tr, co, 0.2, 5)
	ctx := context.Background()

	open := lg.run(ctx, tr.startPhase(1, "open"), 300*time.Millisecond, 0)
	if open.Sent == 0 || open.Accepted != open.Sent || open.Errors+open.Other+open.Status429+open.Status503 != 0 {
		t.Fatalf("open loop: %+v", open)
	}
	if open.CriticalSent == 0 || open.CriticalSent > 16 || open.CriticalSent+open.CriticalSkipped == 0 {
		t.Errorf("critical readings: %d sent, %d skipped; want at most the 16 reserved patients", open.CriticalSent, open.CriticalSkipped)
	}
	if open.End-open.First != uint64(open.Sent) {
		t.Errorf("seq range [%d, %d) for %d readings", open.First, open.End, open.Sent)
	}
	for seq := open.First; seq < open.End; seq++ {
		if f := tr.flags[seq].Load(); f&(flagSent|flagAccepted) != flagSent|flagAccepted || f&phaseMask != 1 {
			t.Fatalf("flags[%d] = %#x", seq, f)
		}
	}

	paced := lg.run(ctx, tr.startPhase(2, "paced"), 500*time.Millisecond, 200)
	if paced.Accepted != paced.Sent || paced.Sent < 80 || paced.Sent > 101 {
		t.Errorf("paced at 200/s for 0.5 s: %d sent, %d accepted; want about 100", paced.Sent, paced.Accepted)
	}
	if paced.First != open.End {
		t.Errorf("paced phase starts at %d, want %d", paced.First, open.End)
	}
}
