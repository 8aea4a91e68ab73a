// Package config owns Vigil's configuration: the environment variables of
// DESIGN.md, overridden by command-line flags of the same name
// (VIGIL_RATE_PER_IP → --rate-per-ip). It imports nothing of Vigil's.
package config

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config is the configuration of one node.
type Config struct {
	Addr          string `env:"VIGIL_ADDR" envDefault:"127.0.0.1:8080"`
	HubAddr       string `env:"VIGIL_HUB_ADDR"`
	DB            string `env:"VIGIL_DB" envDefault:"sqlite://./data/vigil.db"`
	RedisURL      string `env:"VIGIL_REDIS_URL"`
	PredictorAddr string `env:"VIGIL_PREDICTOR_ADDR"`
	// PredictorTimeout bounds one prediction; PredictorBatch is the most
	// predictions per call (1: no batching); PredictorBatchWait the longest
	// one waits for others to join while calls are in flight.
	PredictorTimeout   time.Duration `env:"VIGIL_PREDICTOR_TIMEOUT" envDefault:"50ms"`
	PredictorBatch     int           `env:"VIGIL_PREDICTOR_BATCH" envDefault:"64"`
	PredictorBatchWait time.Duration `env:"VIGIL_PREDICTOR_BATCH_WAIT" envDefault:"2ms"`
	// PredictorTLSCA, when set, is a PEM file of the CA(s) that sign
	// predictor-py's certificate: the connection is then TLS, verified, with
	// PredictorTLSServerName as the expected name if set (else the address's
	// host).
	PredictorTLSCA         string        `env:"VIGIL_PREDICTOR_TLS_CA"`
	PredictorTLSServerName string        `env:"VIGIL_PREDICTOR_TLS_SERVER_NAME"`
	JWTSecret              string        `env:"VIGIL_JWT_SECRET"`
	JWTPublicKeys          string        `env:"VIGIL_JWT_PUBLIC_KEYS"`
	JWTIssuer              string        `env:"VIGIL_JWT_ISSUER" envDefault:"vigil"`
	JWTAudience            string        `env:"VIGIL_JWT_AUDIENCE" envDefault:"vigil"`
	AllowedOrigins         string        `env:"VIGIL_ALLOWED_ORIGINS"`
	RatePerPatient         int           `env:"VIGIL_RATE_PER_PATIENT" envDefault:"60"`
	RatePerIP              int           `env:"VIGIL_RATE_PER_IP" envDefault:"6000"`
	ScoringWorkers         int           `env:"VIGIL_SCORING_WORKERS" envDefault:"1024"`
	HistorySize            int           `env:"VIGIL_HISTORY_SIZE" envDefault:"1000"`
	TrustProxy             bool          `env:"VIGIL_TRUST_PROXY"`
	SweepInterval          time.Duration `env:"VIGIL_SWEEP_INTERVAL" envDefault:"30s"`
	// DrainDelay is how long a node keeps serving after SIGTERM while
	// /readyz says 503, so that load balancers stop sending it work before
	// it stops listening; ShutdownTimeout bounds what follows (finishing
	// requests, closing sessions, scoring what was admitted).
	DrainDelay      time.Duration `env:"VIGIL_DRAIN_DELAY" envDefault:"0s"`
	ShutdownTimeout time.Duration `env:"VIGIL_SHUTDOWN_TIMEOUT" envDefault:"25s"`

	// Escalation and notifications.
	EscalationInterval time.Duration `env:"VIGIL_ESCALATION_INTERVAL" envDefault:"1s"`
	EscalationFloor    time.Duration `env:"VIGIL_ESCALATION_FLOOR" envDefault:"1m"`
	MissedInterval     time.Duration `env:"VIGIL_MISSED_INTERVAL" envDefault:"30s"`
	NotifyBackoff      time.Duration `env:"VIGIL_NOTIFY_BACKOFF" envDefault:"2s"`
	SMTPAddr           string        `env:"VIGIL_SMTP_ADDR"`
	SMTPFrom           string        `env:"VIGIL_SMTP_FROM" envDefault:"vigil@localhost"`
	SMTPUsername       string        `env:"VIGIL_SMTP_USERNAME"`
	SMTPPassword       string        `env:"VIGIL_SMTP_PASSWORD"`
	PublicURL          string        `env:"VIGIL_PUBLIC_URL"`

	// OTLPEndpoint, when set, sends traces to this OTLP/gRPC collector
	// (host:port); TraceRatio is the share of new traces sampled.
	OTLPEndpoint string  `env:"VIGIL_OTLP_ENDPOINT"`
	OTLPInsecure bool    `env:"VIGIL_OTLP_INSECURE"`
	TraceRatio   float64 `env:"VIGIL_TRACE_RATIO" envDefault:"0.1"`
	// PprofAddr, when set, serves net/http/pprof on its own listener, for
	// profiling a running node; keep it on loopback.
	PprofAddr string `env:"VIGIL_PPROF_ADDR"`
	// MetricsAddr, when set, serves /metrics on its own listener (for
	// Prometheus on the cluster network) and not on VIGIL_ADDR.
	MetricsAddr string `env:"VIGIL_METRICS_ADDR"`
}

