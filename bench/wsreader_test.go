//go:build linux

package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// readFrame reads one client frame from a blocking descriptor and unmasks it.
func readFrame(t *testing.T, fd int) (ws.Header, []byte) {
	t.Helper()
	var got []byte
	buf := make([]byte, 256)
	for {
		// Client frames here are control frames: 2 bytes, a mask, ≤ 125.
		if h, err := ws.ReadHeader(bytes.NewReader(got)); err == nil {
			hl := 2
			if h.Masked {
				hl += 4
			}
			if len(got) >= hl+int(h.Length) {
				p := got[hl : hl+int(h.Length)]
				if h.Masked {
					ws.Cipher(p, h.Mask, 0)
				}
				return h, p
			}
		}
		n, err := syscall.Read(fd, buf)
		if err != nil || n == 0 {
			t.Fatalf("reading the client's frame: %d, %v (have %x)", n, err, got)
		}
		got = append(got, buf[:n]...)
	}
}

func writeAll(t *testing.T, fd int, b []byte) {
	t.Helper()
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err != nil {
			t.Fatalf("write: %v", err)
		}
		b = b[n:]
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestReaderSession drives one session through a reader over a socket pair:
// frames that came with the handshake (pending), a ping, frames split across
// writes, one larger than the reader's buffer, a fragmented one, and a close.
func TestReaderSession(t *testing.T) {
	fds0, g0 := openFDs(t), runtime.NumGoroutine()
	tr := newTracker(7, 8)
	ph := tr.startPhase(1, "test")
	for range 5 {
		seq, _ := tr.take()
		tr.flags[seq].Store(flagSent | flagAccepted | uint32(ph.index))
		tr.sent[seq].Store(tr.now())
	}
	ev := func(offset, seq uint64, pad int) []byte {
		data := fmt.Appendf(nil, `{"kind":"score","reading_id":%q,"pad":"%s"}`, tr.ids.id(seq), strings.Repeat("x", pad))
		return serverFrame(true, ws.OpText, string(encodeFrame("r", offset, data)), false)
	}

	// Nothing listens there: the reconnection after the close fails, and
	// stop ends its wait.
	c := newHubClient("http://127.0.0.1:1", tr, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.ctx = ctx
	r, err := newReader(c)
	if err != nil {
		t.Fatal(err)
	}
	c.readers = []*reader{r}
	c.wg.Add(1)
	go r.run()

	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer := pair[1]
	defer func() {
		if peer >= 0 {
			syscall.Close(peer)
		}
	}()
	if err := syscall.SetNonblock(pair[0], true); err != nil {
		t.Fatal(err)
	}
	s := &session{c: c, shard: 0, fd: pair[0], lastOffset: 10}
	c.sessions = append(c.sessions, s)

	second := ev(12, 1, 0)
	s.rx.reset(cat(ev(11, 0, 0), serverFrame(true, ws.OpPing, "hello", false)), second[:9])
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	if tr.scores[0].Load() != 1 {
		t.Errorf("the pending event was not delivered")
	}
	if h, p := readFrame(t, peer); h.OpCode != ws.OpPong || !h.Masked || string(p) != "hello" {
		t.Errorf("pong: %+v %q", h, p)
	}

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	// The rest of the second event, a byte at a time.
	for i := 9; i < len(second); i++ {
		writeAll(t, peer, second[i:i+1])
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	waitFor("the split event", func() bool { return tr.scores[1].Load() == 1 })

	// An event of 100 KB, over the reader's buffer, in a few writes.
	big := ev(13, 2, 100_000)
	for i := 0; i < len(big); i += 30_000 {
		writeAll(t, peer, big[i:min(i+30_000, len(big))])
		time.Sleep(2 * time.Millisecond)
	}
	waitFor("the large event", func() bool { return tr.scores[2].Load() == 1 })

	// A fragmented event, then one more in the same write.
	whole := encodeFrame("r", 14, fmt.Appendf(nil, `{"kind":"score","reading_id":%q}`, tr.ids.id(3)))
	writeAll(t, peer, cat(
		serverFrame(false, ws.OpText, string(whole[:20]), false),
		serverFrame(true, ws.OpPing, "", false),
		serverFrame(true, ws.OpContinuation, string(whole[20:]), false),
		ev(15, 4, 0)))
	waitFor("the fragmented event", func() bool { return tr.scores[3].Load() == 1 && tr.scores[4].Load() == 1 })
	if h, p := readFrame(t, peer); h.OpCode != ws.OpPong || len(p) != 0 {
		t.Errorf("pong: %+v %q", h, p)
	}

	// Closed by the server: echoed, counted, and the session reconnects.
	var body [2]byte
	binary.BigEndian.PutUint16(body[:], 4008)
	writeAll(t, peer, serverFrame(true, ws.OpClose, string(body[:])+"too slow", false))
	if h, p := readFrame(t, peer); h.OpCode != ws.OpClose || binary.BigEndian.Uint16(p) != 4008 {
		t.Errorf("close echo: %+v %x", h, p)
	}
	waitFor("the close", func() bool { n, _ := c.closeSummary(); return n == 1 })
	if _, sum := c.closeSummary(); sum != "4008 ×1" {
		t.Errorf("closes: %s", sum)
	}
	// The session's socket was closed: the peer reads EOF.
	if n, err := syscall.Read(peer, make([]byte, 16)); n != 0 || err != nil {
		t.Errorf("peer read %d, %v after the close; want EOF", n, err)
	}
	c.stop()

	if cap(s.rx.pend) > readBufSize {
		t.Errorf("the large frame's buffer (%d bytes) was kept", cap(s.rx.pend))
	}
	if s.lastOffset != 15 || c.gaps.Load() != 0 || c.duplicates.Load() != 0 || c.slowFrames.Load() != 0 {
		t.Errorf("offset %d, gaps %d, duplicates %d, slow frames %d", s.lastOffset, c.gaps.Load(), c.duplicates.Load(), c.slowFrames.Load())
	}
	syscall.Close(peer)
	peer = -1
	waitFor("descriptors and goroutines to be released", func() bool {
		return openFDs(t) <= fds0 && runtime.NumGoroutine() <= g0
	})
}
