package scoring

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"vigil/predictor"
	"vigil/reading"
)

// Risk levels, from lowest to highest.
const (
	RiskNone     = "none"
	RiskLow      = "low"
	RiskMedium   = "medium"
	RiskHigh     = "high"
	RiskCritical = "critical"
)

// NEWS2 bands (RCP 2017, Chart 4), in rising order of urgency.
const (
	BandLow       = "low"
	BandLowMedium = "low_medium"
	BandMedium    = "medium"
	BandHigh      = "high"
)

// NEWS2 parameter names, used as keys of NEWS2.Parameters and in NEWS2.Missing.
const (
	ParamRespiratoryRate = "respiratory_rate"
	ParamSpO2            = "spo2"
	ParamOnOxygen        = "on_oxygen"
	ParamSystolicBP      = "systolic_bp"
	ParamHeartRate       = "heart_rate"
	ParamConsciousness   = "consciousness"
	ParamTemperature     = "temperature"
)

// Parameters maps NEWS2 parameter names to their points. It encodes as a map
// does (an object with sorted keys) but without reflection, which cost ten
// allocations per score event (docs/BENCHMARKS.md).
type Parameters map[string]int

// MarshalJSON encodes p as encoding/json encodes a map[string]int.
func (p Parameters) MarshalJSON() ([]byte, error) {
	if p == nil {
		return []byte("null"), nil
	}
	var arr [8]string
	keys := arr[:0]
	for k := range p {
		if !plainKey(k) {
			return json.Marshal(map[string]int(p))
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := make([]byte, 0, 2+len(keys)*24)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, int64(p[k]), 10)
	}
	return append(b, '}'), nil
}

