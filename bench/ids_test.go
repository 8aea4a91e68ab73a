//go:build linux

package bench

import (
	"strings"
	"testing"

	"vigil/reading"
)

func TestIDRoundTrip(t *testing.T) {
	c := newIDCodec(0xdeadbeef)
	for _, seq := range []uint64{0, 1, 15, 16, 255, 1 << 20, 123456789, maxSeq} {
		id := c.id(seq)
		if !reading.IsUUID(id) {
			t.Errorf("seq %d: %q is not a UUID Vigil accepts", seq, id)
		}
		got, ok := c.parse([]byte(id))
		if !ok || got != seq {
			t.Errorf("parse(%q) = %d, %v; want %d", id, got, ok, seq)
		}
	}
}

func TestIDParseRejects(t *testing.T) {
	c := newIDCodec(0x00c0ffee)
	other := newIDCodec(0x00c0ffef)
	good := c.id(42)
	for _, tc := range []struct {
		name, id string
	}{
		{"another run", other.id(42)},
		{"upper case", strings.ToUpper(good)},
		{"short", good[:35]},
		{"long", good + "0"},
		{"not hex", good[:35] + "g"},
		{"empty", ""},
		{"random uuid", "6f1c2b1e-8a3d-4b7e-9c2f-1a2b3c4d5e6f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if seq, ok := c.parse([]byte(tc.id)); ok {
				t.Errorf("parse(%q) = %d, true; want false", tc.id, seq)
			}
		})
	}
}
