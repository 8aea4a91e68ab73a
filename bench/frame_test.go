//go:build linux

package bench

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestScanEvent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frame  string
		ok     bool
		offset uint64
		kind   string
		id     string
	}{
		{"score", `{"type":"event","room":"site:T:S1","offset":12,"data":{"kind":"score","reading_id":"abc","patient_id":"P1","news2":{"total":0}}}`,
			true, 12, "score", "abc"},
		{"alert", `{"type":"event","room":"trial:T","offset":1,"data":{"kind":"alert","alert_id":"x","reading_id":"r-1","tier":-1}}`,
			true, 1, "alert", "r-1"},
		{"white space", `{"type":"event","room":"r", "offset" : 7 ,"data": { "kind" : "score" , "reading_id" :	"id" }}`,
			true, 7, "score", "id"},
		{"key as a value first", `{"type":"event","room":"r","offset":3,"data":{"symptoms":[{"term":"kind"}],"note":"reading_id","kind":"score","reading_id":"z"}}`,
			true, 3, "score", "z"},
		{"offset key inside data ignored", `{"type":"event","room":"r","offset":5,"data":{"offset":99,"kind":"score","reading_id":"q"}}`,
			true, 5, "score", "q"},
		{"no kind", `{"type":"event","room":"r","offset":2,"data":{"reading_id":"q"}}`, true, 2, "", "q"},
		{"null data", `{"type":"event","room":"r","offset":2,"data":null}`, true, 2, "", ""},
		{"escaped id refused", `{"type":"event","room":"r","offset":2,"data":{"kind":"score","reading_id":"a\"b"}}`, true, 2, "score", ""},
		{"id not a string", `{"type":"event","room":"r","offset":2,"data":{"kind":"score","reading_id":5}}`, true, 2, "score", ""},
		{"unterminated id", `{"type":"event","room":"r","offset":2,"data":{"kind":"score","reading_id":"abc`, true, 2, "score", ""},
		{"subscribed", `{"type":"subscribed","room":"r","offset":4,"epoch":"e","recovered":false}`, false, 0, "", ""},
		{"ready", `{"type":"ready","sub":"u1","role":"pi"}`, false, 0, "", ""},
		{"no offset", `{"type":"event","room":"r","data":{"kind":"score"}}`, false, 0, "", ""},
		{"negative offset", `{"type":"event","room":"r","offset":-1,"data":{}}`, false, 0, "", ""},
		{"fraction", `{"type":"event","room":"r","offset":1.5,"data":{}}`, false, 0, "", ""},
		{"exponent", `{"type":"event","room":"r","offset":1e3,"data":{}}`, false, 0, "", ""},
		{"leading zero", `{"type":"event","room":"r","offset":012,"data":{}}`, false, 0, "", ""},
		{"overflow", `{"type":"event","room":"r","offset":18446744073709551616,"data":{}}`, false, 0, "", ""},
		{"max", `{"type":"event","room":"r","offset":18446744073709551615,"data":{}}`, true, 1<<64 - 1, "", ""},
		{"empty", ``, false, 0, "", ""},
		{"truncated", `{"type":"event","room":"r","offset":`, false, 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, ok := scanEvent([]byte(tc.frame))
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if ev.offset != tc.offset || string(ev.kind) != tc.kind || string(ev.readingID) != tc.id {
				t.Errorf("got offset %d kind %q id %q; want %d %q %q", ev.offset, ev.kind, ev.readingID, tc.offset, tc.kind, tc.id)
			}
		})
	}
}

// eventData is the part of Vigil's event data the scanner reads, with
// fields before and after it like the real events.
type eventData struct {
	Kind      string         `json:"kind"`
	AlertID   string         `json:"alert_id,omitempty"`
	ReadingID string         `json:"reading_id"`
	PatientID string         `json:"patient_id"`
	Vitals    map[string]any `json:"vitals,omitempty"`
}

