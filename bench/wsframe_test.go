//go:build linux

package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// rec is one thing a frame sink was handed.
type rec struct {
	kind    frameKind
	payload string
}

func (r rec) String() string {
	return fmt.Sprintf("%s %q", [...]string{"skip", "message", "ping", "close"}[r.kind], r.payload)
}

var errSinkClosed = errors.New("closed")

// recSink records what the parser hands it; a close ends the connection.
type recSink struct{ out []rec }

func (k *recSink) message(m []byte) { k.out = append(k.out, rec{frameMessage, string(m)}) }
func (k *recSink) ping(p []byte) error {
	k.out = append(k.out, rec{framePing, string(p)})
	return nil
}
func (k *recSink) close(p []byte) error {
	k.out = append(k.out, rec{frameClose, string(p)})
	return errSinkClosed
}

// serverFrame builds one frame as a server would (or, masked, as no server
// should but the parser accepts).
func serverFrame(fin bool, op ws.OpCode, payload string, masked bool) []byte {
	p := []byte(payload)
	h := ws.Header{Fin: fin, OpCode: op, Length: int64(len(p)), Masked: masked}
	if masked {
		h.Mask = [4]byte{0x12, 0x34, 0x56, 0x78}
		ws.Cipher(p, h.Mask, 0)
	}
	var b bytes.Buffer
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err)
	}
	b.Write(p)
	return b.Bytes()
}

// feed runs the receive path's buffering and parsing (recvState.buffer and
// consume, as readOnce does) over data, delivered in reads of the sizes in
// chunks (cycled), with a scratch buffer of scratchSize. Between reads the
// scratch buffer is overwritten, as another session's read would.
func feed(data []byte, chunks []int, scratchSize int) (out []rec, pending int, err error) {
	var rx recvState
	sink := &recSink{}
	scratch := make([]byte, scratchSize)
	for i := 0; len(data) > 0; i++ {
		buf, off := rx.buffer(scratch)
		n := min(max(1, chunks[i%len(chunks)]), len(buf)-off, len(data))
		if n <= 0 {
			return sink.out, 0, fmt.Errorf("no room to read into (%d bytes pending, %d needed)", len(rx.pend), rx.need)
		}
		copy(buf[off:], data[:n])
		data = data[n:]
		if err := rx.consume(buf[:off+n], sink); err != nil {
			return sink.out, len(rx.pend), err
		}
		if &buf[0] == &scratch[0] {
			for j := range scratch[:off+n] {
				scratch[j] = 0xa5
			}
		}
	}
	return sink.out, len(rx.pend), nil
}

