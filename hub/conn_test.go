package hub

import (
	"bytes"
	"encoding/binary"
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
