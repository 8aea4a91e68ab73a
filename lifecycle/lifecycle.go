// Package lifecycle owns what happens to an alert after it opens: people
// acknowledging, escalating and resolving it (signed, audited, published),
// the escalation scheduler that notifies tier after tier until someone
// acknowledges, and the missed-readings scheduler that raises an alert for a
// patient who has gone silent. Its state lives in the store, so a restart
// loses no timer. It imports auth, store, scoring, trial and problem.
package lifecycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"vigil/scoring"
	"vigil/store"
	"vigil/trial"
)

// ErrTransition is a change the alert's status does not allow.
var ErrTransition = errors.New("lifecycle: transition not allowed")

// Acknowledge records that a person has taken the alert: escalation stops
// until the policy's ack timeout, if any, re-opens it.
func Acknowledge(cur scoring.Alert, sig scoring.Signature, ackTimeout time.Duration) (scoring.Alert, error) {
	switch cur.Status {
	case scoring.StatusOpen, scoring.StatusEscalated:
	default:
		return scoring.Alert{}, fmt.Errorf("%w: an alert that is %s cannot be acknowledged", ErrTransition, cur.Status)
	}
	next := cur
	next.Status = scoring.StatusAcknowledged
	next.Acknowledged = &sig
	next.NextEscalationAt = nil
	if ackTimeout > 0 {
		due := sig.At.Add(ackTimeout)
		next.NextEscalationAt = &due
	}
	next.UpdatedAt = sig.At
	return next, nil
}

// Escalate is a person asking for the next tier now: the scheduler notifies
// it at its next tick. Past the policy's last tier (tiers is their number),
// the last tier is notified again: a person asking for help is never
// answered with silence.
func Escalate(cur scoring.Alert, sig scoring.Signature, tiers int) (scoring.Alert, error) {
	if cur.Status == scoring.StatusResolved {
		return scoring.Alert{}, fmt.Errorf("%w: a resolved alert cannot be escalated", ErrTransition)
	}
	next := cur
	if tiers > 0 && next.Tier >= tiers-1 {
		next.Tier = tiers - 2
	}
	next.Status = scoring.StatusEscalated
	due := sig.At
	next.NextEscalationAt = &due
	next.UpdatedAt = sig.At
	return next, nil
}

// Outcomes a resolution may record.
var outcomes = map[string]bool{scoring.OutcomeSAE: true, scoring.OutcomeAE: true, scoring.OutcomeNotAE: true}

// ReportWithin is the investigator's clock: a serious adverse event is
// reported to the sponsor immediately, at the latest within 24 hours of
// awareness (ICH E2A, ICH E6).
const ReportWithin = 24 * time.Hour

// MarkPossibleSAE records a person's signed judgement that the alert may be
// a serious adverse event: the investigator is aware from sig.At, so the
// report to the sponsor is due ReportWithin later. It changes neither the
// status nor escalation (a mark is not an acknowledgement). A resolved alert,
// or one already marked (the first awareness starts the clock), cannot be
// marked.
func MarkPossibleSAE(cur scoring.Alert, sig scoring.Signature) (scoring.Alert, error) {
	switch {
	case cur.Status == scoring.StatusResolved:
		return scoring.Alert{}, fmt.Errorf("%w: a resolved alert cannot be marked possible SAE", ErrTransition)
	case cur.PossibleSAE != nil:
		return scoring.Alert{}, fmt.Errorf("%w: the alert was already marked possible SAE at %s",
			ErrTransition, cur.PossibleSAE.At.UTC().Format(time.RFC3339))
	}
	next := cur
	next.PossibleSAE = &sig
	due := sig.At.Add(ReportWithin)
	next.ReportDueAt = &due
	next.UpdatedAt = sig.At
	return next, nil
}

