//go:build linux

package bench

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gobwas/ws"
)

// The receive path's WebSocket framing, over bytes already read: the readers
// (wsreader.go) read whatever a socket has into a buffer and parse the
// complete frames in it here, keeping the tail of a frame that has not fully
// arrived for the next read. It accepts what the gobwas/ws reading of the
// handshake (session.readMessage) accepts, with the same checks in the same
// order, and the fuzz target holds the two to that.

// frameKind is what wsParser.next found.
type frameKind uint8

const (
	frameSkip    frameKind = iota // consumed: a fragment, a pong, another control frame
	frameMessage                  // a whole data message
	framePing
	frameClose
)

var (
	errMessageTooLong = fmt.Errorf("message over %d bytes", maxMessage)
	errControlTooLong = errors.New("control frame over 125 bytes")
)

// wsParser reads the frames a server sends. Its only state is a fragmented
// message being put together.
type wsParser struct {
	msg  []byte
	frag bool // msg holds the first fragments of a message
}

// reset forgets a message begun on a previous connection.
func (p *wsParser) reset() { p.msg, p.frag = p.msg[:0], false }

// next parses the frame at the start of b. When b does not hold the whole
// frame, n is 0 and need is how many bytes the frame takes (0 while its
// header is incomplete; a header is at most 14 bytes). Otherwise n is the
// frame's length in b and payload, for frameMessage, framePing and
// frameClose, the unmasked message or control payload: a slice of b (masked
// payloads are unmasked in place) or, for a fragmented message, of the
// parser's own buffer, valid until the next call.
func (p *wsParser) next(b []byte) (kind frameKind, payload []byte, n, need int, err error) {
	if len(b) < 2 {
		return frameSkip, nil, 0, 0, nil
	}
	fin := b[0]&0x80 != 0
	op := ws.OpCode(b[0] & 0x0f)
	masked := b[1]&0x80 != 0
	length := uint64(b[1] & 0x7f)
	hl := 2
	switch length {
	case 126:
		hl += 2
	case 127:
		hl += 8
	}
	if masked {
		hl += 4
	}
	if len(b) < hl {
		return frameSkip, nil, 0, 0, nil
	}
	switch length {
	case 126:
		length = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if b[2]&0x80 != 0 {
			return frameSkip, nil, 0, 0, ws.ErrHeaderLengthMSB
		}
		length = binary.BigEndian.Uint64(b[2:])
	}
	var have uint64 // the message so far
	if p.frag {
		have = uint64(len(p.msg))
	}
	if length > maxMessage || have+length > maxMessage {
		return frameSkip, nil, 0, 0, errMessageTooLong
	}
	control := op.IsControl()
	if control && length > 125 {
		return frameSkip, nil, 0, 0, errControlTooLong
	}
	total := hl + int(length)
	if len(b) < total {
		return frameSkip, nil, 0, total, nil
	}
	payload = b[hl:total]
	if masked {
		var mask [4]byte
		copy(mask[:], b[hl-4:hl])
		ws.Cipher(payload, mask, 0)
	}
	switch {
	case control:
		switch op {
		case ws.OpPing:
			return framePing, payload, total, 0, nil
		case ws.OpClose:
			return frameClose, payload, total, 0, nil
		}
		return frameSkip, nil, total, 0, nil
	case fin && !p.frag:
		return frameMessage, payload, total, 0, nil
	}
	if !p.frag {
		p.msg, p.frag = p.msg[:0], true
	}
	p.msg = append(p.msg, payload...)
	if !fin {
		return frameSkip, nil, total, 0, nil
	}
	p.frag = false
	return frameMessage, p.msg, total, 0, nil
}

// maxClientFrame is the largest frame appendClientFrame builds: a masked
// control frame.
const maxClientFrame = 2 + 4 + 125

// appendClientFrame appends a final, masked frame with payload (at most 125
// bytes: pongs and closes) to b. Clients must mask (RFC 6455 §5.3).
func appendClientFrame(b []byte, op ws.OpCode, payload []byte) []byte {
	payload = payload[:min(len(payload), 125)]
	mask := ws.NewMask()
	b = append(b, 0x80|byte(op), 0x80|byte(len(payload)))
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	ws.Cipher(b[start:], mask, 0)
	return b
}
