package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/config"
	"vigil/server"
)

// TestMetricsOnTheirOwnAddress: with VIGIL_METRICS_ADDR, /metrics is served
// there and not on the public address.
func TestMetricsOnTheirOwnAddress(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := free.Addr().String()
	free.Close()
	cfg := config.Config{Addr: "127.0.0.1:0", DB: "sqlite://" + filepath.Join(t.TempDir(), "v.db"), MetricsAddr: maddr,
		JWTSecret: benchSecret, JWTIssuer: "vigil", JWTAudience: "vigil", ScoringWorkers: 16, HistorySize: 100}
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	get := func(url string) (int, string) {
		for deadline := time.Now().Add(5 * time.Second); ; {
			resp, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", url, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if code, body := get("http://" + maddr + "/metrics"); code != 200 || !strings.Contains(body, "vigil_hub_sessions") {
		t.Errorf("metrics address: %d", code)
	}
	if code, _ := get("http://" + ln.Addr().String() + "/metrics"); code != 404 {
		t.Errorf("public /metrics: %d, want 404", code)
	}
}
