package scoring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/panjf2000/ants/v2"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"vigil/bus"
	"vigil/metrics"
	"vigil/predictor"
	"vigil/reading"
	"vigil/tracing"
	"vigil/trial"
)

// Store is what the pipeline needs from durable storage.
type Store interface {
	SaveScore(ctx context.Context, s Score) (saved bool, err error)
	ApplyAlert(ctx context.Context, candidate Alert, merge MergeFunc) (Alert, bool, error)
	// UnresolvedAlert returns the patient's unresolved alert, or an error
	// (not found) when there is none.
	UnresolvedAlert(ctx context.Context, trialID, siteID, patientID string) (Alert, error)
}

// Profiles looks up a reading's context; trial.Cache is one.
type Profiles interface {
	Protocol(ctx context.Context, trialID string) (trial.Protocol, bool, error)
	Patient(ctx context.Context, trialID, siteID, patientID string) (trial.PatientRecord, bool, error)
}

// Predictor is the risk model: predictor.Client is one.
type Predictor interface {
	Predict(ctx context.Context, r predictor.Request) (predictor.Prediction, error)
}

// History supplies a patient's readings for the model's features.
type History interface {
	// Recent returns the patient's readings measured in [from, to], in store
	// order (measured_at, then arrival), the reading being scored among them.
	Recent(ctx context.Context, trialID, siteID, patientID string, from, to time.Time) ([]predictor.Observation, []string, error)
}

// Publisher is what the pipeline needs from the bus.
type Publisher interface {
	Publish(ctx context.Context, room string, data []byte) (bus.Event, error)
}

// ErrOverloaded means every slot of the pool is taken; the caller must not
// acknowledge the reading and should ask the client to retry.
var ErrOverloaded = errors.New("scoring: pool full")

// Input is a stored reading to score.
type Input struct {
	Reading    reading.Reading
	ReceivedAt time.Time
	// Retry marks a reading scored again after an earlier attempt may have
	// failed part-way (the sweep, a client's retry of an unscored reading).
	Retry bool
	// Trace is the span that admitted the reading (ingest's), which
	// scoring's spans continue; zero when there is none.
	Trace trace.SpanContext
}

// PipelineConfig configures a Pipeline.
type PipelineConfig struct {
	// Workers bounds readings being stored or scored at once.
	Workers int
	// Profiles supplies protocols and registry records; nil scores every
	// reading with defaults, as unregistered.
	Profiles Profiles
	// Model, when set, gives each reading's SAE probability from features
	// over History; when it fails, the rules decide alone and the score says
	// degraded. Both or neither must be set.
	Model   Predictor
	History History
	// TaskTimeout bounds one scoring (store writes and publishes).
	TaskTimeout time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
}

// Pipeline scores stored readings on a bounded ants pool, stores the score,
// opens or updates the patient's alert, and publishes both. Admission is
// separate from submission so ingest can refuse a reading before storing it:
// a reading that got 2xx always has a slot.
type Pipeline struct {
	store Store
	pub   Publisher
	pool  *ants.Pool
	slots chan struct{}
	cfg   PipelineConfig
	wg    sync.WaitGroup
}

