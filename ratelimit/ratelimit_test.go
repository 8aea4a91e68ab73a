package ratelimit_test

import (
	"testing"
	"time"

	"vigil/ratelimit"
)

func TestLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		perMinute int
		steps     []struct {
			key  string
			at   time.Duration
			ok   bool
			wait time.Duration // minimum Retry-After when refused
		}
	}{
		{"burst then refuse then refill", 3, []struct {
			key  string
			at   time.Duration
			ok   bool
			wait time.Duration
		}{
			{"a", 0, true, 0}, {"a", 0, true, 0}, {"a", 0, true, 0},
			{"a", 0, false, 19 * time.Second},
			{"b", 0, true, 0}, // keys are independent
			{"a", 20 * time.Second, true, 0},
			{"a", 20 * time.Second, false, 19 * time.Second},
		}},
		{"zero means unlimited", 0, []struct {
			key  string
			at   time.Duration
			ok   bool
			wait time.Duration
		}{
			{"a", 0, true, 0}, {"a", 0, true, 0}, {"a", 0, true, 0}, {"a", 0, true, 0},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := ratelimit.New(tc.perMinute, 100)
			for i, s := range tc.steps {
				ok, wait := l.Allow(t.Context(), s.key, 1, t0.Add(s.at))
				if ok != s.ok {
					t.Fatalf("step %d (%s at %s): ok=%v, want %v", i, s.key, s.at, ok, s.ok)
				}
				if !ok && wait < s.wait {
					t.Fatalf("step %d: retry after %s, want at least %s", i, wait, s.wait)
				}
			}
		})
	}
}
