package trial

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/maypok86/otter/v2"
)

// Source is where the cache loads from; store.TrialStore is one.
type Source interface {
	// Protocol returns the trial's protocol, or an error for which the
	// cache's IsNotFound is true when the trial has none.
	Protocol(ctx context.Context, trialID string) (Protocol, error)
	// Patient returns a registry record, or a not-found error.
	Patient(ctx context.Context, trialID, siteID, patientID string) (PatientRecord, error)
}

// CacheConfig configures a Cache.
type CacheConfig struct {
	Source Source
	// IsNotFound reports whether an error of Source means "no such record"
	// (for the store: errors.Is(err, store.ErrNotFound)). trial cannot
	// import store, which imports trial, so the caller supplies the test.
	IsNotFound func(error) bool
	// TTL is how long an entry, found or not, is served before it is loaded
	// again (default 30s): the bound on how stale another node's change can
	// be here. Changes made through this node are seen at once (Invalidate).
	TTL time.Duration
	// MaxPatients and MaxProtocols bound the entries kept (defaults 100000
	// and 4096).
	MaxPatients, MaxProtocols int
	// LoadTimeout bounds one load from Source (default 5s).
	LoadTimeout time.Duration
	// Now replaces the clock, for tests. With it set the cache does no
	// periodic clean-up: entries expire when next read.
	Now func() time.Time
}

// Defaults of CacheConfig.
const (
	DefaultCacheTTL     = 30 * time.Second
	DefaultMaxPatients  = 100_000
	DefaultMaxProtocols = 4096
	DefaultLoadTimeout  = 5 * time.Second
)

type patientKey struct{ trial, site, patient string }

// Entries remember "not found" as well as found records, so a burst of
// readings from unregistered patients, or from a trial without a protocol,
// costs one lookup per TTL rather than one per reading.
type protocolEntry struct {
	p     Protocol
	found bool
}

type patientEntry struct {
	r     PatientRecord
	found bool
}

// Cache is a read-through cache of protocols and registry records in front
// of a Source. Concurrent lookups of one key share one load (otter's loader
// is a singleflight). Errors other than not-found are not cached. It is safe
// for concurrent use. Returned values share their slices with the cache and
// must not be modified.
type Cache struct {
	cfg          CacheConfig
	protocols    *otter.Cache[string, protocolEntry]
	patients     *otter.Cache[patientKey, patientEntry]
	loadProtocol otter.LoaderFunc[string, protocolEntry]
	loadPatient  otter.LoaderFunc[patientKey, patientEntry]
}

// NewCache returns a cache over cfg.Source.
func NewCache(cfg CacheConfig) (*Cache, error) {
	if cfg.Source == nil || cfg.IsNotFound == nil {
		return nil, errors.New("trial: cache needs a Source and IsNotFound")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultCacheTTL
	}
	if cfg.MaxPatients <= 0 {
		cfg.MaxPatients = DefaultMaxPatients
	}
	if cfg.MaxProtocols <= 0 {
		cfg.MaxProtocols = DefaultMaxProtocols
	}
	if cfg.LoadTimeout <= 0 {
		cfg.LoadTimeout = DefaultLoadTimeout
	}
	var clock otter.Clock
	if cfg.Now != nil {
		clock = funcClock(cfg.Now)
	}
	protocols, err := otter.New(&otter.Options[string, protocolEntry]{
		MaximumSize: cfg.MaxProtocols,
		// Writing, not accessing: a hot entry must still be reloaded every
		// TTL, or another node's change would never reach this one.
		ExpiryCalculator: otter.ExpiryWriting[string, protocolEntry](cfg.TTL),
		Clock:            clock,
	})
	if err != nil {
		return nil, fmt.Errorf("trial: cache: %w", err)
	}
	patients, err := otter.New(&otter.Options[patientKey, patientEntry]{
		MaximumSize:      cfg.MaxPatients,
		ExpiryCalculator: otter.ExpiryWriting[patientKey, patientEntry](cfg.TTL),
		Clock:            clock,
	})
	if err != nil {
		protocols.StopAllGoroutines()
		return nil, fmt.Errorf("trial: cache: %w", err)
	}
	c := &Cache{cfg: cfg, protocols: protocols, patients: patients}
	c.loadProtocol = func(ctx context.Context, trialID string) (protocolEntry, error) {
		ctx, cancel := c.loadContext(ctx)
		defer cancel()
		p, err := c.cfg.Source.Protocol(ctx, trialID)
		switch {
		case err == nil:
			return protocolEntry{p: p, found: true}, nil
		case c.cfg.IsNotFound(err):
			// The default is built once per load, not once per reading.
			return protocolEntry{p: DefaultProtocol(trialID)}, nil
		}
		return protocolEntry{}, err
	}
	c.loadPatient = func(ctx context.Context, k patientKey) (patientEntry, error) {
		ctx, cancel := c.loadContext(ctx)
		defer cancel()
		r, err := c.cfg.Source.Patient(ctx, k.trial, k.site, k.patient)
		switch {
		case err == nil:
			return patientEntry{r: r, found: true}, nil
		case c.cfg.IsNotFound(err):
			return patientEntry{}, nil
		}
		return patientEntry{}, err
	}
	return c, nil
}

// loadContext detaches a load from the caller who happened to start it:
// every concurrent caller of the key waits for that one load, and one
// caller giving up must not fail it for the rest.
func (c *Cache) loadContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), c.cfg.LoadTimeout)
}

// Protocol returns the trial's protocol and configured=true, or, for a trial
// without one, DefaultProtocol(trialID) and configured=false. Either shares
// its slices with the cache: do not modify it.
func (c *Cache) Protocol(ctx context.Context, trialID string) (Protocol, bool, error) {
	e, err := c.protocols.Get(ctx, trialID, c.loadProtocol)
	if err != nil {
		return Protocol{}, false, fmt.Errorf("trial: protocol of %s: %w", trialID, err)
	}
	return e.p, e.found, nil
}

// Patient returns the patient's registry record and registered=true, or a
// zero record and registered=false for a patient without one.
func (c *Cache) Patient(ctx context.Context, trialID, siteID, patientID string) (PatientRecord, bool, error) {
	e, err := c.patients.Get(ctx, patientKey{trialID, siteID, patientID}, c.loadPatient)
	if err != nil {
		return PatientRecord{}, false, fmt.Errorf("trial: registry record (trial %s, site %s): %w", trialID, siteID, err)
	}
	return e.r, e.found, nil
}

// InvalidateProtocol drops the trial's protocol, so the next lookup loads it.
// A load in flight when it is called is discarded rather than cached, so a
// change committed before the call is always seen after it.
func (c *Cache) InvalidateProtocol(trialID string) { c.protocols.Invalidate(trialID) }

// InvalidatePatient drops one registry record.
func (c *Cache) InvalidatePatient(trialID, siteID, patientID string) {
	c.patients.Invalidate(patientKey{trialID, siteID, patientID})
}

// InvalidateAll drops every entry.
func (c *Cache) InvalidateAll() {
	c.protocols.InvalidateAll()
	c.patients.InvalidateAll()
}

// Close stops the caches' clean-up goroutines. The cache still answers
// afterwards, expiring entries as they are read.
func (c *Cache) Close() {
	c.protocols.StopAllGoroutines()
	c.patients.StopAllGoroutines()
}

// funcClock adapts a time function to otter's Clock. Its nil Tick turns off
// the periodic clean-up, which a test clock would only make nondeterministic.
type funcClock func() time.Time

func (f funcClock) NowNano() int64                      { return f().UnixNano() }
func (f funcClock) Tick(time.Duration) <-chan time.Time { return nil }
