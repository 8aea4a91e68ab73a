package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"vigil/auth"
	"vigil/tracing"
)

// TestReadingIsTraced posts a reading with a client's traceparent to a real
// node and checks, with an in-memory exporter, that one trace spans the
// stages: the request (child of the client's span), the durable insert,
// scoring (continued on the pool's goroutine) and the publish.
func TestReadingIsTraced(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tracing.Use(tp)

	base := startNode(t)
	iss := auth.Issuer{Secret: []byte(benchSecret), Issuer: "vigil", Audience: "vigil"}
	tok, err := iss.Mint(auth.Claims{Role: auth.RolePatient, Trial: "T008", Site: "S01",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "P1001"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rr, spo2, sbp, hr, temp := 16.0, 97.0, 120.0, 72.0, 36.8
	body, _ := json.Marshal(map[string]any{"reading_id": uuid.NewString(), "patient_id": "P1001", "trial_id": "T008",
		"site_id": "S01", "measured_at": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339),
		"vitals": map[string]any{"respiratory_rate": rr, "spo2": spo2, "spo2_scale": 1, "on_oxygen": false,
			"systolic_bp": sbp, "heart_rate": hr, "consciousness": "alert", "temperature": temp}})
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("POST", base+"/v1/readings", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %d", resp.StatusCode)
	}

	byName := map[string]tracetest.SpanStub{}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range exp.GetSpans() {
			byName[s.Name] = s
		}
		if _, ok := byName["bus.publish"]; ok {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	parents := []struct{ span, parent string }{
		{"ingest.reading", ""}, // the client's span
		{"store.insert_reading", "ingest.reading"},
		{"scoring.process", "ingest.reading"},
		{"bus.publish", "scoring.process"},
	}
	for _, p := range parents {
		s, ok := byName[p.span]
		if !ok {
			t.Fatalf("no %s span; spans: %v", p.span, names(byName))
		}
		if got := s.SpanContext.TraceID().String(); got != clientTrace {
			t.Errorf("%s in trace %s, want the client's %s", p.span, got, clientTrace)
		}
		want := clientSpan
		if p.parent != "" {
			want = byName[p.parent].SpanContext.SpanID().String()
		}
		if got := s.Parent.SpanID().String(); got != want {
			t.Errorf("%s's parent is %s, want %s (%s)", p.span, got, want, p.parent)
		}
	}
}

func names(m map[string]tracetest.SpanStub) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
