package predictor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"vigil/metrics"
	"vigil/predictor/predictionpb"
)

// Config configures a Client. Zero values take the defaults in brackets.
type Config struct {
	// Addr is predictor-py's gRPC address, host:port.
	Addr string
	// Timeout bounds one prediction from the moment it is asked for, waiting
	// for a batch included [50ms]: past it, the reading is scored by the
	// rules alone.
	Timeout time.Duration
	// BatchSize is the most predictions sent in one PredictBatch call [64];
	// 1 turns batching off (one Predict call per prediction).
	BatchSize int
	// BatchWait is the longest a prediction waits for others to join its
	// batch [2ms]. It waits only while earlier batches are in flight: a
	// prediction asked for on an idle client is sent at once.
	BatchWait time.Duration
	// MaxInFlight bounds batch calls in flight at once [4].
	MaxInFlight int
	// BreakerFailures is how many consecutive failed calls open the
	// breaker [5]; BreakerOpen how long it stays open before a probe [5s].
	BreakerFailures uint32
	BreakerOpen     time.Duration
	// ContributionsMax bounds the contributions asked for per prediction [5].
	ContributionsMax int
	// TLS, when set, is the connection's TLS configuration (predictor-py
	// started with --tls-cert and --tls-key); nil connects in plaintext,
	// for a predictor on the same host or behind a NetworkPolicy.
	TLS    *tls.Config
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Timeout <= 0 {
		c.Timeout = 50 * time.Millisecond
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 64
	}
	if c.BatchWait < 0 {
		c.BatchWait = 0
	} else if c.BatchWait == 0 {
		c.BatchWait = 2 * time.Millisecond
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = 5
	}
	if c.BreakerOpen <= 0 {
		c.BreakerOpen = 5 * time.Second
	}
	if c.ContributionsMax <= 0 {
		c.ContributionsMax = 5
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Request is one prediction to make.
type Request struct {
	PatientID string
	Features  map[string]float32
}

// Contribution is how much one input pushed the risk up, on the model's
// logit scale; Imputed marks an input the model had to fill in.
type Contribution struct {
	Feature string  `json:"feature"`
	Value   float64 `json:"value"`
	Logit   float64 `json:"logit"`
	Imputed bool    `json:"imputed,omitempty"`
}

// Prediction is the model's answer for one request.
type Prediction struct {
	Probability   float64
	Version       string
	Contributions []Contribution
}

// ErrUnavailable means the breaker is open: the predictor failed repeatedly
// and is not being called until a probe finds it back.
var ErrUnavailable = errors.New("predictor: unavailable (circuit open)")

// Client is predictor-py's client. Its connection reconnects by itself; its
// breaker turns a dead or slow service into fast ErrUnavailable answers
// instead of a deadline's wait per reading.
type Client struct {
	cfg    Config
	conn   *grpc.ClientConn
	rpc    predictionpb.RiskPredictorClient
	health healthpb.HealthClient
	cb     *gobreaker.CircuitBreaker[any]

	in   chan *call
	sem  chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup
	// invalid limits the log of refused requests to one a minute.
	invalid   rate.Sometimes
	closeOnce sync.Once
	closeErr  error
	mu        sync.Mutex // guards inFlight
	// inFlight counts batch calls on the wire; BatchWait applies only
	// while it is non-zero.
	inFlight int
}

type call struct {
	ctx  context.Context
	req  *predictionpb.PredictionRequest
	done chan result // buffered: the batcher never blocks on a caller gone
}

type result struct {
	resp *predictionpb.PredictionResponse
	err  error
}

// New creates a client; it connects lazily and reconnects by itself, so a
// predictor that is down at start only makes the first scores degraded.
func New(cfg Config) (*Client, error) {
	cfg.defaults()
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	conn, err := grpc.NewClient(cfg.Addr,
		grpc.WithTransportCredentials(creds),
		// With a dns:/// address that resolves to every predictor pod (a
		// headless Service), calls are spread over them all.
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		// A restarted predictor must be found again within seconds, not
		// after gRPC's default two-minute backoff.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("predictor: connect %s: %w", cfg.Addr, err)
	}
	c := &Client{
		cfg:    cfg,
		conn:   conn,
		rpc:    predictionpb.NewRiskPredictorClient(conn),
		health: healthpb.NewHealthClient(conn),
		in:     make(chan *call, 4*cfg.BatchSize*cfg.MaxInFlight),
		sem:    make(chan struct{}, cfg.MaxInFlight),
		quit:   make(chan struct{}),
	}
	c.invalid.Interval = time.Minute
	c.cb = gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:        "predictor",
		MaxRequests: 1,
		Timeout:     cfg.BreakerOpen,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= cfg.BreakerFailures },
		// A request the model refused was answered by a healthy service
		// (its cause is logged: it means Go and Python disagree on the
		// features); a cancellation says nothing either way and is not
		// counted at all, so it can neither reset a run of failures nor
		// close a half-open breaker.
		IsSuccessful: func(err error) bool {
			return err == nil || status.Code(err) == codes.InvalidArgument
		},
		IsExcluded: func(err error) bool {
			return status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			metrics.PredictorBreakerState.Set(float64(to))
			level := slog.LevelInfo
			if to == gobreaker.StateOpen {
				level = slog.LevelWarn
			}
			cfg.Logger.Log(context.Background(), level, "predictor circuit breaker", "from", from.String(), "to", to.String())
		},
	})
	metrics.PredictorBreakerState.Set(float64(gobreaker.StateClosed))
	if cfg.BatchSize > 1 {
		c.wg.Add(1)
		go c.batch()
	}
	return c, nil
}