// refParse reads data as session.readMessage reads a handshake, with
// gobwas/ws, recording messages and control frames instead of answering
// them: the reference the parser must agree with.
func refParse(data []byte) (out []rec, err error) {
	r := bytes.NewReader(data)
	var hdr [ws.MaxHeaderSize]byte
	var msg []byte
	for {
		h, err := ws.ReadHeaderBuffer(r, hdr[:])
		if err != nil {
			return out, err
		}
		if h.Length > maxMessage || int64(len(msg))+h.Length > maxMessage {
			return out, errMessageTooLong
		}
		n := int(h.Length)
		if h.OpCode.IsControl() && n > 125 {
			return out, errControlTooLong
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			return out, err
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch {
		case h.OpCode == ws.OpPing:
			out = append(out, rec{framePing, string(p)})
		case h.OpCode == ws.OpClose:
			return append(out, rec{frameClose, string(p)}), nil
		case h.OpCode.IsControl():
		default:
			msg = append(msg, p...)
			if h.Fin {
				out = append(out, rec{frameMessage, string(msg)})
				msg = msg[:0]
			}
		}
	}
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func TestParserSplits(t *testing.T) {
	event := string(encodeFrame("site:T:S1", 12, []byte(`{"kind":"score","reading_id":"abc","patient_id":"P1"}`)))
	big := `{"type":"event","pad":"` + strings.Repeat("x", 70_000) + `"}` // 64-bit length, over the scratch buffer
	mid := strings.Repeat("m", 300)                                       // 16-bit length
	txt := func(s string) []byte { return serverFrame(true, ws.OpText, s, false) }
	msg := func(s string) rec { return rec{frameMessage, s} }
	for _, tc := range []struct {
		name string
		data []byte
		want []rec
		err  error // from the last frame
		rest bool  // a frame's beginning is left over
	}{
		{"one event", txt(event), []rec{msg(event)}, nil, false},
		{"events back to back", cat(txt(event), txt("a"), txt(event)), []rec{msg(event), msg("a"), msg(event)}, nil, false},
		{"empty message", txt(""), []rec{msg("")}, nil, false},
		{"16-bit length", cat(txt(mid), txt("b")), []rec{msg(mid), msg("b")}, nil, false},
		{"64-bit length, larger than the buffer", cat(txt("a"), txt(big), txt("b")), []rec{msg("a"), msg(big), msg("b")}, nil, false},
		{"masked", serverFrame(true, ws.OpText, event, true), []rec{msg(event)}, nil, false},
		{"binary", serverFrame(true, ws.OpBinary, "\x00\x01", false), []rec{msg("\x00\x01")}, nil, false},
		{"fragmented, a ping between", cat(
			serverFrame(false, ws.OpText, "frag", false),
			serverFrame(true, ws.OpPing, "p1", false),
			serverFrame(false, ws.OpContinuation, "men", true),
			serverFrame(true, ws.OpContinuation, "ted", false),
			txt("after")), []rec{{framePing, "p1"}, msg("fragmented"), msg("after")}, nil, false},
		{"fragmented, large", cat(
			serverFrame(false, ws.OpText, big, false),
			serverFrame(true, ws.OpContinuation, "!", false)), []rec{msg(big + "!")}, nil, false},
		{"pong and reserved control frames ignored", cat(
			serverFrame(true, ws.OpPong, "x", false),
			serverFrame(true, ws.OpCode(0xb), "y", false),
			txt("z")), []rec{msg("z")}, nil, false},
		{"ping", cat(txt("a"), serverFrame(true, ws.OpPing, strings.Repeat("p", 125), false), txt("b")),
			[]rec{msg("a"), {framePing, strings.Repeat("p", 125)}, msg("b")}, nil, false},
		{"close ends it", cat(txt("a"), serverFrame(true, ws.OpClose, "\x0f\xa8send queue full", false), txt("never")),
			[]rec{msg("a"), {frameClose, "\x0f\xa8send queue full"}}, errSinkClosed, false},
		{"incomplete header left", cat(txt("a"), []byte{0x81}), []rec{msg("a")}, nil, true},
		{"incomplete payload left", cat(txt("a"), txt(event)[:20]), []rec{msg("a")}, nil, true},
		{"control frame over 125 bytes", cat(txt("a"), serverFrame(true, ws.OpPing, strings.Repeat("p", 126), false)),
			[]rec{msg("a")}, errControlTooLong, false},
		{"length's high bit", cat(txt("a"), []byte{0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}), []rec{msg("a")}, ws.ErrHeaderLengthMSB, false},
		{"message over the limit", cat(txt("a"), []byte{0x81, 127, 0, 0, 0, 0, 0, 0x10, 0, 1}), []rec{msg("a")}, errMessageTooLong, false},
		{"fragments over the limit", cat(
			serverFrame(false, ws.OpText, big, false),
			[]byte{0x80, 127, 0, 0, 0, 0, 0, 0x10, 0, 0}), nil, errMessageTooLong, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The reference agrees with the table.
			ref, refErr := refParse(tc.data)
			if tc.err == nil || tc.err == errSinkClosed {
				if refErr != nil && !errors.Is(refErr, io.EOF) && !errors.Is(refErr, io.ErrUnexpectedEOF) {
					t.Fatalf("reference: %v", refErr)
				}
			} else if !errors.Is(refErr, tc.err) {
				t.Fatalf("reference error %v, want %v", refErr, tc.err)
			}
			if !slices.Equal(ref, tc.want) {
				t.Fatalf("reference got %v, want %v", ref, tc.want)
			}
			splits := [][]int{{len(tc.data)}, {1}, {2}, {3}, {7}, {13}, {100}, {1, 2, 3, 5, 8, 13, 21}}
			for i := 1; i < len(tc.data) && i < 200; i++ {
				splits = append(splits, []int{i, len(tc.data)})
			}
			rng := rand.New(rand.NewPCG(1, uint64(len(tc.data))))
			for range 20 {
				var s []int
				for range 10 {
					s = append(s, 1+rng.IntN(600))
				}
				splits = append(splits, s)
			}
			for _, size := range []int{scratchSize, 256, 15, 1} {
				for _, split := range splits {
					got, pending, err := feed(tc.data, split, size)
					if !errors.Is(err, tc.err) || (err == nil && tc.err != nil) {
						t.Fatalf("scratch %d, reads %v: error %v, want %v", size, split, err, tc.err)
					}
					if !slices.Equal(got, tc.want) {
						t.Fatalf("scratch %d, reads %v: got %v, want %v", size, split, got, tc.want)
					}
					if err == nil && (pending > 0) != tc.rest {
						t.Fatalf("scratch %d, reads %v: %d bytes left over", size, split, pending)
					}
				}
			}
		})
	}
}

// FuzzParser holds the receive path's parsing, over any reads, to what the
// handshake's gobwas/ws reading makes of the same bytes.
func FuzzParser(f *testing.F) {
	event := encodeFrame("site:T:S1", 12, []byte(`{"kind":"score","reading_id":"abc"}`))
	for _, seed := range [][]byte{
		serverFrame(true, ws.OpText, string(event), false),
		cat(serverFrame(false, ws.OpText, "ab", true), serverFrame(true, ws.OpPing, "p", false), serverFrame(true, ws.OpContinuation, "cd", false)),
		cat(serverFrame(true, ws.OpText, strings.Repeat("m", 300), false), serverFrame(true, ws.OpClose, "\x03\xe8", false)),
		serverFrame(true, ws.OpText, strings.Repeat("L", 70_000), false)[:40],
		{0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 1},
		{0x89, 126, 0, 126},
		{},
	} {
		f.Add(seed, uint64(0), uint16(16))
		f.Add(seed, uint64(0x0102030405060708), uint16(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, splits uint64, size uint16) {
		var chunks []int
		for i := range 8 {
			chunks = append(chunks, int(splits>>(8*i)&0xff))
		}
		want, refErr := refParse(data)
		got, pending, err := feed(data, chunks, 1+int(size)%(2*scratchSize))
		switch {
		case errors.Is(refErr, io.EOF), errors.Is(refErr, io.ErrUnexpectedEOF):
			if err != nil {
				t.Fatalf("error %v; the reference ran out of bytes", err)
			}
			if errors.Is(refErr, io.ErrUnexpectedEOF) && pending == 0 {
				t.Fatalf("nothing left over; the reference stopped in a frame")
			}
		case refErr == nil: // a close frame
			if err != errSinkClosed {
				t.Fatalf("error %v; the reference stopped at a close frame", err)
			}
		case !errors.Is(err, refErr):
			t.Fatalf("error %v, want %v", err, refErr)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

func TestAppendClientFrame(t *testing.T) {
	for _, op := range []ws.OpCode{ws.OpPong, ws.OpClose} {
		for _, p := range []string{"", "x", strings.Repeat("p", 125)} {
			b := appendClientFrame(nil, op, []byte(p))
			h, err := ws.ReadHeader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			body := b[len(b)-int(h.Length):]
			ws.Cipher(body, h.Mask, 0)
			if !h.Fin || h.OpCode != op || !h.Masked || string(body) != p || len(b) > maxClientFrame {
				t.Errorf("%v %q: header %+v, payload %q", op, p, h, body)
			}
		}
	}
}
