package hub

import (
	"encoding/json"
	"errors"
	"strconv"

	"vigil/bus"
)

// clientMsg is every frame a client may send; Type says which fields matter.
type clientMsg struct {
	Type  string  `json:"type"`
	Token string  `json:"token"`
	Room  string  `json:"room"`
	Since *uint64 `json:"since"`
	Epoch *string `json:"epoch"`
}

type readyMsg struct {
	Type string `json:"type"`
	Sub  string `json:"sub"`
	Role string `json:"role"`
	Exp  int64  `json:"exp,omitempty"`
}

type subscribedMsg struct {
	Type      string `json:"type"`
	Room      string `json:"room"`
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
	Recovered bool   `json:"recovered"`
}

type unsubscribedMsg struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	Reason string `json:"reason,omitempty"`
}

// pongMsg answers a client's {"type": "ping"}: an application-level
// heartbeat, since browsers do not expose WebSocket ping frames.
type pongMsg struct {
	Type string `json:"type"`
}

type refreshedMsg struct {
	Type string `json:"type"`
	Exp  int64  `json:"exp"`
}

type errorMsg struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Room    string `json:"room,omitempty"`
	Message string `json:"message,omitempty"`
}

// Error codes of error frames.
const (
	codeForbidden    = "forbidden"
	codeBadRequest   = "bad_request"
	codeInvalidToken = "invalid_token"
	// codeUnavailable: the bus could not subscribe or read history; the
	// client may retry the subscribe.
	codeUnavailable = "unavailable"
)

var errBadData = errors.New("hub: event data is not valid JSON")

// encodeEvent builds an event frame by appending, not through a struct and
// json.Marshal: Marshal would re-validate and compact the payload, and this
// runs for every event on the publisher's path. The bytes are shared by every
// session in the room and must never be modified.
func encodeEvent(ev bus.Event) ([]byte, error) {
	data := ev.Data
	if len(data) == 0 {
		data = []byte("null")
	} else if !json.Valid(data) {
		// One bad payload must not corrupt the stream a browser parses.
		return nil, errBadData
	}
	room, err := json.Marshal(ev.Room)
	if err != nil {
		return nil, err
	}
	const prefix, mid, dataKey = `{"type":"event","room":`, `,"offset":`, `,"data":`
	b := make([]byte, 0, len(prefix)+len(room)+len(mid)+20+len(dataKey)+len(data)+1)
	b = append(b, prefix...)
	b = append(b, room...)
	b = append(b, mid...)
	b = strconv.AppendUint(b, ev.Offset, 10)
	b = append(b, dataKey...)
	b = append(b, data...)
	b = append(b, '}')
	return b, nil
}

// eventFrame is encodeEvent's frame, prepared for the socket (textFrame).
func eventFrame(ev bus.Event) ([]byte, error) {
	b, err := encodeEvent(ev)
	if err != nil {
		return nil, err
	}
	return textFrame(b), nil
}
