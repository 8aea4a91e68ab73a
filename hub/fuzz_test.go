package hub

import (
	"bytes"
	"encoding/json"
	"testing"

	"vigil/bus"
)

// FuzzEncodeEvent checks the hand-built event frame: for any room and payload
// it is valid JSON that decodes to the same room, offset and data, or it is
// refused; a corrupt frame would break every browser in the room.
func FuzzEncodeEvent(f *testing.F) {
	f.Add("site:T1:S1", uint64(1), []byte(`{"kind":"score"}`))
	f.Add("trial:\"x\"\n", uint64(1<<63), []byte(`[1,2,3]`))
	f.Add("", uint64(0), []byte(``))
	f.Add("r\u2028", uint64(7), []byte(`{"a":`))
	f.Add("\xff", uint64(2), []byte(" \"s\" "))
	// A number beyond float64 with outer whitespace: the frame keeps it
	// exactly; only a decoder's RawMessage drops the whitespace.
	f.Add("site:T1:S1", uint64(3), []byte(" 1E700"))
	f.Fuzz(func(t *testing.T, room string, offset uint64, data []byte) {
		frame, err := encodeEvent(bus.Event{Room: room, Offset: offset, Data: data})
		if err != nil {
			if json.Valid(data) {
				t.Fatalf("refused valid data %q: %v", data, err)
			}
			return
		}
		var got struct {
			Type   string          `json:"type"`
			Room   string          `json:"room"`
			Offset uint64          `json:"offset"`
			Data   json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(frame, &got); err != nil {
			t.Fatalf("frame %q is not JSON: %v", frame, err)
		}
		wantRoom, _ := json.Marshal(room)
		var decodedRoom string
		_ = json.Unmarshal(wantRoom, &decodedRoom)
		if got.Type != "event" || got.Room != decodedRoom || got.Offset != offset {
			t.Fatalf("frame %q decodes to %+v", frame, got)
		}
		// A decoder hands back a value without its outer whitespace.
		trimmed := bytes.Trim(data, " \t\r\n")
		if len(data) > 0 && string(got.Data) != string(trimmed) && !jsonEqual(got.Data, data) {
			t.Fatalf("data %q came back as %q", data, got.Data)
		}
	})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
