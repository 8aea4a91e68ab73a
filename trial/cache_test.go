package trial

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errNotFound = errors.New("not found")

// fakeSource counts loads; gate, when set, holds every load until closed.
type fakeSource struct {
	mu        sync.Mutex
	protocols map[string]Protocol
	patients  map[patientKey]PatientRecord
	fail      error
	gate      chan struct{}
	started   chan struct{} // receives once per load, if set
	protoN    atomic.Int32
	patientN  atomic.Int32
}

func newFakeSource() *fakeSource {
	return &fakeSource{protocols: map[string]Protocol{}, patients: map[patientKey]PatientRecord{}}
}

func (f *fakeSource) wait(ctx context.Context) error {
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (f *fakeSource) Protocol(ctx context.Context, trialID string) (Protocol, error) {
	f.protoN.Add(1)
	if err := f.wait(ctx); err != nil {
		return Protocol{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return Protocol{}, f.fail
	}
	p, ok := f.protocols[trialID]
	if !ok {
		return Protocol{}, errNotFound
	}
	return p, nil
}

func (f *fakeSource) Patient(ctx context.Context, t, s, p string) (PatientRecord, error) {
	f.patientN.Add(1)
	if err := f.wait(ctx); err != nil {
		return PatientRecord{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return PatientRecord{}, f.fail
	}
	r, ok := f.patients[patientKey{t, s, p}]
	if !ok {
		return PatientRecord{}, errNotFound
	}
	return r, nil
}

func (f *fakeSource) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestCache(t *testing.T, src Source, clock *fakeClock) *Cache {
	t.Helper()
	cfg := CacheConfig{Source: src, IsNotFound: func(err error) bool { return errors.Is(err, errNotFound) }}
	if clock != nil {
		cfg.Now = clock.Now
	}
	c, err := NewCache(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestNewCacheNeedsSource(t *testing.T) {
	if _, err := NewCache(CacheConfig{}); err == nil {
		t.Error("no source: no error")
	}
	if _, err := NewCache(CacheConfig{Source: newFakeSource()}); err == nil {
		t.Error("no IsNotFound: no error")
	}
}

func TestCacheProtocol(t *testing.T) {
	src := newFakeSource()
	src.protocols["T1"] = validProtocol()
	c := newTestCache(t, src, nil)
	ctx := t.Context()

	for range 3 {
		p, configured, err := c.Protocol(ctx, "T1")
		if err != nil || !configured || p.TrialID != "T008" {
			t.Fatalf("Protocol(T1) = %v %v %v", p.TrialID, configured, err)
		}
	}
	if n := src.protoN.Load(); n != 1 {
		t.Errorf("loads = %d, want 1", n)
	}

	// A trial without a protocol gets the default, and the miss is cached.
	for range 3 {
		p, configured, err := c.Protocol(ctx, "T2")
		if err != nil || configured || p.TrialID != "T2" || len(p.Escalation.Tiers) != 1 {
			t.Fatalf("Protocol(T2) = %+v %v %v", p, configured, err)
		}
	}
	if n := src.protoN.Load(); n != 2 {
		t.Errorf("loads = %d, want 2 (one per trial)", n)
	}
}

func TestCachePatientNegative(t *testing.T) {
	src := newFakeSource()
	rec := validRecord()
	src.patients[patientKey{"T008", "S01", "P1001"}] = rec
	c := newTestCache(t, src, nil)
	ctx := t.Context()

	r, registered, err := c.Patient(ctx, "T008", "S01", "P1001")
	if err != nil || !registered || r.SpO2Scale != 2 {
		t.Fatalf("registered patient: %+v %v %v", r, registered, err)
	}
	// A burst from an unregistered patient costs one lookup.
	for range 100 {
		r, registered, err := c.Patient(ctx, "T008", "S01", "P9")
		if err != nil || registered || r.PatientID != "" {
			t.Fatalf("unregistered patient: %+v %v %v", r, registered, err)
		}
	}
	if n := src.patientN.Load(); n != 2 {
		t.Errorf("loads = %d, want 2", n)
	}
}

func TestCacheErrorsAreNotCached(t *testing.T) {
	src := newFakeSource()
	src.fail = errors.New("database down")
	c := newTestCache(t, src, nil)
	ctx := t.Context()
	if _, _, err := c.Protocol(ctx, "T1"); err == nil {
		t.Fatal("no error")
	}
	if _, _, err := c.Patient(ctx, "T1", "S1", "P1"); err == nil {
		t.Fatal("no error")
	}
	src.set(func() { src.fail = nil; src.protocols["T1"] = validProtocol() })
	if _, configured, err := c.Protocol(ctx, "T1"); err != nil || !configured {
		t.Fatalf("after recovery: %v %v", configured, err)
	}
	if _, registered, err := c.Patient(ctx, "T1", "S1", "P1"); err != nil || registered {
		t.Fatalf("after recovery: %v %v", registered, err)
	}
}

func TestCacheConcurrentGetsLoadOnce(t *testing.T) {
	src := newFakeSource()
	src.protocols["T1"] = validProtocol()
	src.gate = make(chan struct{})
	src.started = make(chan struct{}, 100)
	c := newTestCache(t, src, nil)

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for range n {
		wg.Go(func() {
			if _, ok, err := c.Protocol(t.Context(), "T1"); err != nil || !ok {
				errs <- errors.Join(err, errors.New("not configured"))
			}
		})
		wg.Go(func() {
			if _, ok, err := c.Patient(t.Context(), "T1", "S1", "P1"); err != nil || ok {
				errs <- errors.Join(err, errors.New("registered"))
			}
		})
	}
	// Wait until both loads are in flight, give the other callers time to
	// queue behind them, then let the loads finish.
	<-src.started
	<-src.started
	time.Sleep(50 * time.Millisecond)
	close(src.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p, r := src.protoN.Load(), src.patientN.Load(); p != 1 || r != 1 {
		t.Errorf("loads: protocol %d, patient %d; want 1 each", p, r)
	}
}

// A caller who gives up does not fail the load the others wait for.
func TestCacheCanceledCallerDoesNotFailOthers(t *testing.T) {
	src := newFakeSource()
	src.protocols["T1"] = validProtocol()
	src.gate = make(chan struct{})
	src.started = make(chan struct{}, 10)
	c := newTestCache(t, src, nil)

	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, _, err := c.Protocol(ctx, "T1")
		first <- err
	}()
	<-src.started
	second := make(chan error, 1)
	go func() {
		_, ok, err := c.Protocol(t.Context(), "T1")
		if err == nil && !ok {
			err = errors.New("not configured")
		}
		second <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	time.Sleep(20 * time.Millisecond)
	close(src.gate)
	if err := <-second; err != nil {
		t.Errorf("second caller: %v", err)
	}
	<-first
	if n := src.protoN.Load(); n != 1 {
		t.Errorf("loads = %d, want 1", n)
	}
}

func TestCacheTTL(t *testing.T) {
	src := newFakeSource()
	src.protocols["T1"] = validProtocol()
	clock := &fakeClock{now: time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)}
	c := newTestCache(t, src, clock)
	ctx := t.Context()

	get := func() Protocol {
		t.Helper()
		p, _, err := c.Protocol(ctx, "T1")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	get()
	src.set(func() { p := validProtocol(); p.Title = "v2"; src.protocols["T1"] = p })
	clock.Add(29 * time.Second)
	if got := get(); got.Title != "Phase II" {
		t.Errorf("before the TTL: title %q, want the cached one", got.Title)
	}
	clock.Add(2 * time.Second)
	if got := get(); got.Title != "v2" {
		t.Errorf("after the TTL: title %q, want v2", got.Title)
	}
	if n := src.protoN.Load(); n != 2 {
		t.Errorf("loads = %d, want 2", n)
	}

	// Misses expire too: a patient registered on another node is seen
	// within the TTL.
	if _, ok, _ := c.Patient(ctx, "T1", "S1", "P1"); ok {
		t.Fatal("registered before registration")
	}
	src.set(func() { src.patients[patientKey{"T1", "S1", "P1"}] = validRecord() })
	if _, ok, _ := c.Patient(ctx, "T1", "S1", "P1"); ok {
		t.Error("miss not cached")
	}
	clock.Add(31 * time.Second)
	if _, ok, _ := c.Patient(ctx, "T1", "S1", "P1"); !ok {
		t.Error("miss cached past the TTL")
	}
}

func TestCacheInvalidate(t *testing.T) {
	src := newFakeSource()
	src.protocols["T1"] = validProtocol()
	c := newTestCache(t, src, nil)
	ctx := t.Context()

	if _, ok, _ := c.Protocol(ctx, "T1"); !ok {
		t.Fatal("not configured")
	}
	if _, ok, _ := c.Patient(ctx, "T1", "S1", "P1"); ok {
		t.Fatal("registered")
	}
	src.set(func() {
		p := validProtocol()
		p.Title = "v2"
		src.protocols["T1"] = p
		src.patients[patientKey{"T1", "S1", "P1"}] = validRecord()
	})
	c.InvalidateProtocol("T1")
	c.InvalidatePatient("T1", "S1", "P1")
	if p, _, _ := c.Protocol(ctx, "T1"); p.Title != "v2" {
		t.Errorf("after InvalidateProtocol: title %q", p.Title)
	}
	if _, ok, _ := c.Patient(ctx, "T1", "S1", "P1"); !ok {
		t.Error("after InvalidatePatient: not registered")
	}
	// Other keys are untouched.
	loads := src.patientN.Load()
	c.InvalidatePatient("T1", "S1", "P2")
	if _, _, _ = c.Patient(ctx, "T1", "S1", "P1"); src.patientN.Load() != loads {
		t.Error("invalidating P2 dropped P1")
	}
	c.InvalidateAll()
	if _, _, _ = c.Patient(ctx, "T1", "S1", "P1"); src.patientN.Load() != loads+1 {
		t.Error("InvalidateAll kept P1")
	}
}

// An invalidation during a load discards the loaded (possibly stale) value.
func TestCacheInvalidateDuringLoad(t *testing.T) {
	src := newFakeSource()
	src.protocols["T1"] = validProtocol()
	src.gate = make(chan struct{})
	src.started = make(chan struct{}, 10)
	c := newTestCache(t, src, nil)

	done := make(chan Protocol, 1)
	go func() {
		p, _, _ := c.Protocol(t.Context(), "T1")
		done <- p
	}()
	<-src.started // the load has begun and will read the old protocol
	src.set(func() { p := validProtocol(); p.Title = "v2"; src.protocols["T1"] = p })
	c.InvalidateProtocol("T1")
	close(src.gate)
	<-done
	if p, _, _ := c.Protocol(t.Context(), "T1"); p.Title != "v2" {
		t.Errorf("after invalidating during a load: title %q, want v2", p.Title)
	}
}