// Load reads the environment, then args as flags overriding it.
func Load(name string, args []string) (Config, *flag.FlagSet, error) {
	var c Config
	if err := env.Parse(&c); err != nil {
		return c, nil, fmt.Errorf("config: environment: %w", err)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c.Bind(fs)
	if err := fs.Parse(args); err != nil {
		return c, fs, err
	}
	return c, fs, nil
}

// Bind registers a flag for every field, with the current value as default.
func (c *Config) Bind(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "VIGIL_ADDR: the one public address: API, /ws and board")
	fs.StringVar(&c.HubAddr, "hub-addr", c.HubAddr, "VIGIL_HUB_ADDR: unused (the hub shares VIGIL_ADDR)")
	fs.StringVar(&c.DB, "db", c.DB, "VIGIL_DB: sqlite://PATH or postgres://…")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "VIGIL_REDIS_URL: empty for the in-process bus")
	fs.StringVar(&c.PredictorAddr, "predictor-addr", c.PredictorAddr, "VIGIL_PREDICTOR_ADDR: gRPC address of predictor-py")
	fs.DurationVar(&c.PredictorTimeout, "predictor-timeout", c.PredictorTimeout, "VIGIL_PREDICTOR_TIMEOUT: deadline of one prediction; past it the rules decide alone")
	fs.IntVar(&c.PredictorBatch, "predictor-batch", c.PredictorBatch, "VIGIL_PREDICTOR_BATCH: most predictions per call; 1 = no micro-batching")
	fs.StringVar(&c.PredictorTLSCA, "predictor-tls-ca", c.PredictorTLSCA, "VIGIL_PREDICTOR_TLS_CA: PEM file of the CA of predictor-py's certificate (TLS to the predictor; empty: plaintext)")
	fs.StringVar(&c.PredictorTLSServerName, "predictor-tls-server-name", c.PredictorTLSServerName, "VIGIL_PREDICTOR_TLS_SERVER_NAME: the name predictor-py's certificate must carry (default: the address's host)")
	fs.DurationVar(&c.PredictorBatchWait, "predictor-batch-wait", c.PredictorBatchWait, "VIGIL_PREDICTOR_BATCH_WAIT: longest a prediction waits to join a batch while calls are in flight")
	fs.StringVar(&c.JWTSecret, "jwt-secret", c.JWTSecret, "VIGIL_JWT_SECRET: HS256 secret")
	fs.StringVar(&c.JWTPublicKeys, "jwt-public-keys", c.JWTPublicKeys, "VIGIL_JWT_PUBLIC_KEYS: PEM file of public keys")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", c.JWTIssuer, "VIGIL_JWT_ISSUER: required iss")
	fs.StringVar(&c.JWTAudience, "jwt-audience", c.JWTAudience, "VIGIL_JWT_AUDIENCE: required aud")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", c.AllowedOrigins, "VIGIL_ALLOWED_ORIGINS: WebSocket Origin allow-list")
	fs.IntVar(&c.RatePerPatient, "rate-per-patient", c.RatePerPatient, "VIGIL_RATE_PER_PATIENT: requests/min per patient; 0 = no limit")
	fs.IntVar(&c.RatePerIP, "rate-per-ip", c.RatePerIP, "VIGIL_RATE_PER_IP: requests/min per client IP; 0 = no limit")
	fs.IntVar(&c.ScoringWorkers, "scoring-workers", c.ScoringWorkers, "VIGIL_SCORING_WORKERS: scoring pool size")
	fs.IntVar(&c.HistorySize, "history-size", c.HistorySize, "VIGIL_HISTORY_SIZE: events kept per room")
	fs.BoolVar(&c.TrustProxy, "trust-proxy", c.TrustProxy, "VIGIL_TRUST_PROXY: client IP from X-Forwarded-For")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", c.SweepInterval, "VIGIL_SWEEP_INTERVAL: rescoring sweep period")
	fs.DurationVar(&c.DrainDelay, "drain-delay", c.DrainDelay, "VIGIL_DRAIN_DELAY: after SIGTERM, keep serving this long with /readyz 503 before shutting down")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "VIGIL_SHUTDOWN_TIMEOUT: bound on the shutdown after the drain delay")
	fs.DurationVar(&c.EscalationInterval, "escalation-interval", c.EscalationInterval, "VIGIL_ESCALATION_INTERVAL: how often due escalations are looked for")
	fs.DurationVar(&c.EscalationFloor, "escalation-floor", c.EscalationFloor, "VIGIL_ESCALATION_FLOOR: shortest delay between two pages of one alert, whatever a protocol says")
	fs.DurationVar(&c.MissedInterval, "missed-interval", c.MissedInterval, "VIGIL_MISSED_INTERVAL: how often silent patients are looked for")
	fs.DurationVar(&c.NotifyBackoff, "notify-backoff", c.NotifyBackoff, "VIGIL_NOTIFY_BACKOFF: first retry delay of a failed notification")
	fs.StringVar(&c.SMTPAddr, "smtp-addr", c.SMTPAddr, "VIGIL_SMTP_ADDR: host:port of the SMTP relay for email notifications")
	fs.StringVar(&c.SMTPFrom, "smtp-from", c.SMTPFrom, "VIGIL_SMTP_FROM: sender address")
	fs.StringVar(&c.SMTPUsername, "smtp-username", c.SMTPUsername, "VIGIL_SMTP_USERNAME: SMTP AUTH user (optional)")
	fs.StringVar(&c.SMTPPassword, "smtp-password", c.SMTPPassword, "VIGIL_SMTP_PASSWORD: SMTP AUTH password")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", c.OTLPEndpoint, "VIGIL_OTLP_ENDPOINT: OTLP/gRPC collector for traces (host:port; empty: tracing off)")
	fs.BoolVar(&c.OTLPInsecure, "otlp-insecure", c.OTLPInsecure, "VIGIL_OTLP_INSECURE: send traces without TLS")
	fs.Float64Var(&c.TraceRatio, "trace-ratio", c.TraceRatio, "VIGIL_TRACE_RATIO: share of new traces sampled (a client's sampled traceparent is always followed)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "VIGIL_METRICS_ADDR: serve /metrics here instead of on the public address (empty: on VIGIL_ADDR)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", c.PprofAddr, "VIGIL_PPROF_ADDR: serve net/http/pprof here (loopback; empty: off)")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "VIGIL_PUBLIC_URL: the board's URL, for links in notifications")
}

// Origins splits AllowedOrigins into host patterns.
func (c Config) Origins() []string {
	var out []string
	for _, o := range strings.Split(c.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// SQLitePath returns the file of a sqlite:// DB URL, or "" for another scheme.
func (c Config) SQLitePath() string {
	if p, ok := strings.CutPrefix(c.DB, "sqlite://"); ok {
		return p
	}
	return ""
}
