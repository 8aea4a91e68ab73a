package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"vigil/tracing"
)

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	withSpan := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	tests := []struct {
		name      string
		ctx       context.Context
		wantTrace string
	}{
		{"a context with a span", withSpan, tid.String()},
		{"a context without", context.Background(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(tracing.LogHandler{Handler: slog.NewJSONHandler(&buf, nil)}).With("component", "x")
			log.InfoContext(tt.ctx, "hello")
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatal(err)
			}
			if got, _ := rec["trace_id"].(string); got != tt.wantTrace {
				t.Errorf("trace_id %q, want %q (%s)", got, tt.wantTrace, buf.String())
			}
			if tt.wantTrace != "" && rec["span_id"] != sid.String() {
				t.Errorf("span_id %v, want %s", rec["span_id"], sid)
			}
			if rec["component"] != "x" {
				t.Errorf("attributes of With lost: %s", buf.String())
			}
		})
	}
}

// TestSetupWithoutEndpointIsOff: no endpoint, no exporter, and a shutdown
// that does nothing.
func TestSetupWithoutEndpointIsOff(t *testing.T) {
	stop, err := tracing.Setup(context.Background(), tracing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, span := tracing.Start(context.Background(), "x")
	defer span.End()
	if span.SpanContext().IsValid() && span.IsRecording() {
		t.Error("a span is recorded with tracing off")
	}
}
