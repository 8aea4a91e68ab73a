package predictor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"vigil/predictor"
	"vigil/predictor/predictionpb"
)

// modelServer is a gRPC RiskPredictor over a real loopback connection whose
// behaviour each test sets: it answers probability = features["p"], after
// delay, or fails with code. The real model's server (predictor-py) is
// exercised by the integration tests; these test the client's batching,
// deadline and breaker, which need a server told exactly how to misbehave.
type modelServer struct {
	predictionpb.UnimplementedRiskPredictorServer
	mu      sync.Mutex
	delay   time.Duration
	code    codes.Code
	batches []int
	singles int
}

func (m *modelServer) behave(ctx context.Context) error {
	m.mu.Lock()
	delay, code := m.delay, m.code
	m.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	if code != codes.OK {
		return status.Error(code, "told to fail")
	}
	return nil
}

func answer(r *predictionpb.PredictionRequest) *predictionpb.PredictionResponse {
	return &predictionpb.PredictionResponse{PatientId: r.GetPatientId(), Probability: r.GetFeatures()["p"], ModelVersion: "lr-test",
		Contributions: []*predictionpb.Contribution{{Feature: "p", Value: r.GetFeatures()["p"], Logit: 1}}}
}

func (m *modelServer) Predict(ctx context.Context, r *predictionpb.PredictionRequest) (*predictionpb.PredictionResponse, error) {
	m.mu.Lock()
	m.singles++
	m.mu.Unlock()
	if err := m.behave(ctx); err != nil {
		return nil, err
	}
	return answer(r), nil
}

func (m *modelServer) PredictBatch(ctx context.Context, r *predictionpb.PredictBatchRequest) (*predictionpb.PredictBatchResponse, error) {
	m.mu.Lock()
	m.batches = append(m.batches, len(r.GetRequests()))
	m.mu.Unlock()
	if err := m.behave(ctx); err != nil {
		return nil, err
	}
	out := &predictionpb.PredictBatchResponse{}
	for _, q := range r.GetRequests() {
		out.Responses = append(out.Responses, answer(q))
	}
	return out, nil
}

func (m *modelServer) set(delay time.Duration, code codes.Code) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delay, m.code = delay, code
}

func (m *modelServer) calls() (batches []int, singles int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int(nil), m.batches...), m.singles
}

