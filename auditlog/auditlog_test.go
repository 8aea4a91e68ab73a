package auditlog

import (
	"encoding/json"
	"testing"
	"time"

	"vigil/store"
)

func ptr(s string) *string { return &s }

// The vectors were computed by an independent implementation of the package
// comment's scheme (Python hashlib and struct), so the scheme cannot change
// silently: every stored hash would stop verifying.
var vectors = []struct {
	f    Fields
	want string
}{
	{Fields{ID: 1, EntityType: "alert", EntityID: "a-1", Actor: "system", ActorName: "Vigil", ActorRole: "system",
		Action: "opened", Reason: "reading r-1", NewValue: ptr(`{"severity":"high"}`),
		At: "2026-11-26T08:00:00.000000000Z"},
		"c40d1f6bab7c363fa722b7d53497947262e23f60f628d17375ebc1d03cc185a7"},
	{Fields{ID: 2, EntityType: "alert", EntityID: "a-1", Actor: "u-pi-01", ActorName: "Dr Ada Okafor", ActorRole: "pi",
		Action: "acknowledged", Reason: "called the patient", Meaning: "acknowledged: reviewed the patient's readings",
		OldValue: ptr(`{"severity":"high"}`), NewValue: ptr(`{"status":"acknowledged"}`),
		At:       "2026-11-26T08:05:00.123456789Z",
		PrevHash: "c40d1f6bab7c363fa722b7d53497947262e23f60f628d17375ebc1d03cc185a7"},
		"b4bb3b7c4d1f88ab781c499643a9b39ea343273abf4a38419d343f29200bfd9f"},
	// An empty old value and a NULL new value.
	{Fields{ID: 3, EntityType: "alert", EntityID: "a-1", Actor: "system", Action: "x", OldValue: ptr(""),
		At:       "2026-11-26T08:05:00.123456789Z",
		PrevHash: "b4bb3b7c4d1f88ab781c499643a9b39ea343273abf4a38419d343f29200bfd9f"},
		"5d75661204a23fbd56d737ac022fc4644c289aac91a78f115cc3fee1b5d17211"},
}

func TestHashVectors(t *testing.T) {
	for i, v := range vectors {
		if got := Hash(v.f); got != v.want {
			t.Errorf("vector %d: Hash = %s, want %s", i, got, v.want)
		}
	}
}

func TestHashSeparatesFields(t *testing.T) {
	base := vectors[1].f
	variants := map[string]func(f *Fields){
		"id":                         func(f *Fields) { f.ID++ },
		"bytes moved between fields": func(f *Fields) { f.Actor, f.ActorName = "u-pi-01D", "r Ada Okafor" },
		"reason moved into meaning":  func(f *Fields) { f.Reason, f.Meaning = "", f.Reason+f.Meaning },
		"old value NULL":             func(f *Fields) { f.OldValue = nil },
		"old value empty":            func(f *Fields) { f.OldValue = ptr("") },
		"old and new swapped":        func(f *Fields) { f.OldValue, f.NewValue = f.NewValue, f.OldValue },
		"time":                       func(f *Fields) { f.At = "2026-11-26T08:05:00.123456788Z" },
		"prev_hash":                  func(f *Fields) { f.PrevHash = "" },
		"entity type":                func(f *Fields) { f.EntityType = "patient" },
		"action":                     func(f *Fields) { f.Action = "resolved" },
		"role":                       func(f *Fields) { f.ActorRole = "admin" },
		"entity id":                  func(f *Fields) { f.EntityID = "a-2" },
	}
	want := Hash(base)
	seen := map[string]string{}
	for name, change := range variants {
		f := base
		change(&f)
		h := Hash(f)
		if h == want {
			t.Errorf("%s: hash unchanged", name)
		}
		if other, ok := seen[h]; ok {
			t.Errorf("%s and %s hash alike", name, other)
		}
		seen[h] = name
	}
}

func TestFromRecord(t *testing.T) {
	at := time.Date(2026, 11, 26, 9, 5, 0, 123456789, time.FixedZone("CET", 3600))
	r := store.AuditRecord{ID: 2, EntityType: "alert", EntityID: "a-1", Actor: "u-pi-01", ActorName: "Dr Ada Okafor",
		ActorRole: "pi", Action: "acknowledged", Reason: "called the patient",
		Meaning:  "acknowledged: reviewed the patient's readings",
		OldValue: json.RawMessage(`{"severity":"high"}`), NewValue: json.RawMessage(`{"status":"acknowledged"}`),
		At: at, PrevHash: vectors[1].f.PrevHash}
	if got := Hash(FromRecord(r)); got != vectors[1].want {
		t.Errorf("Hash(FromRecord) = %s, want %s (time taken in UTC)", got, vectors[1].want)
	}
	r.OldValue = nil
	if f := FromRecord(r); f.OldValue != nil {
		t.Errorf("no old value became %q, want NULL", *f.OldValue)
	}
}

