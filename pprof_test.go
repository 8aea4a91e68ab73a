package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
)

func TestPprofOnlyOnLoopback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"localhost:0", true},
		{"0.0.0.0:0", false},
		{":0", false},
		{"10.1.2.3:6060", false},
		{"no-port", false},
	} {
		err := servePprof(ctx, tc.addr, log)
		if (err == nil) != tc.ok {
			t.Errorf("servePprof(%q): %v, want ok %v", tc.addr, err, tc.ok)
		}
	}
}
