package hub

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// wsFrame builds a server frame (unmasked unless mask) with n payload bytes.
func wsFrame(op byte, n int, mask bool) []byte {
	b := []byte{0x80 | op}
	m := byte(0)
	if mask {
		m = 0x80
	}
	switch {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if mask {
		b = append(b, 1, 2, 3, 4)
	}
	return append(b, bytes.Repeat([]byte{'x'}, n)...)
}

// boundaries returns the stream offsets just after each frame.
func boundaries(frames [][]byte) []int {
	var out []int
	n := 0
	for _, f := range frames {
		n += len(f)
		out = append(out, n)
	}
	return out
}

// scanPieces feeds stream to a scanner in pieces of the given sizes
// (cycling) and returns every completed-frame offset it reports.
func scanPieces(stream []byte, sizes []int) []int {
	var sc frameScanner
	var got []int
	for i, k := 0, 0; i < len(stream); k++ {
		n := min(max(sizes[k%len(sizes)], 1), len(stream)-i)
		if end := sc.scan(stream[i : i+n]); end >= 0 {
			got = append(got, i+end)
		}
		i += n
	}
	return got
}

func TestFrameScanner(t *testing.T) {
	tests := []struct {
		name   string
		frames [][]byte
		pieces []int
	}{
		{"one text frame whole", [][]byte{wsFrame(1, 400, false)}, []int{1 << 20}},
		{"empty payload", [][]byte{wsFrame(9, 0, false), wsFrame(1, 3, false)}, []int{1 << 20}},
		{"byte by byte", [][]byte{wsFrame(1, 5, false), wsFrame(10, 0, false), wsFrame(1, 130, false)}, []int{1}},
		{"16-bit length split in the length", [][]byte{wsFrame(1, 126, false), wsFrame(1, 65535, false)}, []int{3, 1, 1000}},
		{"64-bit length", [][]byte{wsFrame(2, 65536, false), wsFrame(1, 1, false)}, []int{2, 7, 9, 60000}},
		{"masked client frame", [][]byte{wsFrame(1, 20, true), wsFrame(8, 2, true)}, []int{5}},
		{"bufio's 16-byte pieces", [][]byte{wsFrame(1, 700, false), wsFrame(9, 4, false), wsFrame(1, 1200, false)}, []int{16, 684, 16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := slices.Concat(tt.frames...)
			want := boundaries(tt.frames)
			got := scanPieces(stream, tt.pieces)
			// A piece completing several frames reports the last one only.
			for _, g := range got {
				if !slices.Contains(want, g) {
					t.Fatalf("reported boundary %d, frames end at %v", g, want)
				}
			}
			if len(got) == 0 || got[len(got)-1] != len(stream) {
				t.Fatalf("last boundary %v, want %d", got, len(stream))
			}
		})
	}
}

// FuzzFrameScanner: whatever the frame sizes and however the stream is cut,
// every boundary reported is a frame's end and the stream's end is reported.
func FuzzFrameScanner(f *testing.F) {
	f.Add([]byte{5, 0, 200, 1}, []byte{1, 16, 3})
	f.Add([]byte{255, 255, 0}, []byte{7})
	f.Fuzz(func(t *testing.T, lens, cuts []byte) {
		if len(lens) == 0 || len(lens) > 16 {
			return
		}
		var frames [][]byte
		for i, l := range lens {
			n := int(l)
			if l == 255 {
				n = 70000 // a 64-bit length
			} else if l > 200 {
				n = 300 + int(l) // a 16-bit length
			}
			frames = append(frames, wsFrame(1, n, i%3 == 2))
		}
		sizes := []int{1 << 20}
		if len(cuts) > 0 {
			sizes = sizes[:0]
			for _, c := range cuts {
				sizes = append(sizes, int(c))
			}
		}
		stream := slices.Concat(frames...)
		want := boundaries(frames)
		got := scanPieces(stream, sizes)
		for _, g := range got {
			if !slices.Contains(want, g) {
				t.Fatalf("reported boundary %d, frames end at %v", g, want)
			}
		}
		if len(got) == 0 || got[len(got)-1] != len(stream) {
			t.Fatalf("last boundary %v, want %d", got, len(stream))
		}
	})
}

// recordingConn is a net.Conn that records each Write: the unit under test
// is how frameWriter groups bytes into writes, which a socket cannot show.
type recordingConn struct {
	net.Conn
	writes [][]byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }

func TestFrameWriter(t *testing.T) {
	a, b, ping := wsFrame(1, 300, false), wsFrame(1, 20, false), wsFrame(9, 4, false)
	type step struct {
		op    string // "write", "begin", "end"
		data  []byte
		wants [][]byte // the socket's writes after the step, cumulative
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a whole frame goes at once", []step{
			{"write", a, [][]byte{a}},
		}},
		{"a frame in pieces goes when complete", []step{
			{"write", a[:16], nil},
			{"write", a[16:100], nil},
			{"write", a[100:], [][]byte{a}},
		}},
		{"a batch goes in one write at end", []step{
			{"begin", nil, nil},
			{"write", a, nil},
			{"write", b, nil},
			{"end", nil, [][]byte{slices.Concat(a, b)}},
		}},
		{"half a control frame at end waits for its rest", []step{
			{"begin", nil, nil},
			{"write", a, nil},
			{"write", ping[:3], nil},
			{"end", nil, [][]byte{a}},
			{"write", ping[3:], [][]byte{a, ping}},
		}},
		{"pieces spanning frames", []step{
			{"write", slices.Concat(a, b[:5]), [][]byte{a}},
			{"write", b[5:], [][]byte{a, b}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &recordingConn{}
			w := newFrameWriter(c, time.Second)
			for i, st := range tt.steps {
				switch st.op {
				case "write":
					if n, err := w.Write(st.data); err != nil || n != len(st.data) {
						t.Fatalf("step %d: Write = %d, %v", i, n, err)
					}
				case "begin":
					w.begin()
				case "end":
					if err := w.end(); err != nil {
						t.Fatalf("step %d: end: %v", i, err)
					}
				}
				if !slices.EqualFunc(c.writes, st.wants, bytes.Equal) {
					t.Fatalf("step %d (%s): socket got %d writes %v, want %d", i, st.op, len(c.writes), lens(c.writes), len(st.wants))
				}
			}
			if w.buf != nil {
				t.Fatalf("a buffer is still held after everything was written")
			}
		})
	}
}

