package scoring

import (
	"slices"
	"time"

	"vigil/reading"
	"vigil/trial"
)

// Context is what the rules know of a reading besides the reading: the
// trial's protocol and the patient's registry record.
type Context struct {
	Protocol trial.Protocol
	// Configured is false when the trial has no protocol (defaults apply).
	Configured bool
	Patient    trial.PatientRecord
	// Registered is false when the patient has no registry record.
	Registered bool
}

// SpO2 scale sources, recorded on every score.
const (
	ScaleFromRegistry = "registry"
	ScaleFromReading  = "reading"
	ScaleDefault      = "default"
)

// spo2Scale picks the scale: the registry's (set by a clinician, audited)
// wins over the app's, which is used only for a patient without a record.
func spo2Scale(r reading.Reading, c Context) (int, string) {
	if c.Registered && c.Patient.SpO2Scale != 0 {
		return c.Patient.SpO2Scale, ScaleFromRegistry
	}
	if !c.Registered && r.Vitals.SpO2Scale != nil {
		return *r.Vitals.SpO2Scale, ScaleFromReading
	}
	return 1, ScaleDefault
}

// bandRank orders NEWS2 bands.
func bandRank(b string) int {
	switch b {
	case BandLow:
		return 1
	case BandLowMedium:
		return 2
	case BandMedium:
		return 3
	case BandHigh:
		return 4
	}
	return 0
}

// news2Severity is the alert severity a band calls for (RCP 2017 Chart 4).
func news2Severity(band string) string {
	switch band {
	case BandHigh:
		return RiskCritical
	case BandMedium:
		return RiskHigh
	}
	return RiskMedium
}

// vitalSeverity maps a CTCAE grade to a severity: grades 1–2 need review,
// 3 (severe) is urgent, 4 (life-threatening) an emergency.
func vitalSeverity(grade int) string {
	switch {
	case grade >= 4:
		return RiskCritical
	case grade == 3:
		return RiskHigh
	}
	return RiskMedium
}

// symptomSeverity maps a PRO-CTCAE answer: very severe (4) is urgent.
func symptomSeverity(grade int) string {
	if grade >= 4 {
		return RiskHigh
	}
	return RiskMedium
}

func vitalValue(v reading.Vitals, name string) *float64 {
	switch name {
	case "respiratory_rate":
		return v.RespiratoryRate
	case "spo2":
		return v.SpO2
	case "systolic_bp":
		return v.SystolicBP
	case "diastolic_bp":
		return v.DiastolicBP
	case "heart_rate":
		return v.HeartRate
	case "temperature":
		return v.Temperature
	}
	return nil
}

func crosses(value float64, l trial.VitalLimit) bool {
	switch l.Op {
	case ">=":
		return value >= l.Value
	case ">":
		return value > l.Value
	case "<=":
		return value <= l.Value
	case "<":
		return value < l.Value
	}
	return false
}

// Candidate applies the protocol's alert rules to a scored reading and
// returns the alert it calls for, if any. Each rule that fires adds a reason
// and a finding: NEWS2 at or above the protocol's band (default medium), a
// single red NEWS2 item, a CTCAE-style vital limit, the model's SAE
// probability at or above the protocol's threshold (default 0.5; severity
// high: urgent review), a symptom at or above the protocol's grade (default
// 3). Severity is the highest any finding implies.
func Candidate(s Score, r reading.Reading, p trial.Protocol) (Alert, bool) {
	var (
		findings []Finding
		severity string
	)
	add := func(f Finding, sev string) {
		findings = append(findings, f)
		severity = maxRisk(severity, sev)
	}
	n := s.NEWS2
	minBand := p.Thresholds.Band()
	if bandRank(n.Band) >= bandRank(minBand) && bandRank(n.Band) >= bandRank(BandLowMedium) {
		total := float64(n.Total)
		add(Finding{Reason: ReasonNEWS2High, Parameter: "news2", Value: &total}, news2Severity(n.Band))
	}
	for _, param := range []string{ParamRespiratoryRate, ParamSpO2, ParamOnOxygen, ParamSystolicBP,
		ParamHeartRate, ParamConsciousness, ParamTemperature} {
		if pts, ok := n.Parameters[param]; ok && pts == 3 {
			add(Finding{Reason: ReasonSingleParameterRed, Parameter: param}, RiskMedium)
		}
	}
	// A ladder of limits on one vital (grade 1, 2, 3) fires several at once:
	// only the highest grade crossed is the finding.
	worst := map[string]trial.VitalLimit{}
	var order []string
	for _, l := range p.Thresholds.Vitals {
		if v := vitalValue(r.Vitals, l.Vital); v != nil && crosses(*v, l) {
			if w, seen := worst[l.Vital]; !seen {
				order = append(order, l.Vital)
				worst[l.Vital] = l
			} else if l.Grade > w.Grade {
				worst[l.Vital] = l
			}
		}
	}
	for _, name := range order {
		l := worst[name]
		val := *vitalValue(r.Vitals, name)
		add(Finding{Reason: ReasonVitalLimit, Parameter: name, Value: &val, Grade: l.Grade}, vitalSeverity(l.Grade))
	}
	if s.Model != nil {
		if s.Model.Probability >= p.Thresholds.ModelThreshold() {
			prob := s.Model.Probability
			add(Finding{Reason: ReasonModelSAERisk, Parameter: "model_probability", Value: &prob}, RiskHigh)
		}
	}
	minGrade := p.Thresholds.SymptomThreshold()
	for _, sym := range r.Symptoms {
		if sym.Grade >= minGrade {
			add(Finding{Reason: ReasonSymptomSevere, Parameter: sym.Term, Grade: sym.Grade}, symptomSeverity(sym.Grade))
		}
	}
	if len(findings) == 0 {
		return Alert{}, false
	}
	var reasons []string
	for _, f := range findings {
		reasons = append(reasons, f.Reason)
	}
	slices.Sort(reasons)
	return Alert{
		Kind:        "alert",
		PatientID:   s.PatientID,
		TrialID:     s.TrialID,
		SiteID:      s.SiteID,
		Severity:    maxRisk(maxRisk(RiskMedium, severity), s.Risk),
		Status:      StatusOpen,
		Reasons:     slices.Compact(reasons),
		Findings:    findings,
		ReadingID:   s.ReadingID,
		OpenedAt:    s.ScoredAt,
		UpdatedAt:   s.ScoredAt,
		CurrentRisk: s.Risk,
	}, true
}

// MissedReadings is the candidate for a patient silent since since.
func MissedReadings(trialID, siteID, patientID string, since, now time.Time) Alert {
	silent := now.Sub(since).Hours()
	return Alert{
		Kind: "alert", PatientID: patientID, TrialID: trialID, SiteID: siteID,
		Severity: RiskMedium, Status: StatusOpen, Reasons: []string{ReasonMissedReadings},
		Findings:  []Finding{{Reason: ReasonMissedReadings, Parameter: "hours_silent", Value: &silent}},
		OpenedAt:  now.UTC(),
		UpdatedAt: now.UTC(),
	}
}

// RiskUpdate is a candidate that raises nothing and only reports the
// patient's current risk to an unresolved alert (see Merge).
func RiskUpdate(s Score) Alert {
	return Alert{Kind: "alert", PatientID: s.PatientID, TrialID: s.TrialID, SiteID: s.SiteID,
		ReadingID: s.ReadingID, UpdatedAt: s.ScoredAt, CurrentRisk: s.Risk}
}
