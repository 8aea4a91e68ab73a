// Package trial owns what a trial's admin configures: the protocol (sites,
// reading schedule, alert thresholds, escalation policy) and the patient
// registry (enrolment and the flags that change scoring), their strict
// decoding from YAML or JSON, their validation, their defaults, and the
// read-through cache the scoring path looks them up in. It imports reading for
// the vitals a baseline holds and for FieldError, and nothing else of Vigil's
// (store imports trial, so trial must not import store).
package trial

import (
	"time"

	"vigil/reading"
)

// Protocol is one trial's configuration.
type Protocol struct {
	TrialID string   `json:"trial_id" yaml:"trial_id"`
	Title   string   `json:"title,omitempty" yaml:"title,omitempty"`
	Sites   []string `json:"sites" yaml:"sites"`
	// Schedule is how often each patient is expected to report.
	Schedule   Schedule   `json:"schedule" yaml:"schedule"`
	Thresholds Thresholds `json:"thresholds" yaml:"thresholds"`
	Escalation Escalation `json:"escalation" yaml:"escalation"`
	// RequireAuthWithin, when set, makes acknowledging or resolving an alert
	// require a token whose auth_time is at most this old (21 CFR 11.200:
	// the signer proved identity recently).
	RequireAuthWithin Duration `json:"require_auth_within,omitempty" yaml:"require_auth_within,omitempty"`
	// Version is assigned by the store on every change.
	Version   int       `json:"version" yaml:"-"`
	UpdatedAt time.Time `json:"updated_at" yaml:"-"`
}

// Schedule is the expected reading cadence: a patient silent for longer than
// Every plus Grace raises a missed-readings alert.
type Schedule struct {
	Every Duration `json:"every" yaml:"every"`
	Grace Duration `json:"grace" yaml:"grace"`
}

// Thresholds override the default alert rules.
type Thresholds struct {
	// NEWS2Band is the lowest NEWS2 band that raises an alert: low_medium,
	// medium (default) or high.
	NEWS2Band string `json:"news2_band,omitempty" yaml:"news2_band,omitempty"`
	// Vitals are CTCAE-style limits, each with the grade it means.
	Vitals []VitalLimit `json:"vitals,omitempty" yaml:"vitals,omitempty"`
	// SymptomGrade is the lowest PRO-CTCAE grade (0–4) of a reported symptom
	// that raises an alert; 0 means the default, 3 (severe).
	SymptomGrade int `json:"symptom_grade,omitempty" yaml:"symptom_grade,omitempty"`
	// ModelProbability is the predictor's SAE probability that raises an
	// alert; 0 means the default (0.5).
	ModelProbability float64 `json:"model_probability,omitempty" yaml:"model_probability,omitempty"`
}

// VitalLimit is one limit: the vital crosses it when its value is Op Value
// ("systolic_bp >= 160" is grade 3 hypertension).
type VitalLimit struct {
	Vital string  `json:"vital" yaml:"vital"` // a reading.Vitals JSON name, e.g. systolic_bp
	Op    string  `json:"op" yaml:"op"`       // >=, >, <=, <
	Value float64 `json:"value" yaml:"value"`
	Grade int     `json:"grade" yaml:"grade"` // CTCAE grade 1–4 it means
	Term  string  `json:"term,omitempty" yaml:"term,omitempty"`
}

// Escalation is who is told about an alert, and when the next tier is.
type Escalation struct {
	// Tiers are notified in order: tier 0 when the alert opens, tier i+1 when
	// tier i's After passes without an acknowledgement.
	Tiers []Tier `json:"tiers" yaml:"tiers"`
	// Repeat, when set, notifies the last tier again every Repeat until the
	// alert is acknowledged.
	Repeat Duration `json:"repeat,omitempty" yaml:"repeat,omitempty"`
	// AckTimeout, when set, re-opens an acknowledged alert that is still
	// unresolved after it, and escalation starts again from the first tier:
	// an acknowledgement is a promise to act, not a way to silence an alert.
	AckTimeout Duration `json:"ack_timeout,omitempty" yaml:"ack_timeout,omitempty"`
}

// Tier is one escalation level.
type Tier struct {
	Name string `json:"name" yaml:"name"`
	// After is how long this tier has to acknowledge before the next one is
	// notified.
	After    Duration  `json:"after" yaml:"after"`
	Channels []Channel `json:"channels" yaml:"channels"`
}

// Channel kinds.
const (
	ChannelWebhook   = "webhook"
	ChannelPagerDuty = "pagerduty"
	ChannelEmail     = "email"
	ChannelBoard     = "board"
)

// Channel is one notification target.
type Channel struct {
	// Kind is webhook, pagerduty, email or board.
	Kind string `json:"kind" yaml:"kind"`
	// URL is the webhook or PagerDuty Events API v2 endpoint.
	URL string `json:"url,omitempty" yaml:"url,omitempty"`
	// SecretRef names the environment variable VIGIL_SECRET_<SecretRef>
	// holding the webhook's HMAC key or PagerDuty routing key; secrets are
	// never part of the protocol document.
	SecretRef string `json:"secret_ref,omitempty" yaml:"secret_ref,omitempty"`
	// To are email addresses.
	To []string `json:"to,omitempty" yaml:"to,omitempty"`
}

// Patient statuses.
const (
	Enrolled  = "enrolled"
	Withdrawn = "withdrawn"
)

// AgeBands returns the registry's age bands, in the order of the model's
// age_band feature (predictor-py/FEATURES.md).
func AgeBands() []string { return []string{"<40", "40-64", "65-79", "80+"} }

// AgeBandIndex is the record's age band as the model's feature, -1 when
// unknown.
func (p PatientRecord) AgeBandIndex() int {
	for i, b := range AgeBands() {
		if p.AgeBand == b {
			return i
		}
	}
	return -1
}

// PatientRecord is one patient's registry entry.
type PatientRecord struct {
	TrialID   string `json:"trial_id" yaml:"-"`
	SiteID    string `json:"site_id" yaml:"site"`
	PatientID string `json:"patient_id" yaml:"id"`
	Status    string `json:"status" yaml:"status"`
	// SpO2Scale 2 is for confirmed hypercapnic respiratory failure, set by a
	// clinician; it wins over the app's value.
	SpO2Scale int `json:"spo2_scale,omitempty" yaml:"spo2_scale,omitempty"`
	// AgeBand is one of AgeBands(), an input of the risk model. A band rather
	// than a birth date: the model needs no more, and the registry should
	// hold no more identifying data than it uses.
	AgeBand string `json:"age_band,omitempty" yaml:"age_band,omitempty"`
	// Baseline holds the patient's usual vitals, for context on the board.
	Baseline *reading.Vitals `json:"baseline,omitempty" yaml:"baseline,omitempty"`
	// Version, CreatedAt and UpdatedAt are assigned by the store. CreatedAt
	// is the first registration: a patient who never reported is silent
	// since then.
	Version   int       `json:"version" yaml:"-"`
	CreatedAt time.Time `json:"created_at" yaml:"-"`
	UpdatedAt time.Time `json:"updated_at" yaml:"-"`
}