// Resolve closes the alert with the investigator's judgement of the event.
// A resolution as sae of an alert nobody marked starts the reporting clock
// then (awareness at the latest); one that was marked keeps its earlier
// clock. A resolution as ae or not_ae judges the event not serious: no report
// is due, so the clock goes (the possible-SAE mark stays, as a record).
func Resolve(cur scoring.Alert, sig scoring.Signature, outcome string) (scoring.Alert, error) {
	if cur.Status == scoring.StatusResolved {
		return scoring.Alert{}, fmt.Errorf("%w: the alert is already resolved", ErrTransition)
	}
	if !outcomes[outcome] {
		return scoring.Alert{}, fmt.Errorf("lifecycle: outcome %q is not sae, ae or not_ae", outcome)
	}
	next := cur
	next.Status = scoring.StatusResolved
	next.Resolved = &sig
	next.Outcome = outcome
	next.NextEscalationAt = nil
	next.UpdatedAt = sig.At
	switch {
	case outcome != scoring.OutcomeSAE:
		next.ReportDueAt = nil
	case next.ReportDueAt == nil:
		due := sig.At.Add(ReportWithin)
		next.ReportDueAt = &due
	}
	return next, nil
}

// Step is one escalation step of a due alert under its protocol's policy:
// the next tier (or, past the last, the last again every Repeat) is
// notified, and the next step is scheduled. It reports false when the alert
// is not due (acknowledged, resolved, or rescheduled meanwhile).
func Step(cur scoring.Alert, p trial.Escalation, now time.Time) (next scoring.Alert, tier int, action string, ok bool) {
	return step(cur, p, now, 0)
}

// step is Step with a floor under every delay, so that a protocol cannot
// page people every second.
func step(cur scoring.Alert, p trial.Escalation, now time.Time, floor time.Duration) (next scoring.Alert, tier int, action string, ok bool) {
	delay := func(d trial.Duration) time.Duration { return max(time.Duration(d), floor) }
	if cur.NextEscalationAt == nil || cur.NextEscalationAt.After(now) || cur.Status == scoring.StatusResolved {
		return cur, 0, "", false
	}
	next = cur
	next.UpdatedAt = now
	reopened := false
	if cur.Status == scoring.StatusAcknowledged {
		// The ack timeout passed with the alert unresolved: it is open
		// again and the first tier is told again.
		next.Status = scoring.StatusOpen
		next.Acknowledged = nil
		next.Tier = -1
		cur = next
		reopened = true
	}
	if len(p.Tiers) == 0 {
		next.NextEscalationAt = nil
		return next, 0, "", true
	}
	tier = cur.Tier + 1
	switch {
	case tier < len(p.Tiers):
		action = "escalated"
		if tier == 0 {
			action = "notified"
		}
		due := now.Add(delay(p.Tiers[tier].After))
		next.NextEscalationAt = &due
	case p.Repeat > 0:
		tier = len(p.Tiers) - 1
		action = "renotified"
		due := now.Add(delay(p.Repeat))
		next.NextEscalationAt = &due
	default:
		// Every tier was told and the policy does not repeat: the alert
		// stays open and visible until someone acts.
		next.NextEscalationAt = nil
		return next, 0, "", true
	}
	next.Tier = tier
	if tier >= 1 && next.Status == scoring.StatusOpen {
		next.Status = scoring.StatusEscalated
	}
	if reopened {
		action = "reopened"
	}
	return next, tier, action, true
}

// notifications are one per channel of the tier, carrying the alert as it is
// now (the notifier strips everything but ids and severity).
func notifications(a scoring.Alert, tier int, p trial.Escalation) ([]store.Notification, error) {
	if tier < 0 || tier >= len(p.Tiers) {
		return nil, nil
	}
	payload, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	var out []store.Notification
	for _, ch := range p.Tiers[tier].Channels {
		out = append(out, store.Notification{AlertID: a.AlertID, TrialID: a.TrialID, Tier: tier,
			Channel: ch, Payload: payload, Status: store.NotifyPending})
	}
	return out, nil
}

// followUps tells the pagers already paged for an alert that a person took
// or closed it: PagerDuty gets an acknowledge or resolve event on the same
// dedup key, so its own escalations stop. Other channels are not told: an
// email or webhook "all clear" is noise the board already shows.
func followUps(a scoring.Alert, p trial.Escalation) ([]store.Notification, error) {
	payload, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	var out []store.Notification
	for tier := 0; tier <= a.Tier && tier < len(p.Tiers); tier++ {
		for _, ch := range p.Tiers[tier].Channels {
			if ch.Kind == trial.ChannelPagerDuty {
				out = append(out, store.Notification{AlertID: a.AlertID, TrialID: a.TrialID, Tier: tier,
					Channel: ch, Payload: payload, Status: store.NotifyPending})
			}
		}
	}
	return out, nil
}