// NewPipeline starts the pool.
func NewPipeline(store Store, pub Publisher, cfg PipelineConfig) (*Pipeline, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 1024
	}
	if cfg.TaskTimeout <= 0 {
		cfg.TaskTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if (cfg.Model == nil) != (cfg.History == nil) {
		return nil, errors.New("scoring: a model needs a history for its features, and a history is for a model")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Pipeline{store: store, pub: pub, cfg: cfg, slots: make(chan struct{}, cfg.Workers)}
	pool, err := ants.NewPool(cfg.Workers,
		ants.WithPanicHandler(func(v any) {
			metrics.ScoringErrors.Inc()
			cfg.Logger.Error("scoring task panicked", "panic", fmt.Sprint(v))
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("scoring: new pool: %w", err)
	}
	p.pool = pool
	return p, nil
}

// Slot is an admitted reading's claim on the pool.
type Slot struct {
	p    *Pipeline
	once sync.Once
}

// Admit claims a slot without blocking, or returns ErrOverloaded.
func (p *Pipeline) Admit() (*Slot, error) {
	select {
	case p.slots <- struct{}{}:
		metrics.QueueDepth.Inc()
		p.wg.Add(1)
		return &Slot{p: p}, nil
	default:
		return nil, ErrOverloaded
	}
}

// Release gives the slot back unused (the reading was not stored, or needs no
// scoring). It is safe to call after Score.
func (s *Slot) Release() {
	s.once.Do(s.p.release)
}

func (p *Pipeline) release() {
	<-p.slots
	metrics.QueueDepth.Dec()
	p.wg.Done()
}

// Score runs the scoring of a stored reading on the pool. The slot guarantees
// capacity, so this does not wait for a worker beyond a handover.
func (s *Slot) Score(in Input) {
	submitted := time.Now()
	task := func() {
		metrics.ScoringQueueWait.Observe(time.Since(submitted).Seconds())
		defer s.Release()
		ctx, cancel := context.WithTimeout(trace.ContextWithSpanContext(context.Background(), in.Trace), s.p.cfg.TaskTimeout)
		defer cancel()
		ctx, span := tracing.Start(ctx, "scoring.process")
		defer span.End()
		if err := s.p.Process(ctx, in); err != nil {
			metrics.ScoringErrors.Inc()
			span.SetStatus(codes.Error, "scoring failed")
			s.p.cfg.Logger.ErrorContext(ctx, "scoring failed; the sweep will retry", "reading_id", in.Reading.ReadingID, "err", err)
		}
	}
	if err := s.p.pool.Submit(task); err != nil {
		// Only a released pool refuses; the reading stays unscored in the store
		// and is scored at the next start.
		s.Release()
		s.p.cfg.Logger.Error("scoring submit failed", "reading_id", in.Reading.ReadingID, "err", err)
	}
}

// Process scores one reading: it opens or updates the patient's alert when the
// score raises one, then stores the score, publishing each. The alert comes
// first because storing the score is what marks the reading done: if the
// alert step fails, or the process dies between the two, the reading is still
// unscored and the sweep runs it again (Merge makes a repeated alert step a
// no-op). A retried reading (in.Retry) republishes the patient's alert even
// when nothing changed, since the first attempt may have died before
// publishing it: a duplicate notification is better than a missed one.
func (p *Pipeline) Process(ctx context.Context, in Input) error {
	c, err := p.lookup(ctx, in.Reading)
	if err != nil {
		return err
	}
	s := EvaluateIn(in.Reading, c, p.cfg.Now())
	if p.cfg.Model != nil {
		s.Model = p.predict(ctx, in.Reading, s, c)
		if s.Model == nil {
			s.Degraded = true
			metrics.ScoresDegraded.Inc()
		}
	}
	if cand, ok := Candidate(s, in.Reading, c.Protocol); ok {
		// The score's risk reflects every rule, not NEWS2 alone.
		s.Risk = maxRisk(s.Risk, cand.Severity)
		cand.CurrentRisk = s.Risk
		if err := p.applyAlert(ctx, cand, in.Retry); err != nil {
			return err
		}
	} else if cur, err := p.store.UnresolvedAlert(ctx, s.TrialID, s.SiteID, s.PatientID); err == nil && updatesRisk(cur, s) {
		// A better (or merely different) reading updates the patient's open
		// alert's current risk; the alert itself stays until a person acts.
		if err := p.applyAlert(ctx, RiskUpdate(s), in.Retry); err != nil {
			return err
		}
	}
	saved, err := p.store.SaveScore(ctx, s)
	if err != nil {
		return fmt.Errorf("save score: %w", err)
	}
	if !saved {
		return nil
	}
	metrics.ScoringLatency.Observe(p.cfg.Now().Sub(in.ReceivedAt).Seconds())
	syms := in.Reading.Symptoms
	if syms == nil {
		syms = []reading.Symptom{}
	}
	data, err := MarshalEvent(ScoreEvent{Score: s, ReceivedAt: in.ReceivedAt.UTC(), Vitals: in.Reading.Vitals, Symptoms: syms})
	if err != nil {
		return fmt.Errorf("encode score: %w", err)
	}
	pctx, span := tracing.Start(ctx, "bus.publish")
	if _, err := p.pub.Publish(pctx, bus.SiteRoom(s.TrialID, s.SiteID), data); err != nil {
		// The score is stored; boards recover it from a snapshot.
		span.SetStatus(codes.Error, "publish failed")
		p.cfg.Logger.ErrorContext(ctx, "publish score", "reading_id", s.ReadingID, "err", err)
	}
	span.End()
	return nil
}

// updatesRisk reports whether a score that raised no alert should change
// the current risk of the patient's unresolved alert. A score that knows
// less than a full one (a partial NEWS2, or made without the configured
// model) may raise it but never lower it: missing information must not make
// a patient look better (CLINICAL.md).
func updatesRisk(cur Alert, s Score) bool {
	if cur.CurrentRisk == s.Risk {
		return false
	}
	lower := riskRank(s.Risk) < riskRank(cur.CurrentRisk)
	return !lower || !(s.Degraded || s.NEWS2.Partial)
}

// predict asks the model about a scored reading; nil means it could not
// answer (the predictor failed, or the patient's history could not be read),
// and the rules decide alone. The model's deadline is the client's, so a slow
// predictor delays a score by at most that.
func (p *Pipeline) predict(ctx context.Context, r reading.Reading, s Score, c Context) *Model {
	obs, ids, err := p.cfg.History.Recent(ctx, r.TrialID, r.SiteID, r.PatientID, r.MeasuredAt.Add(-predictor.Window), r.MeasuredAt)
	if err != nil {
		p.cfg.Logger.Warn("model features: history", "reading_id", r.ReadingID, "err", err)
		return nil
	}
	cur := slices.Index(ids, r.ReadingID)
	if cur < 0 {
		obs = append(obs, predictor.Observation{MeasuredAt: r.MeasuredAt, Vitals: r.Vitals})
		cur = len(obs) - 1
	}
	age := -1
	if c.Registered {
		age = c.Patient.AgeBandIndex()
	}
	// The call itself may be shared with other readings (micro-batching):
	// this span is this reading's wait for its prediction.
	pctx, span := tracing.Start(ctx, "predictor.predict", trace.WithSpanKind(trace.SpanKindClient))
	pred, err := p.cfg.Model.Predict(pctx, predictor.Request{
		PatientID: r.PatientID,
		Features:  predictor.Features(obs, cur, s.NEWS2.Total, age),
	})
	if err != nil {
		span.SetStatus(codes.Error, "no prediction: the rules decide alone")
		span.End()
		// The breaker logs state changes; one line per reading would flood
		// the log during an outage.
		return nil
	}
	span.End()
	return &Model{Probability: pred.Probability, Version: pred.Version, Contributions: pred.Contributions}
}

// ApplyAlert opens or updates the patient's alert from a candidate (a
// scoring rule, the missed-readings scheduler) and publishes it when it
// changed, or when retry says an earlier attempt may not have published it.
func (p *Pipeline) ApplyAlert(ctx context.Context, cand Alert, retry bool) error {
	return p.applyAlert(ctx, cand, retry)
}

func (p *Pipeline) applyAlert(ctx context.Context, cand Alert, retry bool) error {
	alert, changed, err := p.store.ApplyAlert(ctx, cand, Merge)
	if err != nil {
		return fmt.Errorf("apply alert: %w", err)
	}
	if changed && alert.OpenedAt.Equal(alert.UpdatedAt) {
		metrics.AlertsOpened.WithLabelValues(alert.Severity).Inc()
	}
	if (changed || retry) && alert.AlertID != "" {
		p.PublishAlert(ctx, alert)
	}
	return nil
}

// lookup fetches the protocol and the patient's record concurrently, under
// the reading's deadline.
func (p *Pipeline) lookup(ctx context.Context, r reading.Reading) (Context, error) {
	var c Context
	if p.cfg.Profiles == nil {
		return c, nil
	}
	// One after the other: both are cache hits nearly always, and two
	// goroutines per reading to overlap them cost more than a hit.
	var err error
	if c.Protocol, c.Configured, err = p.cfg.Profiles.Protocol(ctx, r.TrialID); err != nil {
		return Context{}, fmt.Errorf("look up protocol: %w", err)
	}
	if c.Patient, c.Registered, err = p.cfg.Profiles.Patient(ctx, r.TrialID, r.SiteID, r.PatientID); err != nil {
		return Context{}, fmt.Errorf("look up patient: %w", err)
	}
	return c, nil
}

// PublishAlert sends an alert to its site and trial rooms. A failed publish
// is logged, not returned: the alert is stored and stays open, and boards
// recover it from their snapshot.
func (p *Pipeline) PublishAlert(ctx context.Context, alert Alert) {
	data, err := MarshalEvent(alert)
	if err != nil {
		p.cfg.Logger.Error("encode alert", "alert_id", alert.AlertID, "err", err)
		return
	}
	ctx, span := tracing.Start(ctx, "bus.publish_alert")
	defer span.End()
	for _, room := range []string{bus.SiteRoom(alert.TrialID, alert.SiteID), bus.TrialRoom(alert.TrialID)} {
		if _, err := p.pub.Publish(ctx, room, data); err != nil {
			p.cfg.Logger.Error("publish alert", "alert_id", alert.AlertID, "room", room, "err", err)
		}
	}
}

// Evaluate scores a reading with defaults, as for an unregistered patient
// of a trial without a protocol.
func Evaluate(r reading.Reading, now time.Time) Score {
	return EvaluateIn(r, Context{}, now)
}

// EvaluateIn scores a reading in its context: NEWS2 on the SpO2 scale the
// registry prescribes (or the reading's, for a patient without a record).
func EvaluateIn(r reading.Reading, c Context, now time.Time) Score {
	scale, source := spo2Scale(r, c)
	n := ScoreNEWS2(r.Vitals, scale)
	n.SpO2ScaleSource = source
	return Score{
		Kind:         "score",
		ReadingID:    r.ReadingID,
		PatientID:    r.PatientID,
		TrialID:      r.TrialID,
		SiteID:       r.SiteID,
		MeasuredAt:   r.MeasuredAt,
		ScoredAt:     now.UTC(),
		NEWS2:        n,
		Risk:         RiskOf(n),
		Registered:   c.Registered,
		RulesVersion: RulesVersion,
	}
}

// Close waits for admitted readings to finish scoring, then stops the pool.
func (p *Pipeline) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	if err := p.pool.ReleaseTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("scoring: release pool: %w", err)
	}
	return ctx.Err()
}