func lens(bs [][]byte) []int {
	out := make([]int, len(bs))
	for i, b := range bs {
		out[i] = len(b)
	}
	return out
}

// TestWritePrepared: prepared frames go out at once after any whole frames
// held, and never into the middle of a frame written through coder/websocket.
func TestWritePrepared(t *testing.T) {
	a, b, pong := textFrame(bytes.Repeat([]byte("a"), 300)), textFrame([]byte(`{"type":"event"}`)), wsFrame(10, 4, false)
	tests := []struct {
		name     string
		before   []byte // written through Write first
		wantDone bool
		want     []byte // the socket's bytes afterwards
	}{
		{"idle", nil, true, slices.Concat(a, b)},
		{"after a whole control frame", pong, true, slices.Concat(pong, a, b)},
		{"inside a control frame", pong[:3], false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &recordingConn{}
			w := newFrameWriter(c, time.Second)
			if tt.before != nil {
				if _, err := w.Write(tt.before); err != nil {
					t.Fatal(err)
				}
			}
			done, err := w.writePrepared([][]byte{a, b})
			if err != nil || done != tt.wantDone {
				t.Fatalf("writePrepared = %v, %v; want %v", done, err, tt.wantDone)
			}
			if got := bytes.Join(c.writes, nil); !bytes.Equal(got, tt.want) {
				t.Fatalf("socket got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
	if got := framePayload(textFrame(make([]byte, 70000))); len(got) != 70000 {
		t.Errorf("payload of a 64-bit-length frame: %d bytes", len(got))
	}
	if got := framePayload(textFrame(make([]byte, 300))); len(got) != 300 {
		t.Errorf("payload of a 16-bit-length frame: %d bytes", len(got))
	}
}

// TestTryWriteUntilTheSocketIsFull fills a real socket whose peer does not
// read: every frame tryWrite accepted (whole or in part) must reach the peer
// whole and in order once the held rest is written, and nothing else.
func TestTryWriteUntilTheSocketIsFull(t *testing.T) {
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
	server.(*net.TCPConn).SetWriteBuffer(4096)
	client.(*net.TCPConn).SetReadBuffer(4096)

	w := newFrameWriter(server, 5*time.Second)
	var accepted [][]byte
	sawPart := false
	for i := 0; i < 100000 && !sawPart; i++ {
		payload := fmt.Appendf(nil, `{"i":%d,"pad":"%s"}`, i, bytes.Repeat([]byte("p"), 3000+i*97))
		switch w.tryWrite(textFrame(payload)) {
		case wroteAll:
			accepted = append(accepted, payload)
		case wrotePart:
			accepted = append(accepted, payload)
			sawPart = true
		case wroteNone:
			if !w.pending() {
				sawPart = true // full at a frame boundary: nothing held
			}
		}
		if w.pending() {
			break
		}
	}
	if len(accepted) == 0 {
		t.Fatal("the socket took nothing")
	}
	t.Logf("accepted %d frames; a rest held: %v", len(accepted), w.pending())
	if r := w.tryWrite(textFrame([]byte("late"))); r != wroteNone {
		t.Fatalf("tryWrite with a held rest = %v, want wroteNone", r)
	}
	flushed := make(chan error, 1)
	go func() {
		_, err := w.writePrepared(nil)
		flushed <- err
	}()

	var want int
	for _, p := range accepted {
		want += len(textFrame(p))
	}
	stream := make([]byte, want)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, stream); err != nil {
		t.Fatalf("reading %d bytes: %v", want, err)
	}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	for i, p := range accepted {
		f := textFrame(p)
		if !bytes.Equal(stream[:len(f)], f) {
			t.Fatalf("frame %d of %d differs", i, len(accepted))
		}
		stream = stream[len(f):]
	}
	client.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := client.Read(make([]byte, 1)); n != 0 {
		t.Fatal("bytes beyond the accepted frames")
	}
}