// encodeFrame builds an event frame as hub.encodeEvent does.
func encodeFrame(room string, offset uint64, data []byte) []byte {
	r, _ := json.Marshal(room)
	b := []byte(`{"type":"event","room":`)
	b = append(b, r...)
	b = append(b, `,"offset":`...)
	b = append(b, []byte(json.Number(jsonUint(offset)))...)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

func jsonUint(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// FuzzScanEvent feeds the scanner arbitrary frames (it parses what a server
// sends), and frames built like Vigil's from arbitrary values, where
// encoding/json is the oracle: the scanner must never panic, and on a
// well-formed frame it must find exactly what json.Unmarshal finds, or
// decline (a value with an escape sequence) rather than return something else.
func FuzzScanEvent(f *testing.F) {
	f.Add([]byte(`{"type":"event","room":"site:T:S1","offset":12,"data":{"kind":"score","reading_id":"abc"}}`), "site:T:S1", uint64(12), "score", "abc", "P1")
	f.Add([]byte(`{"type":"event","room":"r","offset":1,"data":{"kind":"alert","reading_id":"x\"y"}}`), "trial:T", uint64(1), "alert", `x"y`, "kind")
	f.Add([]byte(`{"type":"subscribed","offset":4}`), "r", uint64(0), "reading_id", "kind", `"kind":"x"`)
	f.Add([]byte(`{"type":"event","offset":`), "", uint64(1<<64-1), "<&>", "\u2028", "")
	f.Fuzz(func(t *testing.T, raw []byte, room string, offset uint64, kind, id, patient string) {
		ev, ok := scanEvent(raw)
		if ok && (!bytes.Contains(raw, ev.kind) || !bytes.Contains(raw, ev.readingID)) {
			t.Fatalf("scanEvent(%q) returned bytes not in the frame", raw)
		}

		data, err := json.Marshal(eventData{Kind: kind, ReadingID: id, PatientID: patient, Vitals: map[string]any{"kind": patient}})
		if err != nil {
			return
		}
		frame := encodeFrame(room, offset, data)
		var want struct {
			Type   string    `json:"type"`
			Offset uint64    `json:"offset"`
			Data   eventData `json:"data"`
		}
		if err := json.Unmarshal(frame, &want); err != nil {
			t.Fatalf("test frame does not decode: %v: %s", err, frame)
		}
		ev, ok = scanEvent(frame)
		if !ok || ev.offset != want.Offset {
			t.Fatalf("scanEvent(%s) = %+v, %v; want offset %d", frame, ev, ok, want.Offset)
		}
		// The scanner reads the first "kind" and "reading_id" keys of the
		// data; eventData puts them first, as Vigil's score and alert do.
		if ev.kind != nil && string(ev.kind) != want.Data.Kind {
			t.Fatalf("kind %q, want %q in %s", ev.kind, want.Data.Kind, frame)
		}
		if ev.kind == nil && !bytes.Contains(data[:bytes.Index(data, []byte(`,"reading_id"`))], []byte(`\`)) {
			t.Fatalf("kind not found in %s", frame)
		}
		if ev.readingID != nil && string(ev.readingID) != want.Data.ReadingID {
			t.Fatalf("reading_id %q, want %q in %s", ev.readingID, want.Data.ReadingID, frame)
		}
		idJSON, _ := json.Marshal(id)
		if ev.readingID == nil && !bytes.Contains(idJSON, []byte(`\`)) {
			t.Fatalf("reading_id not found in %s", frame)
		}
	})
}

func BenchmarkScanEvent(b *testing.B) {
	ids := newIDCodec(1)
	frame := encodeFrame("site:W00000001:S0001", 12345, []byte(`{"kind":"score","reading_id":"`+ids.id(987654)+
		`","patient_id":"P00001-00000001","trial_id":"W00000001","site_id":"S0001","measured_at":"2026-11-27T08:00:05.123Z","scored_at":"2026-11-27T08:00:05.130Z","news2":{"total":0,"band":"low","partial":false,"parameters":{"respiratory_rate":0,"spo2":0}},"model":null,"risk":"none","degraded":false,"vitals":{"respiratory_rate":16,"spo2":97}}`))
	b.ReportAllocs()
	for b.Loop() {
		ev, ok := scanEvent(frame)
		if !ok {
			b.Fatal("not an event")
		}
		if _, ok := ids.parse(ev.readingID); !ok {
			b.Fatal("bad id")
		}
	}
}