// chainOf builds n linked records.
func chainOf(n int) ([]Fields, []string) {
	fs := make([]Fields, n)
	hs := make([]string, n)
	prev := ""
	for i := range fs {
		fs[i] = Fields{ID: int64(i + 1), EntityType: "alert", EntityID: "a", Actor: "system", Action: "opened",
			At: "2026-11-26T08:00:00.000000000Z", PrevHash: prev}
		hs[i] = Hash(fs[i])
		prev = hs[i]
	}
	return fs, hs
}

func TestChain(t *testing.T) {
	tests := []struct {
		name     string
		change   func(fs []Fields, hs []string) ([]Fields, []string)
		issued   int64
		wantID   int64
		wantWhy  string
		wantSeen int
	}{
		{"intact", nil, 4, 0, "", 4},
		{"intact, counter unknown", nil, 0, 0, "", 4},
		{"edited", func(fs []Fields, hs []string) ([]Fields, []string) {
			fs[2].Reason = "x"
			return fs, hs
		}, 4, 3, ReasonEdited, 2},
		{"re-hashed after an edit", func(fs []Fields, hs []string) ([]Fields, []string) {
			fs[1].Reason = "x"
			hs[1] = Hash(fs[1])
			return fs, hs
		}, 4, 3, "prev_hash does not match record 2", 2},
		{"first record with a prev_hash", func(fs []Fields, hs []string) ([]Fields, []string) {
			fs[0].PrevHash = "ab"
			hs[0] = Hash(fs[0])
			return fs, hs
		}, 4, 1, "prev_hash of the first record is not empty", 0},
		{"gap", func(fs []Fields, hs []string) ([]Fields, []string) {
			return append(fs[:1:1], fs[2:]...), append(hs[:1:1], hs[2:]...)
		}, 4, 3, "record 2 missing", 1},
		{"tail", func(fs []Fields, hs []string) ([]Fields, []string) {
			return fs[:2], hs[:2]
		}, 4, 3, "records 3 to 4 missing (deleted from the end of the trail)", 2},
		{"duplicate id", func(fs []Fields, hs []string) ([]Fields, []string) {
			return append(fs[:2:2], fs[1:]...), append(hs[:2:2], hs[1:]...)
		}, 4, 2, "out of order: expected record 3", 2},
		{"unhashed", func(fs []Fields, hs []string) ([]Fields, []string) {
			hs[0] = ""
			return fs, hs
		}, 4, 1, ReasonUnhashed, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, hs := chainOf(4)
			if tc.change != nil {
				fs, hs = tc.change(fs, hs)
			}
			var c Chain
			var brk *store.AuditBreak
			for i := range fs {
				if brk = c.Next(fs[i], hs[i]); brk != nil {
					break
				}
			}
			if brk == nil {
				brk = c.End(tc.issued)
			}
			switch {
			case tc.wantID == 0 && brk != nil:
				t.Fatalf("break %v, want intact", brk)
			case tc.wantID != 0 && (brk == nil || brk.ID != tc.wantID || brk.Reason != tc.wantWhy):
				t.Fatalf("break %v, want record %d: %s", brk, tc.wantID, tc.wantWhy)
			}
			if c.Count() != tc.wantSeen {
				t.Errorf("Count = %d, want %d", c.Count(), tc.wantSeen)
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		in, want string
		null     bool
	}{
		{in: "", null: true},
		{in: "null", null: true},
		{in: " null ", null: true},
		{in: `{"a": 1,  "b": [1, 2]}`, want: `{"a":1,"b":[1,2]}`},
		{in: `{"reason":"a<b & c>d"}`, want: `{"reason":"a\u003cb \u0026 c\u003ed"}`},
		{in: `"x"`, want: `"x"`},
	}
	for _, tc := range tests {
		got, err := Canonical(json.RawMessage(tc.in))
		if err != nil {
			t.Errorf("Canonical(%q): %v", tc.in, err)
			continue
		}
		if tc.null != (got == nil) || !tc.null && string(got) != tc.want {
			t.Errorf("Canonical(%q) = %q, want %q (null %v)", tc.in, got, tc.want, tc.null)
		}
		// What a reply shows is already canonical.
		if again, _ := Canonical(got); string(again) != string(got) {
			t.Errorf("Canonical is not idempotent on %q: %q", got, again)
		}
	}
	if _, err := Canonical(json.RawMessage(`{"a":`)); err == nil {
		t.Error("Canonical accepted a value that is not JSON")
	}
	if f := FromRecord(store.AuditRecord{OldValue: json.RawMessage("null")}); f.OldValue != nil {
		t.Errorf("JSON null old value became %q, want NULL", *f.OldValue)
	}
}
