//go:build linux

package bench

import (
	"bytes"
)

// The receive path reads every event frame of thousands of sessions, so it
// does not decode JSON: it finds the few values it needs with bytes.Index.
// Vigil writes event frames as {"type":"event","room":…,"offset":N,"data":{…}}
// (hub.encodeEvent) with the data from json.Marshal; the scanner also accepts
// white space around the colon, so a server that pretty-prints still parses.
// Frames that do not start like an event (ready, subscribed, errors) take the
// slow path, encoding/json, which only ever sees a handful per session.

var eventPrefix = []byte(`{"type":"event"`)

// isEvent reports whether a frame is an event frame in Vigil's layout.
func isEvent(frame []byte) bool { return bytes.HasPrefix(frame, eventPrefix) }

// valueAt returns the index just past `key` and the colon after it (and any
// white space), searching from the first occurrence of key that is followed
// by a colon: an object key, not a string value that happens to equal it.
func valueAt(frame []byte, key string) int {
	from := 0
	for from < len(frame) {
		i := bytes.Index(frame[from:], []byte(key))
		if i < 0 {
			return -1
		}
		j := skipSpace(frame, from+i+len(key))
		if j < len(frame) && frame[j] == ':' {
			return skipSpace(frame, j+1)
		}
		from += i + 1
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringField returns the string value of the first `"name":` in frame,
// without its quotes. A value with an escape sequence is refused (false):
// none of the values the bench reads (kinds, reading ids, types) has one, and
// returning the escaped bytes would be wrong.
func stringField(frame []byte, quotedKey string) ([]byte, bool) {
	i := valueAt(frame, quotedKey)
	if i < 0 || i >= len(frame) || frame[i] != '"' {
		return nil, false
	}
	i++
	for j := i; j < len(frame); j++ {
		switch frame[j] {
		case '"':
			return frame[i:j], true
		case '\\':
			return nil, false
		}
	}
	return nil, false
}

// uintField returns the unsigned integer value of the first `"name":` in
// frame. It refuses a fraction, an exponent, a sign and overflow.
func uintField(frame []byte, quotedKey string) (uint64, bool) {
	i := valueAt(frame, quotedKey)
	if i < 0 {
		return 0, false
	}
	var n uint64
	j := i
	for ; j < len(frame) && '0' <= frame[j] && frame[j] <= '9'; j++ {
		d := uint64(frame[j] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if j == i || j-i > 1 && frame[i] == '0' {
		return 0, false // no digits, or a leading zero
	}
	if j < len(frame) {
		switch frame[j] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	return n, true
}

// event is what the receive path needs of one event frame.
type event struct {
	offset    uint64
	kind      []byte // "score", "alert", …
	readingID []byte
}

// scanEvent reads an event frame. ok is false for a frame that is not an
// event in Vigil's layout, or lacks an offset; kind and readingID are empty
// when the data has none (events of kinds the bench does not time).
func scanEvent(frame []byte) (ev event, ok bool) {
	if !isEvent(frame) {
		return event{}, false
	}
	// The offset precedes "data" in Vigil's frames; looking only there keeps
	// an "offset" key inside the data from being taken for it.
	head, data := frame, frame
	if d := valueAt(frame, `"data"`); d >= 0 {
		head, data = frame[:d], frame[d:]
	}
	if ev.offset, ok = uintField(head, `"offset"`); !ok {
		return event{}, false
	}
	ev.kind, _ = stringField(data, `"kind"`)
	ev.readingID, _ = stringField(data, `"reading_id"`)
	return ev, true
}
