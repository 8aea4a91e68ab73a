package store

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"vigil/scoring"
	"vigil/trial"
)

// Actor is who made a change, from the token that authorised it.
type Actor struct {
	Sub  string `json:"sub"`
	Name string `json:"name,omitempty"`
	Role string `json:"role"`
}

// System is the actor of changes Vigil makes itself (opening, updating and
// escalating alerts).
var System = Actor{Sub: "system", Name: "Vigil", Role: "system"}

// Change describes who changes a record and why, for its audit record.
type Change struct {
	Actor  Actor
	Action string
	Reason string
	// Meaning is what a signed action means (21 CFR 11.50).
	Meaning string
	At      time.Time
}

// SilentPatient is a patient who has not reported since a given time.
type SilentPatient struct {
	TrialID, SiteID, PatientID string
	// LastMeasuredAt is the latest reading's measured_at; zero if the patient
	// never reported (then Since is the registry record's creation).
	LastMeasuredAt time.Time
	Since          time.Time
}

// TrialStore holds trial protocols and the patient registry. Every Put
// appends an audit record with the old and new value in the same
// transaction and assigns the next Version.
type TrialStore interface {
	PutProtocol(ctx context.Context, p trial.Protocol, c Change) (trial.Protocol, error)
	// Protocol returns ErrNotFound for a trial without one.
	Protocol(ctx context.Context, trialID string) (trial.Protocol, error)
	Protocols(ctx context.Context) ([]trial.Protocol, error)
	PutPatient(ctx context.Context, r trial.PatientRecord, c Change) (trial.PatientRecord, error)
	// Patient returns ErrNotFound for a patient without a record.
	Patient(ctx context.Context, trialID, siteID, patientID string) (trial.PatientRecord, error)
	// SilentPatients returns the trial's patients — enrolled registry
	// records and patients who have reported, minus withdrawn ones — whose
	// latest reading was measured before cutoff (or who never reported and
	// were registered before cutoff).
	SilentPatients(ctx context.Context, trialID string, cutoff time.Time) ([]SilentPatient, error)
}

// AlertChange is what an alert update does: the alert's next state and the
// notifications to enqueue with it, atomically.
type AlertChange struct {
	Alert  scoring.Alert
	Notify []Notification
	// Action and Reason, when set, replace the Change's: the escalation
	// scheduler knows what a step did only once it has seen the alert.
	Action, Reason string
}

// LifecycleStore changes alerts on behalf of people and the escalation
// scheduler.
type LifecycleStore interface {
	// UpdateAlert reads the alert, calls fn with it and stores what fn
	// returns, with an audit record of c and the notifications, in one
	// transaction. fn's error is returned as is (and nothing is written);
	// an unknown alert gives ErrNotFound.
	UpdateAlert(ctx context.Context, alertID string, fn func(cur scoring.Alert) (AlertChange, error), c Change) (scoring.Alert, error)
	// UnresolvedAlert returns the patient's unresolved alert, or ErrNotFound.
	// It reads without taking the write lock: a cheap check before an update.
	UnresolvedAlert(ctx context.Context, trialID, siteID, patientID string) (scoring.Alert, error)
	// ResolvedSince reports whether a person resolved an alert of the
	// patient carrying reason at or after since.
	ResolvedSince(ctx context.Context, trialID, siteID, patientID, reason string, since time.Time) (bool, error)
	// DueEscalations returns unresolved alerts whose NextEscalationAt is at
	// or before now, oldest due first.
	DueEscalations(ctx context.Context, now time.Time, limit int) ([]scoring.Alert, error)
}

// Notification states.
const (
	NotifyPending = "pending"
	NotifySent    = "sent"
	NotifyDead    = "dead"
	// NotifyCancelled: superseded before delivery, because a person
	// acknowledged or resolved the alert (a late page would be noise that
	// teaches people to ignore pages).
	NotifyCancelled = "cancelled"
)

// Notification is one message to one channel, kept in a durable outbox until
// it is delivered or given up (dead-lettered).
type Notification struct {
	ID      int64         `json:"id"`
	AlertID string        `json:"alert_id"`
	TrialID string        `json:"trial_id"`
	Tier    int           `json:"tier"`
	Channel trial.Channel `json:"channel"`
	// Payload is the alert as it was when the notification was made.
	Payload       json.RawMessage `json:"payload"`
	Status        string          `json:"status"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt time.Time       `json:"next_attempt_at"`
	LastError     string          `json:"last_error,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	SentAt        *time.Time      `json:"sent_at,omitempty"`
}

// NotificationQuery selects notifications, newest first.
type NotificationQuery struct {
	Status  string // optional
	AlertID string // optional
	TrialID string // optional
	Limit   int
}

// Outbox is the durable queue of notifications.
type Outbox interface {
	// EnqueueNotifications stores pending notifications due now.
	EnqueueNotifications(ctx context.Context, ns []Notification) error
	// DueNotifications returns pending notifications whose NextAttemptAt is
	// at or before now, oldest first.
	DueNotifications(ctx context.Context, now time.Time, limit int) ([]Notification, error)
	// RecordAttempt stores an attempt's outcome: status sent (delivered),
	// pending with the next attempt time, or dead (given up).
	RecordAttempt(ctx context.Context, id int64, status string, next time.Time, lastErr string) error
	Notifications(ctx context.Context, q NotificationQuery) ([]Notification, error)
}

// AuditQuery pages through the audit trail in id order.
type AuditQuery struct {
	EntityType string // optional
	EntityID   string // optional
	AfterID    int64
	Limit      int
}

// AuditBreak is where the hash chain fails verification.
type AuditBreak struct {
	ID     int64
	Reason string
}

func (b *AuditBreak) Error() string {
	return "audit record " + strconv.FormatInt(b.ID, 10) + ": " + b.Reason
}

// AuditLog reads and verifies the whole audit trail.
type AuditLog interface {
	AuditRecords(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
	// VerifyAudit recomputes the hash chain and returns the number of
	// records checked, or an *AuditBreak naming the first record that was
	// edited, inserted or follows a deleted one.
	VerifyAudit(ctx context.Context) (int, error)
}

// TruncateUTF8 cuts s to at most n bytes without splitting a character: for
// error texts and summaries stored or sent with a size limit.
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	// A cut inside a character leaves bytes that decode as RuneError of size 1.
	for len(s) > 0 {
		r, size := utf8.DecodeLastRuneInString(s)
		if r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
