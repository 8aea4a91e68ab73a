// Package notify owns delivering notifications: it turns an outbox entry
// (store.Notification) into a Message that carries no personal health
// information, sends it over a channel (signed webhook, PagerDuty Events API
// v2, email over SMTP; the board needs nothing), and runs the Dispatcher that
// drains the durable outbox with retries, backoff and dead-lettering. It
// imports store for the outbox, trial and scoring for their vocabulary, and
// metrics for its counters.
//
// Delivery is at least once: a notification is marked sent only after its
// receiver accepted it, so a crash in between sends it again. Every channel
// carries a stable id for receivers to drop repeats (the webhook's
// X-Vigil-Delivery header, PagerDuty's dedup_key, the email's Message-ID).
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"vigil/store"
	"vigil/trial"
)

// Channel kinds: the keys of NewDispatcher's senders.
const (
	KindWebhook   = trial.ChannelWebhook
	KindPagerDuty = trial.ChannelPagerDuty
	KindEmail     = trial.ChannelEmail
	KindBoard     = trial.ChannelBoard
)

// Sender delivers one notification over one kind of channel. It returns nil
// only when the receiver has accepted the message; an error says, through
// IsPermanent, whether trying again could help.
type Sender interface {
	Send(ctx context.Context, n store.Notification, msg Message) error
}

// Message is everything a notification says about an alert. It is built for
// people outside the trial's systems (pagers, mailboxes, chat), so it holds
// identifiers and the alert's classification only: never vitals, values,
// symptoms, names or tokens. The receiver follows Link to see the patient in
// Vigil, behind Vigil's access control.
type Message struct {
	AlertID string `json:"alert_id"`
	TrialID string `json:"trial_id"`
	SiteID  string `json:"site_id"`
	// PatientID is the trial's pseudonymous subject id.
	PatientID string `json:"patient_id"`
	Severity  string `json:"severity"`
	Status    string `json:"status"`
	// Reasons are rule codes such as news2_high or symptom_severe.
	Reasons []string `json:"reasons"`
	// Tier is the escalation tier this notification is for.
	Tier     int       `json:"tier"`
	OpenedAt time.Time `json:"opened_at"`
	// Link opens the alert on the board; empty when no public URL is set.
	Link string `json:"link,omitempty"`
}

// alertFields are the only parts of the stored alert that a Message may
// use. Decoding into this, rather than into scoring.Alert and copying, means
// a field added to alerts later (findings with values, say) cannot reach a
// notification by accident.
type alertFields struct {
	AlertID   string    `json:"alert_id"`
	PatientID string    `json:"patient_id"`
	TrialID   string    `json:"trial_id"`
	SiteID    string    `json:"site_id"`
	Severity  string    `json:"severity"`
	Status    string    `json:"status"`
	Reasons   []string  `json:"reasons"`
	OpenedAt  time.Time `json:"opened_at"`
}

// reasonCode is what a reason must look like to be sent. Reasons are rule
// codes today; the check keeps a future free-text reason (which might name a
// symptom or a value) out of messages rather than trusting every producer.
var reasonCode = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// NewMessage builds n's Message from its payload (the alert as it was when
// the notification was made). baseURL, when set, is Vigil's public URL, and
// the link is baseURL + "/#alert=" + the alert id. A payload that is not an
// alert gives a permanent error.
func NewMessage(n store.Notification, baseURL string) (Message, error) {
	var a alertFields
	if err := json.Unmarshal(n.Payload, &a); err != nil {
		return Message{}, Permanent(fmt.Errorf("notification %d: payload is not an alert: %w", n.ID, err))
	}
	if a.AlertID == "" {
		a.AlertID = n.AlertID
	}
	if a.TrialID == "" {
		a.TrialID = n.TrialID
	}
	if a.AlertID != n.AlertID {
		return Message{}, Permanent(fmt.Errorf("notification %d: payload is alert %s, not %s", n.ID, a.AlertID, n.AlertID))
	}
	reasons := make([]string, 0, len(a.Reasons))
	for _, r := range a.Reasons {
		if reasonCode.MatchString(r) {
			reasons = append(reasons, r)
		}
	}
	m := Message{
		AlertID:   a.AlertID,
		TrialID:   a.TrialID,
		SiteID:    a.SiteID,
		PatientID: a.PatientID,
		Severity:  a.Severity,
		Status:    a.Status,
		Reasons:   reasons,
		Tier:      n.Tier,
		OpenedAt:  a.OpenedAt.UTC(),
	}
	if baseURL != "" {
		// A fragment never reaches the server's logs or a proxy's: the alert
		// id stays between the browser and the board.
		m.Link = strings.TrimRight(baseURL, "/") + "/#alert=" + url.QueryEscape(a.AlertID)
	}
	return m, nil
}

// Error is a failed delivery that says whether retrying can help. Its text
// never holds a URL (webhook URLs often embed a token), a secret, or
// anything the receiver answered beyond its status.
type Error struct {
	// Permanent means the same request would fail the same way (a 4xx other
	// than 408 and 429, a missing secret, a rejected address): the
	// dispatcher dead-letters the notification at once.
	Permanent bool
	// RetryAfter is the receiver's requested wait (Retry-After), if any.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Permanent {
		return e.Err.Error() + " (permanent)"
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as one that retrying cannot fix.
func Permanent(err error) error { return &Error{Permanent: true, Err: err} }

// IsPermanent reports whether err says retrying cannot help. Errors that do
// not say are temporary: a late duplicate is better than a missed page.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// retryAfter is the receiver's requested wait carried by err, or 0.
func retryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// IsPermanentStatus reports whether an HTTP status means the request itself
// is wrong, so sending it again cannot succeed: any 4xx except 408 (Request
// Timeout) and 429 (Too Many Requests), which ask for a later retry. Redirects
// count as permanent because they are not followed: a signed POST must go to
// the configured URL and nowhere else.
func IsPermanentStatus(code int) bool {
	switch {
	case code == 408, code == 429:
		return false
	case code >= 300 && code < 500:
		return true
	}
	return false
}

// SecretLookup finds the secret a channel's SecretRef names; ok is false
// when there is none.
type SecretLookup func(ref string) (value string, ok bool)

// EnvSecrets looks ref up in the environment variable VIGIL_SECRET_<ref>, so
// that secrets stay out of the protocol document and its audit trail.
func EnvSecrets(ref string) (string, bool) { return os.LookupEnv("VIGIL_SECRET_" + ref) }

// secretRefName is what an environment variable suffix may be.
var secretRefName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// secret resolves a channel's secret; a missing one is permanent, since no
// retry will make it appear (the notification shows up as a dead letter to
// fix the configuration).
func secret(lookup SecretLookup, kind, ref string) (string, error) {
	if ref == "" {
		return "", Permanent(fmt.Errorf("%s: channel has no secret_ref", kind))
	}
	if !secretRefName.MatchString(ref) {
		return "", Permanent(fmt.Errorf("%s: secret_ref %q is not a valid name", kind, ref))
	}
	if lookup == nil {
		lookup = EnvSecrets
	}
	v, ok := lookup(ref)
	if !ok || v == "" {
		// The name is safe to say; it is how an operator finds what to set.
		return "", Permanent(fmt.Errorf("%s: secret VIGIL_SECRET_%s is not set", kind, ref))
	}
	return v, nil
}

// Board is the sender for the board channel: the alert is already published
// to the trial's room when it changes, so there is nothing more to send and
// the notification counts as delivered.
type Board struct{}

// Send implements Sender.
func (Board) Send(context.Context, store.Notification, Message) error { return nil }