// Predict asks for one prediction under ctx, bounded by the configured
// timeout. It fails fast with ErrUnavailable while the breaker is open.
func (c *Client) Predict(ctx context.Context, r Request) (Prediction, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	select {
	case <-c.quit:
		return Prediction{}, ErrUnavailable
	default:
	}
	if c.open() {
		metrics.PredictorCalls.WithLabelValues("rejected").Inc()
		return Prediction{}, ErrUnavailable
	}
	req := &predictionpb.PredictionRequest{PatientId: r.PatientID, Features: r.Features}
	if c.cfg.BatchSize == 1 {
		resp, err := c.execute(ctx, 1, func(ctx context.Context) (any, error) { return c.rpc.Predict(ctx, req) })
		if err != nil {
			return Prediction{}, err
		}
		return convert(resp.(*predictionpb.PredictionResponse))
	}
	cl := &call{ctx: ctx, req: req, done: make(chan result, 1)}
	select {
	case c.in <- cl:
	case <-ctx.Done():
		return Prediction{}, fmt.Errorf("predictor: queue: %w", ctx.Err())
	case <-c.quit:
		return Prediction{}, ErrUnavailable
	}
	select {
	case res := <-cl.done:
		if res.err != nil {
			return Prediction{}, res.err
		}
		return convert(res.resp)
	case <-ctx.Done():
		return Prediction{}, fmt.Errorf("predictor: %w", ctx.Err())
	}
}

// open reports whether the breaker is open: no call is being made.
func (c *Client) open() bool { return c.cb.State() == gobreaker.StateOpen }

// execute makes one call of n predictions through the breaker and records
// it; a call the breaker refuses is counted as rejected, not as a call.
func (c *Client) execute(ctx context.Context, n int, f func(context.Context) (any, error)) (any, error) {
	resp, err := c.cb.Execute(func() (any, error) {
		start := time.Now()
		defer func() {
			metrics.PredictorCallSeconds.Observe(time.Since(start).Seconds())
			metrics.PredictorBatchSize.Observe(float64(n))
		}()
		return f(ctx)
	})
	switch {
	case err == nil:
		metrics.PredictorCalls.WithLabelValues("ok").Inc()
		return resp, nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		metrics.PredictorCalls.WithLabelValues("rejected").Inc()
		return nil, ErrUnavailable
	case status.Code(err) == codes.InvalidArgument:
		metrics.PredictorCalls.WithLabelValues("invalid").Inc()
		// Vigil validated the reading, so a refused request means the two
		// sides disagree on the features (a deploy of mismatched versions):
		// say so loudly, but not once per reading. The server's message
		// names the feature, never its value.
		c.invalid.Do(func() {
			c.cfg.Logger.Error("predictor refused a request: Vigil and predictor-py disagree on the features (predictor-py/FEATURES.md)", "err", status.Convert(err).Message())
		})
	case status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded):
		metrics.PredictorCalls.WithLabelValues("timeout").Inc()
	default:
		metrics.PredictorCalls.WithLabelValues("error").Inc()
	}
	return nil, fmt.Errorf("predictor: %w", err)
}

