// Package reading owns the vital-signs reading as ePRO apps submit it: its wire
// shape, strict decoding and clinical plausibility checks. It imports nothing of
// Vigil's, so every other package may depend on it.
package reading

import (
	"time"
)

// Consciousness values accepted on the ACVPU scale, with new confusion.
const (
	Alert        = "alert"
	NewConfusion = "new_confusion"
	Voice        = "voice"
	Pain         = "pain"
	Unresponsive = "unresponsive"
)

// Vitals holds one set of observations. A nil field was not measured.
// Integer-valued vitals are float64 on the wire so that 18.5 breaths/min is
// reported as a clinical error (422, "must be a whole number") rather than a
// JSON type error.
type Vitals struct {
	RespiratoryRate *float64 `json:"respiratory_rate,omitempty"`
	SpO2            *float64 `json:"spo2,omitempty"`
	SpO2Scale       *int     `json:"spo2_scale,omitempty"`
	OnOxygen        *bool    `json:"on_oxygen,omitempty"`
	SystolicBP      *float64 `json:"systolic_bp,omitempty"`
	DiastolicBP     *float64 `json:"diastolic_bp,omitempty"`
	HeartRate       *float64 `json:"heart_rate,omitempty"`
	Consciousness   *string  `json:"consciousness,omitempty"`
	Temperature     *float64 `json:"temperature,omitempty"`
}

// Symptom is one PRO-CTCAE answer: 0 (none) to 4 (very severe).
type Symptom struct {
	Term  string `json:"term"`
	Grade int    `json:"grade"`
}

// Reading is one submission from an ePRO app.
type Reading struct {
	ReadingID  string    `json:"reading_id"`
	PatientID  string    `json:"patient_id"`
	TrialID    string    `json:"trial_id"`
	SiteID     string    `json:"site_id"`
	MeasuredAt time.Time `json:"measured_at"`
	Vitals     Vitals    `json:"vitals"`
	Symptoms   []Symptom `json:"symptoms,omitempty"`
}

// FieldError names one field at fault and why, as RFC 9457 "errors" entries.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}
