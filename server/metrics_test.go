package server_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"vigil/config"
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
	base := startNode(t, func(c *config.Config) { c.MetricsAddr = maddr })
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
	if code, _ := get(base + "/metrics"); code != 404 {
		t.Errorf("public /metrics: %d, want 404", code)
	}
}