// batch gathers queued predictions into PredictBatch calls: everything
// already queued goes at once. While other calls are in flight the service
// is busy, and a call's fixed cost (a round trip, the server's per-call
// work) outweighs the model's per-prediction work many times over, so it
// also waits up to BatchWait for more to join: at most that much latency,
// for fewer calls. On an idle client nothing waits.
func (c *Client) batch() {
	defer c.wg.Done()
	for {
		var first *call
		select {
		case first = <-c.in:
		case <-c.quit:
			return
		}
		b := c.drain([]*call{first})
		c.mu.Lock()
		busy := c.inFlight > 0
		c.mu.Unlock()
		if busy && len(b) < c.cfg.BatchSize {
			t := time.NewTimer(c.cfg.BatchWait)
		wait:
			for len(b) < c.cfg.BatchSize {
				select {
				case cl := <-c.in:
					b = append(b, cl)
				case <-t.C:
					break wait
				}
			}
			t.Stop()
		}
		select {
		case c.sem <- struct{}{}:
		case <-c.quit:
			fail(b, ErrUnavailable)
			return
		}
		b = c.drain(b)
		c.mu.Lock()
		c.inFlight++
		c.mu.Unlock()
		c.wg.Add(1)
		go c.send(b)
	}
}

func (c *Client) drain(b []*call) []*call {
	for len(b) < c.cfg.BatchSize {
		select {
		case cl := <-c.in:
			b = append(b, cl)
		default:
			return b
		}
	}
	return b
}

// send makes one batch call and answers each caller. The call runs until
// the latest deadline of its callers: each caller gives up at its own
// deadline anyway, and holding the whole batch to its most hurried member's
// would time out calls to a healthy service under load, and trip the
// breaker. Callers whose deadline passed while queued are left out.
func (c *Client) send(b []*call) {
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
		<-c.sem
		c.wg.Done()
	}()
	live := b[:0]
	var deadline time.Time
	for _, cl := range b {
		if cl.ctx.Err() != nil {
			continue
		}
		live = append(live, cl)
		if d, ok := cl.ctx.Deadline(); ok && d.After(deadline) {
			deadline = d
		}
	}
	if len(live) == 0 {
		return
	}
	// The call outlives no caller but is not cancelled by any one of them
	// leaving: the others still want their answers.
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	req := &predictionpb.PredictBatchRequest{
		Requests:         make([]*predictionpb.PredictionRequest, len(live)),
		MaxContributions: uint32(c.cfg.ContributionsMax),
	}
	for i, cl := range live {
		req.Requests[i] = cl.req
	}
	resp, err := c.execute(ctx, len(live), func(ctx context.Context) (any, error) { return c.rpc.PredictBatch(ctx, req) })
	if err != nil {
		fail(live, err)
		return
	}
	out := resp.(*predictionpb.PredictBatchResponse).GetResponses()
	if len(out) != len(live) {
		fail(live, fmt.Errorf("predictor: batch of %d answered with %d responses", len(live), len(out)))
		return
	}
	for i, cl := range live {
		cl.done <- result{resp: out[i]}
	}
}

func fail(b []*call, err error) {
	for _, cl := range b {
		cl.done <- result{err: err}
	}
}

func convert(r *predictionpb.PredictionResponse) (Prediction, error) {
	p := float64(r.GetProbability())
	if math.IsNaN(p) || p < 0 || p > 1 {
		return Prediction{}, fmt.Errorf("predictor: probability %v outside [0, 1]", p)
	}
	out := Prediction{Probability: p, Version: r.GetModelVersion()}
	for _, k := range r.GetContributions() {
		out.Contributions = append(out.Contributions, Contribution{
			Feature: k.GetFeature(), Value: float64(k.GetValue()), Logit: float64(k.GetLogit()), Imputed: k.GetImputed(),
		})
	}
	return out, nil
}

// Check asks the predictor's gRPC health service whether the model is
// serving, and reports an open breaker as a failure too.
func (c *Client) Check(ctx context.Context) error {
	if c.open() {
		return ErrUnavailable
	}
	resp, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{Service: predictionpb.RiskPredictor_ServiceDesc.ServiceName})
	if err != nil {
		return fmt.Errorf("predictor: health: %w", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("predictor: health: %s", resp.GetStatus())
	}
	return nil
}

// State is the breaker's state: closed, half-open or open.
func (c *Client) State() string { return c.cb.State().String() }

// Close stops batching and closes the connection; predictions asked for
// after Close fail with ErrUnavailable.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.quit)
		c.wg.Wait()
		if err := c.conn.Close(); err != nil {
			c.closeErr = fmt.Errorf("predictor: close: %w", err)
		}
	})
	return c.closeErr
}

// TLSConfig returns the TLS configuration of a connection to predictor-py
// that trusts the CA certificates in the PEM file caFile and expects
// serverName (empty: the host of the address dialled), or nil for plaintext
// when caFile is empty.
func TLSConfig(caFile, serverName string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("predictor: TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("predictor: TLS CA: no certificate in %s", caFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}, nil
}
