package hub

// Tests of problems found in review of the fan-out rewrite: a session whose
// socket is stalled must not hold up others, and the non-blocking fast path
// must outlive the write deadline of an earlier blocking write.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawWS is a minimal hand-written WebSocket client, so that a test can send
// control frames and stop reading at will.
type rawWS struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, e *env, token string) *rawWS {
	t.Helper()
	addr := e.srv.Listener.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	t.Cleanup(func() { c.Close() })
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Authorization: Bearer " + token + "\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(testTimeout))
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		t.Fatalf("handshake: %q %v", status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	return &rawWS{t: t, c: c, br: br}
}

func maskedFrame(op byte, payload []byte) []byte {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	default:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	}
	key := []byte{1, 2, 3, 4}
	b = append(b, key...)
	for i, p := range payload {
		b = append(b, p^key[i%4])
	}
	return b
}

func (r *rawWS) sendJSON(v any) {
	r.t.Helper()
	p, _ := json.Marshal(v)
	if _, err := r.c.Write(maskedFrame(1, p)); err != nil {
		r.t.Fatal(err)
	}
}

// readText reads server frames until a text frame, and decodes it.
func (r *rawWS) readText() frame {
	r.t.Helper()
	for {
		var h [2]byte
		if _, err := ioReadFull(r.br, h[:]); err != nil {
			r.t.Fatal(err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			ioReadFull(r.br, l[:])
			n = int(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			ioReadFull(r.br, l[:])
			n = int(binary.BigEndian.Uint64(l[:]))
		}
		p := make([]byte, n)
		if _, err := ioReadFull(r.br, p); err != nil {
			r.t.Fatal(err)
		}
		if h[0]&0x0f != 1 {
			continue
		}
		var f frame
		if err := json.Unmarshal(p, &f); err != nil {
			r.t.Fatal(err)
		}
		return f
	}
}

func ioReadFull(br *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := br.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestStalledSessionDoesNotHoldUpOthers: a fan-out worker serves many
// sessions and must never wait for one. A client that pings and does not
// read leaves the server's pong write blocked on its full socket, holding
// that session's frame writer; an event for a healthy session on the same
// worker must still arrive at once (the stalled one's is queued).
func TestStalledSessionDoesNotHoldUpOthers(t *testing.T) {
	e := newEnv(t, Config{}, envOptions{
		listener: func(l net.Listener) net.Listener { return smallBufListener{l} },
	})
	// One worker, so that the two sessions share it as 1/GOMAXPROCS of all
	// sessions do in production.
	e.hub.fan.stop()
	e.hub.fan = newFanout(1, slog.New(slog.DiscardHandler))

	const slowRoom, okRoom = "site:T008:S02", "site:T008:S01"
	twoSites := staff("u42", "pi", []string{"T008"}, []string{"T008/S01", "T008/S02"})
	healthy := e.connect(twoSites)
	healthy.subscribe(map[string]any{"room": okRoom})

	slow := dialRaw(t, e, e.token(twoSites, time.Hour))
	if f := slow.readText(); f.Type != "ready" {
		t.Fatalf("got %+v, want ready", f)
	}
	slow.sendJSON(map[string]any{"type": "subscribe", "room": slowRoom})
	if f := slow.readText(); f.Type != "subscribed" {
		t.Fatalf("got %+v, want subscribed", f)
	}
	var slowS *session
	e.hub.mu.RLock()
	slowS = e.hub.rooms[slowRoom][0].s
	e.hub.mu.RUnlock()

	// The slow client pings with full-size payloads and never reads: the
	// server's read goroutine writes pongs until the socket is full.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ping := maskedFrame(9, bytes.Repeat([]byte("p"), 125))
		slow.c.SetWriteDeadline(time.Now().Add(testTimeout))
		for range 20000 {
			if _, err := slow.c.Write(ping); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { slow.c.Close(); wg.Wait() })

	// Wait until fw.mu has been held without a break for 300 ms: a pong
	// write is blocked on the full socket.
	held := time.Now()
	waitFor(t, "a pong write blocked on the full socket", func() bool {
		if slowS.fw.mu.TryLock() {
			slowS.fw.mu.Unlock()
			held = time.Now()
			return false
		}
		return time.Since(held) > 300*time.Millisecond
	})

	start := time.Now()
	e.publish(slowRoom, `{"kind":"score"}`)
	ev := e.publish(okRoom, `{"kind":"alert"}`)
	healthy.expectEvent(okRoom, ev.Offset)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a healthy session got its alert after %v: the shared fan-out worker was "+
			"blocked in deliver → tryWrite → fw.mu.Lock behind another session's stalled pong write", d)
	}
}

// TestTryWriteAfterTheWriteDeadline: a write deadline left on the socket by
// an earlier blocking write would make every later non-blocking write fail
// with a timeout once it passed (syscall.RawConn.Write checks it), silently
// sending every event the slow way.
func TestTryWriteAfterTheWriteDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	const timeout = 100 * time.Millisecond
	w := newFrameWriter(server, timeout)
	// A writer batch, as every session's writer does: it arms the deadline.
	if _, err := w.writePrepared([][]byte{textFrame([]byte(`{"a":1}`))}); err != nil {
		t.Fatal(err)
	}
	if r := w.tryWrite(textFrame([]byte(`{"b":2}`))); r != wroteAll {
		t.Fatalf("tryWrite right after a batch = %v, want wroteAll", r)
	}
	time.Sleep(timeout + 50*time.Millisecond) // the session is idle a while
	if r := w.tryWrite(textFrame([]byte(`{"c":3}`))); r != wroteAll {
		t.Fatalf("tryWrite on an empty socket after %v idle = %v, want wroteAll (%d); "+
			"the expired write deadline makes RawConn.Write fail", timeout, r, wroteAll)
	}
}
