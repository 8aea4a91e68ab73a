package store

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"vigil/scoring"
)

// Audit actions of the system's alert writes.
const (
	ActionAlertOpened  = "opened"
	ActionAlertUpdated = "updated"
)

// MergeAlert is the engine-independent part of ApplyAlert: it calls merge
// with a copy of current (nil: the patient has no unresolved alert) and the
// candidate, and completes what merge returns into the alert to store, with
// its audit change. changed is false when there is nothing to write; then
// the returned alert is current (or zero). after(next, cur) returns a time
// after cur, at the store's precision, so updated_at follows commit order.
func MergeAlert(current *scoring.Alert, cand scoring.Alert, merge scoring.MergeFunc, now time.Time,
	after func(next, cur time.Time) time.Time) (next scoring.Alert, c Change, changed bool, err error) {
	var mergeArg *scoring.Alert
	if current != nil {
		// merge gets a copy, so it cannot alter what is written as old_value.
		cp := *current
		cp.Reasons = append([]string(nil), current.Reasons...)
		mergeArg = &cp
	}
	next, changed = merge(mergeArg, cand)
	if !changed {
		if current != nil {
			return *current, Change{}, false, nil
		}
		return scoring.Alert{}, Change{}, false, nil
	}
	next.Kind = "alert"
	next.PatientID, next.TrialID, next.SiteID = cand.PatientID, cand.TrialID, cand.SiteID
	if current != nil {
		next.AlertID = current.AlertID
		if next.OpenedAt.IsZero() {
			next.OpenedAt = current.OpenedAt
		}
		if next.Status == "" {
			next.Status = current.Status
		}
	} else {
		next.AlertID = uuid.NewString()
		if next.OpenedAt.IsZero() {
			next.OpenedAt = now
		}
		if next.Status == "" {
			next.Status = scoring.StatusOpen
		}
	}
	if next.UpdatedAt.IsZero() {
		next.UpdatedAt = now
	}
	if current != nil {
		next.UpdatedAt = after(next.UpdatedAt, current.UpdatedAt)
	}
	if next.Reasons == nil {
		next.Reasons = []string{}
	}
	switch next.Status {
	case scoring.StatusOpen, scoring.StatusAcknowledged, scoring.StatusEscalated, scoring.StatusResolved:
	default:
		return scoring.Alert{}, Change{}, false, fmt.Errorf("merge returned unknown status %q", next.Status)
	}
	// The system's "why" is the reading that raised the candidate.
	reason := ""
	if cand.ReadingID != "" {
		reason = "reading " + cand.ReadingID
	}
	action := ActionAlertOpened
	if current != nil {
		action = ActionAlertUpdated
	}
	return next, Change{Actor: System, Action: action, Reason: reason, At: now}, true, nil
}