// serve starts m on addr ("127.0.0.1:0" for any port) and returns the
// address and a stop function.
func serve(t *testing.T, m *modelServer, addr string) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	predictionpb.RegisterRiskPredictorServer(s, m)
	hs := health.NewServer()
	hs.SetServingStatus(predictionpb.RiskPredictor_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	go func() { _ = s.Serve(ln) }()
	var once sync.Once
	stop := func() { once.Do(s.Stop) }
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func newClient(t *testing.T, cfg predictor.Config) *predictor.Client {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	c, err := predictor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func req(i int) predictor.Request {
	return predictor.Request{PatientID: fmt.Sprintf("P%d", i), Features: map[string]float32{"p": float32(i%100) / 100}}
}

func TestBatchingAnswersEachCaller(t *testing.T) {
	m := &modelServer{}
	addr, _ := serve(t, m, "127.0.0.1:0")
	c := newClient(t, predictor.Config{Addr: addr, Timeout: 5 * time.Second, BatchSize: 16, BatchWait: 5 * time.Millisecond, MaxInFlight: 1})
	ctx := context.Background()
	// On an idle client a prediction goes at once, alone.
	if _, err := c.Predict(ctx, req(1)); err != nil {
		t.Fatal(err)
	}
	if b, _ := m.calls(); len(b) != 1 || b[0] != 1 {
		t.Fatalf("idle prediction sent as batches %v, want one batch of 1", b)
	}
	// A slow call in flight makes the next predictions queue and share calls.
	m.set(50*time.Millisecond, codes.OK)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := req(i)
			p, err := c.Predict(ctx, r)
			switch {
			case err != nil:
				errs <- err
			case p.Probability != float64(r.Features["p"]) || p.Version != "lr-test" || len(p.Contributions) != 1:
				errs <- fmt.Errorf("%s answered %+v: answers crossed between callers", r.PatientID, p)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	batches, singles := m.calls()
	total := 0
	for _, b := range batches[1:] {
		if b > 16 {
			t.Errorf("batch of %d exceeds BatchSize 16", b)
		}
		total += b
	}
	if total != n || singles != 0 {
		t.Fatalf("batches %v carried %d predictions (want %d), %d Predict calls (want 0)", batches, total, n, singles)
	}
	if len(batches)-1 > n/4 {
		t.Fatalf("%d calls for %d concurrent predictions: not batching", len(batches)-1, n)
	}
}

func TestBatchSizeOneUsesPredict(t *testing.T) {
	m := &modelServer{}
	addr, _ := serve(t, m, "127.0.0.1:0")
	c := newClient(t, predictor.Config{Addr: addr, Timeout: 5 * time.Second, BatchSize: 1})
	for i := range 5 {
		p, err := c.Predict(context.Background(), req(i))
		if err != nil || p.Probability != float64(req(i).Features["p"]) {
			t.Fatalf("Predict: %+v, %v", p, err)
		}
	}
	if batches, singles := m.calls(); len(batches) != 0 || singles != 5 {
		t.Fatalf("batches %v singles %d; want the original Predict method, 5 times", batches, singles)
	}
}

func TestDeadlineBoundsAPrediction(t *testing.T) {
	for _, size := range []int{1, 64} {
		t.Run(fmt.Sprint("batch ", size), func(t *testing.T) {
			m := &modelServer{}
			m.set(time.Second, codes.OK)
			addr, _ := serve(t, m, "127.0.0.1:0")
			c := newClient(t, predictor.Config{Addr: addr, Timeout: 30 * time.Millisecond, BatchSize: size})
			_, err := c.Predict(context.Background(), req(1))
			if !errors.Is(err, context.DeadlineExceeded) && status.Code(errors.Unwrap(err)) != codes.DeadlineExceeded {
				t.Fatalf("slow predictor: err %v, want a deadline error", err)
			}
		})
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	for _, size := range []int{1, 64} {
		t.Run(fmt.Sprint("batch ", size), func(t *testing.T) {
			m := &modelServer{}
			m.set(0, codes.Unavailable)
			addr, _ := serve(t, m, "127.0.0.1:0")
			c := newClient(t, predictor.Config{Addr: addr, Timeout: 5 * time.Second, BatchSize: size,
				BreakerFailures: 3, BreakerOpen: 100 * time.Millisecond})
			ctx := context.Background()
			for i := range 3 {
				if _, err := c.Predict(ctx, req(i)); err == nil || errors.Is(err, predictor.ErrUnavailable) {
					t.Fatalf("call %d: err %v, want the server's error", i, err)
				}
			}
			if _, err := c.Predict(ctx, req(4)); !errors.Is(err, predictor.ErrUnavailable) {
				t.Fatalf("after 3 failures: err %v, want ErrUnavailable", err)
			}
			if b, s := m.calls(); len(b)+s != 3 {
				t.Fatalf("%d calls reached the server; an open breaker must not call it", len(b)+s)
			}
			if c.State() != "open" || c.Check(ctx) == nil {
				t.Fatalf("state %s: the breaker is open and Check must say so", c.State())
			}
			// The service comes back: a half-open probe closes the breaker.
			m.set(0, codes.OK)
			deadline := time.Now().Add(10 * time.Second)
			for {
				p, err := c.Predict(ctx, req(42))
				if err == nil {
					if p.Probability != float64(req(42).Features["p"]) {
						t.Fatalf("after recovery: %+v", p)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("breaker never closed: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if c.State() != "closed" || c.Check(ctx) != nil {
				t.Fatalf("state %s after a successful probe, want closed and healthy", c.State())
			}
		})
	}
}

// TestBadInputDoesNotTrip: a request the model refuses says nothing about
// the service's health (STACK.md: exclude bad-input errors).
func TestBadInputDoesNotTrip(t *testing.T) {
	m := &modelServer{}
	m.set(0, codes.InvalidArgument)
	addr, _ := serve(t, m, "127.0.0.1:0")
	c := newClient(t, predictor.Config{Addr: addr, Timeout: 5 * time.Second, BatchSize: 1, BreakerFailures: 2})
	for i := range 6 {
		if _, err := c.Predict(context.Background(), req(i)); status.Code(errors.Unwrap(err)) != codes.InvalidArgument {
			t.Fatalf("call %d: %v, want InvalidArgument", i, err)
		}
	}
	if c.State() != "closed" {
		t.Fatalf("breaker %s after bad-input errors, want closed", c.State())
	}
}

// TestReconnects: a predictor restarted on its address is found again
// without a new client.
func TestReconnects(t *testing.T) {
	m := &modelServer{}
	addr, stop := serve(t, m, "127.0.0.1:0")
	c := newClient(t, predictor.Config{Addr: addr, Timeout: 2 * time.Second, BatchSize: 1,
		BreakerFailures: 1000})
	ctx := context.Background()
	if _, err := c.Predict(ctx, req(1)); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := c.Predict(ctx, req(2)); err == nil {
		t.Fatal("a stopped predictor answered")
	}
	serve(t, m, addr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Predict(ctx, req(3)); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("never reconnected: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProbabilityOutOfRangeIsAnError(t *testing.T) {
	m := &modelServer{}
	addr, _ := serve(t, m, "127.0.0.1:0")
	c := newClient(t, predictor.Config{Addr: addr, Timeout: 5 * time.Second})
	r := predictor.Request{PatientID: "P1", Features: map[string]float32{"p": 1.5}}
	if p, err := c.Predict(context.Background(), r); err == nil {
		t.Fatalf("probability 1.5 accepted: %+v", p)
	}
}

// TestCancellationIsNotCounted: a cancelled call neither resets a run of
// failures nor counts as one (STACK.md: exclude cancellations).
func TestCancellationIsNotCounted(t *testing.T) {
	m := &modelServer{}
	m.set(0, codes.Unavailable)
	addr, _ := serve(t, m, "127.0.0.1:0")
	c := newClient(t, predictor.Config{Addr: addr, Timeout: 5 * time.Second, BatchSize: 1, BreakerFailures: 3})
	ctx := context.Background()
	for range 2 {
		if _, err := c.Predict(ctx, req(1)); err == nil {
			t.Fatal("the failing server answered")
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Predict(cancelled, req(2)); err == nil {
		t.Fatal("a cancelled call answered")
	}
	if c.State() != "closed" {
		t.Fatalf("breaker %s after 2 failures and a cancellation, want closed", c.State())
	}
	if _, err := c.Predict(ctx, req(3)); err == nil {
		t.Fatal("the failing server answered")
	}
	if c.State() != "open" {
		t.Fatalf("breaker %s after 3 failures with a cancellation between: the cancellation reset the count", c.State())
	}
}

func TestCloseIsFinal(t *testing.T) {
	m := &modelServer{}
	addr, _ := serve(t, m, "127.0.0.1:0")
	for _, size := range []int{1, 64} {
		c, err := predictor.New(predictor.Config{Addr: addr, Timeout: time.Second, BatchSize: size})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Predict(context.Background(), req(1)); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := c.Predict(context.Background(), req(2)); !errors.Is(err, predictor.ErrUnavailable) {
			t.Fatalf("batch %d: Predict after Close: %v, want ErrUnavailable", size, err)
		}
	}
}
