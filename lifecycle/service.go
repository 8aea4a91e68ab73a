package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"vigil/metrics"
	"vigil/scoring"
	"vigil/store"
	"vigil/trial"
)

// Protocols supplies a trial's protocol (the default one when it has none);
// trial.Cache is one.
type Protocols interface {
	Protocol(ctx context.Context, trialID string) (trial.Protocol, bool, error)
}

// Publisher sends an alert to its rooms; scoring.Pipeline is one.
type Publisher interface {
	PublishAlert(ctx context.Context, a scoring.Alert)
	ApplyAlert(ctx context.Context, cand scoring.Alert, retry bool) error
}

// Kicker wakes the notification dispatcher; notify.Dispatcher is one.
type Kicker interface{ Kick() }

// Config configures a Service.
type Config struct {
	Store     store.Store
	Protocols Protocols
	Publisher Publisher
	Kicker    Kicker // optional
	// EscalationInterval is how often due escalations are looked for.
	EscalationInterval time.Duration
	// MissedInterval is how often silent patients are looked for.
	MissedInterval time.Duration
	// EscalationFloor is the shortest delay between two pages of one alert,
	// whatever a protocol says (default 1 minute).
	EscalationFloor time.Duration
	Logger          *slog.Logger
	Now             func() time.Time
}

// Service runs the schedulers and serves the lifecycle endpoints.
type Service struct {
	cfg  Config
	wake chan struct{}
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.EscalationInterval <= 0 {
		cfg.EscalationInterval = time.Second
	}
	if cfg.MissedInterval <= 0 {
		cfg.MissedInterval = 30 * time.Second
	}
	if cfg.EscalationFloor <= 0 {
		cfg.EscalationFloor = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, wake: make(chan struct{}, 1)}
}

// Wake runs the escalation scheduler now (after a manual escalation).
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// RunEscalations notifies due tiers until ctx is done.
func (s *Service) RunEscalations(ctx context.Context) {
	t := time.NewTicker(s.cfg.EscalationInterval)
	defer t.Stop()
	for {
		s.escalateDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

var errNotDue = errors.New("lifecycle: not due")

func (s *Service) escalateDue(ctx context.Context) {
	for ctx.Err() == nil {
		now := s.cfg.Now().UTC()
		due, err := s.cfg.Store.DueEscalations(ctx, now, 100)
		if err != nil {
			s.cfg.Logger.Error("due escalations", "err", err)
			return
		}
		notified := false
		for _, a := range due {
			if err := s.escalateOne(ctx, a, now); err != nil {
				if !errors.Is(err, errNotDue) {
					s.cfg.Logger.Error("escalate", "alert_id", a.AlertID, "err", err)
				}
				continue
			}
			notified = true
		}
		if notified && s.cfg.Kicker != nil {
			s.cfg.Kicker.Kick()
		}
		// A full page that made progress may have more behind it; one that
		// made none (every step failing) waits for the next tick rather
		// than spinning on the same alerts.
		if len(due) < 100 || !notified {
			return
		}
	}
}

func (s *Service) escalateOne(ctx context.Context, due scoring.Alert, now time.Time) error {
	// The protocol is looked up before the write transaction: a cache miss
	// must not hold the one write connection.
	p, _, err := s.cfg.Protocols.Protocol(ctx, due.TrialID)
	if err != nil {
		return fmt.Errorf("protocol: %w", err)
	}
	a, err := s.cfg.Store.UpdateAlert(ctx, due.AlertID, func(cur scoring.Alert) (store.AlertChange, error) {
		next, tier, action, ok := step(cur, p.Escalation, now, s.cfg.EscalationFloor)
		if !ok {
			return store.AlertChange{}, errNotDue
		}
		if action == "" {
			return store.AlertChange{Alert: next, Action: "escalation.ended",
				Reason: "every tier was notified and the policy does not repeat"}, nil
		}
		name := p.Escalation.Tiers[tier].Name
		reason := map[string]string{
			"notified":   "tier " + name + " notified",
			"escalated":  "not acknowledged in time; tier " + name + " notified",
			"renotified": "still not acknowledged; tier " + name + " notified again",
			"reopened":   "acknowledged but not resolved within the ack timeout; re-opened, tier " + name + " notified",
		}[action]
		ns, err := notifications(next, tier, p.Escalation)
		if err != nil {
			return store.AlertChange{}, err
		}
		return store.AlertChange{Alert: next, Notify: ns, Action: "alert." + action, Reason: reason}, nil
	}, store.Change{Actor: store.System, Action: "alert.escalation", At: now})
	if err != nil {
		return err
	}
	if a.Status != due.Status {
		metrics.AlertTransitions.WithLabelValues(a.Status).Inc()
	}
	s.cfg.Publisher.PublishAlert(ctx, a)
	return nil
}

// RunMissedReadings raises an alert for every patient silent past their
// trial's schedule and grace period, until ctx is done.
func (s *Service) RunMissedReadings(ctx context.Context) {
	t := time.NewTicker(s.cfg.MissedInterval)
	defer t.Stop()
	for {
		s.checkMissed(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) checkMissed(ctx context.Context) {
	protocols, err := s.cfg.Store.Protocols(ctx)
	if err != nil {
		s.cfg.Logger.Error("missed readings: protocols", "err", err)
		return
	}
	now := s.cfg.Now().UTC()
	for _, p := range protocols {
		if p.Schedule.Every <= 0 {
			continue
		}
		cutoff := now.Add(-time.Duration(p.Schedule.Every) - time.Duration(p.Schedule.Grace))
		silent, err := s.cfg.Store.SilentPatients(ctx, p.TrialID, cutoff)
		if err != nil {
			s.cfg.Logger.Error("missed readings: silent patients", "trial_id", p.TrialID, "err", err)
			continue
		}
		for _, sp := range silent {
			// Most silent patients already carry the reason; a read is far
			// cheaper than a write transaction that changes nothing.
			if cur, err := s.cfg.Store.UnresolvedAlert(ctx, sp.TrialID, sp.SiteID, sp.PatientID); err == nil &&
				slices.Contains(cur.Reasons, scoring.ReasonMissedReadings) {
				continue
			}
			// A person who resolved this patient's missed-readings alert
			// within the last window has dealt with this silence (the
			// patient is in hospital, say): a new alert waits for a whole
			// new window of silence.
			if done, err := s.cfg.Store.ResolvedSince(ctx, sp.TrialID, sp.SiteID, sp.PatientID,
				scoring.ReasonMissedReadings, cutoff); err != nil || done {
				continue
			}
			since := sp.LastMeasuredAt
			if since.IsZero() {
				since = sp.Since
			}
			cand := scoring.MissedReadings(sp.TrialID, sp.SiteID, sp.PatientID, since, now)
			if err := s.cfg.Publisher.ApplyAlert(ctx, cand, false); err != nil {
				s.cfg.Logger.Error("missed readings: alert", "trial_id", sp.TrialID, "site_id", sp.SiteID, "err", err)
			}
		}
	}
}