// plainKey reports whether k needs no escaping in JSON (the parameter names
// all are such).
func plainKey(k string) bool {
	for i := range len(k) {
		if c := k[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// NEWS2 is an aggregate score with its parts. Parameters holds only the items
// that were measured; Missing names the others, and Partial is true when any is
// missing (a partial total can only under-estimate the true one).
type NEWS2 struct {
	Total      int        `json:"total"`
	Band       string     `json:"band"`
	Partial    bool       `json:"partial"`
	Missing    []string   `json:"missing,omitempty"`
	Parameters Parameters `json:"parameters"`
	// SpO2Scale is the scale the SpO2 item was scored on (1 or 2), and
	// SpO2ScaleSource where it came from: registry, reading or default.
	SpO2Scale       int    `json:"spo2_scale"`
	SpO2ScaleSource string `json:"spo2_scale_source,omitempty"`
}

// Model is the predictor's output for one reading: the probability of a
// serious adverse event in the next 24 hours, the model version that gave it,
// and the inputs that pushed it up most, so a board can explain it.
type Model struct {
	Probability   float64                  `json:"probability"`
	Version       string                   `json:"version"`
	Contributions []predictor.Contribution `json:"contributions,omitempty"`
}

// Score is the result of scoring one reading; as JSON it is the "score" event
// data of DESIGN.md.
type Score struct {
	Kind       string    `json:"kind"` // always "score"
	ReadingID  string    `json:"reading_id"`
	PatientID  string    `json:"patient_id"`
	TrialID    string    `json:"trial_id"`
	SiteID     string    `json:"site_id"`
	MeasuredAt time.Time `json:"measured_at"`
	ScoredAt   time.Time `json:"scored_at"`
	NEWS2      NEWS2     `json:"news2"`
	Model      *Model    `json:"model"`
	Risk       string    `json:"risk"`
	Degraded   bool      `json:"degraded"`
	// Registered is false when the patient has no registry record and was
	// scored with defaults.
	Registered bool `json:"registered"`
	// RulesVersion identifies the rule set that produced NEWS2 and Risk, so a
	// stored score can be traced to the code that made it (ALCOA++).
	RulesVersion string `json:"rules_version"`
}

// ScoreEvent is what the bus carries for a score: DESIGN.md's score event
// data plus the reading's vitals, symptoms and receipt time, so a board can
// update a patient's row from the event alone instead of asking the server
// for it after every reading.
type ScoreEvent struct {
	Score
	ReceivedAt time.Time         `json:"received_at"`
	Vitals     reading.Vitals    `json:"vitals"`
	Symptoms   []reading.Symptom `json:"symptoms"`
}

// Alert severities and statuses.
const (
	StatusOpen         = "open"
	StatusAcknowledged = "acknowledged"
	StatusEscalated    = "escalated"
	StatusResolved     = "resolved"
)

// Alert reasons.
const (
	ReasonNEWS2High          = "news2_high"
	ReasonSingleParameterRed = "single_parameter_red"
	ReasonModelSAERisk       = "model_sae_risk"
	ReasonMissedReadings     = "missed_readings"
	// ReasonVitalLimit: a protocol's CTCAE-style limit was crossed.
	ReasonVitalLimit = "vital_limit"
	// ReasonSymptomSevere: a patient-reported symptom at or above the
	// protocol's grade (default 3, severe).
	ReasonSymptomSevere = "symptom_severe"
)

// Outcomes of a resolved alert.
const (
	OutcomeSAE   = "sae"
	OutcomeAE    = "ae"
	OutcomeNotAE = "not_ae"
)

// Alert is a patient's alert; as JSON it is the "alert" event data of DESIGN.md.
type Alert struct {
	Kind      string    `json:"kind"` // always "alert"
	AlertID   string    `json:"alert_id"`
	PatientID string    `json:"patient_id"`
	TrialID   string    `json:"trial_id"`
	SiteID    string    `json:"site_id"`
	Severity  string    `json:"severity"`
	Status    string    `json:"status"`
	Reasons   []string  `json:"reasons"`
	ReadingID string    `json:"reading_id"`
	OpenedAt  time.Time `json:"opened_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Findings detail the reasons: which vital crossed which limit, which
	// symptom at which grade.
	Findings []Finding `json:"findings,omitempty"`
	// CurrentRisk is the risk of the patient's latest reading while the alert
	// is unresolved; it may fall below Severity, which only rises.
	CurrentRisk string `json:"current_risk,omitempty"`
	// Tier is the escalation tier notified last (-1: none yet), and
	// NextEscalationAt when the next one is due unless acknowledged.
	Tier             int        `json:"tier"`
	NextEscalationAt *time.Time `json:"next_escalation_at,omitempty"`
	Acknowledged     *Signature `json:"acknowledged,omitempty"`
	Resolved         *Signature `json:"resolved,omitempty"`
	// Outcome is the investigator's judgement at resolution: sae, ae, not_ae.
	Outcome string `json:"outcome,omitempty"`
	// PossibleSAE is the signed mark of a person who judged the event a
	// possible serious adverse event: from then the investigator is aware,
	// and the report to the sponsor is due within 24 hours (ICH E2A, E6).
	PossibleSAE *Signature `json:"possible_sae,omitempty"`
	// ReportDueAt is when the investigator's report to the sponsor is due:
	// 24 hours after awareness (the possible-SAE mark, or a resolution as
	// sae without one). Absent when no report is due.
	ReportDueAt *time.Time `json:"report_due_at,omitempty"`
}

// Finding is one reason of an alert in detail.
type Finding struct {
	Reason string `json:"reason"`
	// Parameter is the vital (a reading.Vitals JSON name), the NEWS2 item or
	// the symptom term concerned.
	Parameter string   `json:"parameter,omitempty"`
	Value     *float64 `json:"value,omitempty"`
	// Grade is the CTCAE grade of a vital limit or the PRO-CTCAE grade of a
	// symptom.
	Grade int `json:"grade,omitempty"`
}

// Signature is a person's signed action on an alert (21 CFR 11.50: printed
// name, date and time, meaning).
type Signature struct {
	Sub     string    `json:"sub"`
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	At      time.Time `json:"at"`
	Meaning string    `json:"meaning"`
	Reason  string    `json:"reason"`
}

// MergeFunc decides, given the patient's current unresolved alert (nil if
// none) and a candidate raised by a new reading, what the alert becomes and
// whether that is a change worth storing and publishing. The store calls it
// inside the transaction that reads and writes the alert, so the decision and
// the write are atomic.
type MergeFunc func(current *Alert, candidate Alert) (next Alert, changed bool)

// MarshalEvent is json.Marshal for event data; kept in one place so that every
// event on the bus is encoded the same way.
func MarshalEvent(v any) ([]byte, error) { return json.Marshal(v) }
