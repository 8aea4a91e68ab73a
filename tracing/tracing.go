// Package tracing owns Vigil's OpenTelemetry tracing: the OTLP exporter set
// up from configuration (tracing is off unless an endpoint is configured),
// the tracer every stage starts its spans with, the W3C trace context a
// client may send, and a slog handler that adds the trace and span ids to
// records logged with a context. Spans carry ids and outcomes, never vitals,
// tokens or patient identifiers.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// active says whether a provider was installed (Setup with an endpoint, or
// Use). Until then Start makes no span at all: even the global no-op
// provider allocates three objects per span, on every reading's path.
var active atomic.Bool

// Start starts a span of Vigil's as a child of ctx's, or returns ctx and a
// span that does nothing when tracing is off.
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !active.Load() {
		return ctx, noop.Span{}
	}
	return otel.Tracer("vigil").Start(ctx, name, opts...)
}

// Use installs tp as the provider of Vigil's spans (Setup does this with its
// exporter; tests with an in-memory one).
func Use(tp trace.TracerProvider) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	otel.SetTracerProvider(tp)
	active.Store(true)
}

// Config configures Setup.
type Config struct {
	// Endpoint is the OTLP/gRPC collector (host:port); empty turns tracing
	// off.
	Endpoint string
	// Insecure sends without TLS (a collector beside the node).
	Insecure bool
	// Ratio is the share of new traces sampled (0–1); a request that comes
	// with a sampled trace context is always traced.
	Ratio float64
	// Version is the service version recorded on every span.
	Version string
}

// Setup installs the exporter and returns the function that flushes and
// stops it. Without an endpoint it installs nothing and returns a no-op.
func Setup(ctx context.Context, cfg Config) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	if cfg.Endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Endpoint)}
	if cfg.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName("vigil"), semconv.ServiceVersion(cfg.Version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Ratio))),
	)
	Use(tp)
	return tp.Shutdown, nil
}

// Extract returns ctx carrying the trace context of a request's headers
// (traceparent, tracestate), read with get.
func Extract(ctx context.Context, get func(key string) string) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, headerCarrier(get))
}

type headerCarrier func(string) string

func (h headerCarrier) Get(key string) string { return h(key) }
func (h headerCarrier) Set(string, string)    {}
func (h headerCarrier) Keys() []string        { return nil }

// LogHandler adds trace_id and span_id to every record logged with a
// context that carries a span, so a log line leads to its trace.
type LogHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h LogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return LogHandler{h.Handler.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h LogHandler) WithGroup(name string) slog.Handler { return LogHandler{h.Handler.WithGroup(name)} }
