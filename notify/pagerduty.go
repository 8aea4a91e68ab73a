package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"vigil/scoring"
	"vigil/store"
)

// PagerDuty sends a Message as a PagerDuty Events API v2 event to the
// channel's URL (normally https://events.pagerduty.com/v2/enqueue), with the
// routing key from VIGIL_SECRET_<secret_ref>. The dedup_key is
// "vigil-<alert id>", so every tier and repeat of one alert lands on one
// PagerDuty incident instead of paging a fresh one each time.
//
// An alert that is open or escalated is sent as a trigger. A notification
// made for an acknowledged or resolved alert is sent as an acknowledge or
// resolve of that incident instead, so PagerDuty never re-pages for an alert
// a person has already taken.
type PagerDuty struct {
	// Client defaults to one with a 10 s timeout that does not follow
	// redirects.
	Client *http.Client
	// Secrets defaults to EnvSecrets.
	Secrets SecretLookup
	// AllowHTTP permits plain http to non-loopback hosts.
	AllowHTTP bool
}

// NewPagerDuty returns a PagerDuty sender that finds routing keys with lookup
// (nil: EnvSecrets).
func NewPagerDuty(lookup SecretLookup) *PagerDuty {
	return &PagerDuty{Client: newHTTPClient(), Secrets: lookup}
}

// PagerDutyEvent is the Events API v2 request body.
type PagerDutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"`
	DedupKey    string            `json:"dedup_key"`
	Payload     *PagerDutyPayload `json:"payload,omitempty"`
	Links       []PagerDutyLink   `json:"links,omitempty"`
	Client      string            `json:"client,omitempty"`
	ClientURL   string            `json:"client_url,omitempty"`
}

// PagerDutyPayload is a trigger event's payload.
type PagerDutyPayload struct {
	Summary   string `json:"summary"`
	Source    string `json:"source"`
	Severity  string `json:"severity"`
	Timestamp string `json:"timestamp,omitempty"`
	Component string `json:"component,omitempty"`
	Group     string `json:"group,omitempty"`
	Class     string `json:"class,omitempty"`
	// CustomDetails holds the same identifiers as Message, nothing more.
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

// PagerDutyLink is a link shown on the incident.
type PagerDutyLink struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// pagerDutySummaryMax is the Events API's limit on summary length.
const pagerDutySummaryMax = 1024

// Send implements Sender.
func (p *PagerDuty) Send(ctx context.Context, n store.Notification, msg Message) error {
	u, err := checkURL(KindPagerDuty, n.Channel.URL, p.AllowHTTP)
	if err != nil {
		return err
	}
	key, err := secret(p.Secrets, KindPagerDuty, n.Channel.SecretRef)
	if err != nil {
		return err
	}
	body, err := json.Marshal(PagerDutyEventFor(key, msg))
	if err != nil {
		return Permanent(fmt.Errorf("pagerduty: encode: %w", err))
	}
	// A 202 is PagerDuty's acceptance; 400 is a malformed event (permanent),
	// 429 and 5xx are retried.
	return post(ctx, p.Client, KindPagerDuty, u, body, nil)
}

// PagerDutyEventFor builds the event for msg with routing key key.
func PagerDutyEventFor(key string, msg Message) PagerDutyEvent {
	ev := PagerDutyEvent{
		RoutingKey:  key,
		EventAction: "trigger",
		DedupKey:    "vigil-" + msg.AlertID,
		Client:      "Vigil",
	}
	switch msg.Status {
	case scoring.StatusAcknowledged:
		ev.EventAction = "acknowledge"
		return ev
	case scoring.StatusResolved:
		ev.EventAction = "resolve"
		return ev
	}
	summary := fmt.Sprintf("[Vigil] %s alert %s: trial %s site %s, patient %s (%s), tier %d",
		strings.ToUpper(msg.Severity), msg.AlertID, msg.TrialID, msg.SiteID, msg.PatientID,
		strings.Join(msg.Reasons, ", "), msg.Tier)
	summary = store.TruncateUTF8(summary, pagerDutySummaryMax)
	ev.Payload = &PagerDutyPayload{
		Summary:   summary,
		Source:    "vigil",
		Severity:  pagerDutySeverity(msg.Severity),
		Component: msg.TrialID + "/" + msg.SiteID,
		Group:     msg.TrialID,
		Class:     strings.Join(msg.Reasons, ","),
		CustomDetails: map[string]any{
			"alert_id":   msg.AlertID,
			"trial_id":   msg.TrialID,
			"site_id":    msg.SiteID,
			"patient_id": msg.PatientID,
			"severity":   msg.Severity,
			"status":     msg.Status,
			"reasons":    msg.Reasons,
			"tier":       msg.Tier,
		},
	}
	if !msg.OpenedAt.IsZero() {
		ev.Payload.Timestamp = msg.OpenedAt.UTC().Format(time.RFC3339)
	}
	if msg.Link != "" {
		ev.Links = []PagerDutyLink{{Href: msg.Link, Text: "Open alert in Vigil"}}
		ev.ClientURL = msg.Link
	}
	return ev
}

// pagerDutySeverity maps an alert severity onto the Events API's four. An
// unknown severity maps to error rather than to something quieter: a page
// that is too loud is a smaller harm than one that is missed.
func pagerDutySeverity(s string) string {
	switch s {
	case scoring.RiskCritical:
		return "critical"
	case scoring.RiskHigh:
		return "error"
	case scoring.RiskMedium:
		return "warning"
	case scoring.RiskLow, scoring.RiskNone:
		return "info"
	}
	return "error"
}
