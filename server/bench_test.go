package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"vigil/auth"
	"vigil/config"
	"vigil/server"
)

const benchSecret = "bench-secret-bench-secret-bench-secret"

// startNode runs a real node on a loopback port with a temporary database;
// opts adjust its configuration.
func startNode(tb testing.TB, opts ...func(*config.Config)) string {
	tb.Helper()
	cfg := config.Config{Addr: "127.0.0.1:0", DB: "sqlite://" + filepath.Join(tb.TempDir(), "v.db"),
		JWTSecret: benchSecret, JWTIssuer: "vigil", JWTAudience: "vigil", ScoringWorkers: 4096, HistorySize: 100}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

// BenchmarkIngestPath measures what the one-origin design costs a reading:
// "direct" is Vigil's design (Fiber owns the listener, /ws is hijacked), and
// "behind-proxy" is the alternative of a net/http front that reverse-proxies
// the API to Fiber. See docs/architecture.md.
func BenchmarkIngestPath(b *testing.B) {
	base := startNode(b)
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	target, _ := url.Parse(base)
	proxy := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}
	go func() { _ = proxy.Serve(proxyLn) }()
	b.Cleanup(func() { proxy.Close() })

	iss := auth.Issuer{Secret: []byte(benchSecret), Issuer: "vigil", Audience: "vigil"}
	for _, tc := range []struct{ name, url string }{
		{"direct", base}, {"behind-proxy", "http://" + proxyLn.Addr().String()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				pid := "P" + uuid.NewString()[:8]
				tok, err := iss.Mint(auth.Claims{Role: auth.RolePatient, Trial: "T1", Site: "S1",
					RegisteredClaims: subjectClaims(pid)}, time.Hour)
				if err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					body := fmt.Sprintf(`{"reading_id":%q,"patient_id":%q,"trial_id":"T1","site_id":"S1",`+
						`"measured_at":%q,"vitals":{"heart_rate":80,"respiratory_rate":16,"spo2":97}}`,
						uuid.NewString(), pid, time.Now().UTC().Format(time.RFC3339))
					req, _ := http.NewRequest("POST", tc.url+"/v1/readings", bytes.NewBufferString(body))
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
