// Package scoring owns the clinical rules that turn a reading into a score and
// an alert candidate (NEWS2, risk levels, alert merging) and the pipeline that
// applies them. The rules are pure functions of their inputs so that a stored
// score can be reproduced from its reading and RulesVersion.
package scoring

import (
	"math"
	"slices"

	"vigil/reading"
	"vigil/trial"
)

// RulesVersion names the rule set implemented here. Change it whenever a
// change to this file could change a score, band, risk or alert, so that
// every stored score stays traceable to the rules that produced it.
const RulesVersion = "news2-rcp2017/1"

// params lists the NEWS2 items in the order of RCP 2017 Chart 1, the order
// clinicians read them in; Missing follows it.
var params = []string{
	ParamRespiratoryRate,
	ParamSpO2,
	ParamOnOxygen,
	ParamSystolicBP,
	ParamHeartRate,
	ParamConsciousness,
	ParamTemperature,
}

// ScoreNEWS2 scores v on the National Early Warning Score 2 (Royal College of
// Physicians, 2017, Chart 1). spo2Scale selects the SpO2 scale: 2 for
// confirmed hypercapnic respiratory failure, anything else scale 1, since
// scale 2 scores low saturations more leniently and must never be assumed.
//
// Only measured items are scored; the others are listed in Missing and the
// result is Partial, because a partial total can only under-estimate. When
// on_oxygen is missing, SpO2 on scale 2 is scored as if on air (the lower of
// the two readings of the chart) and on_oxygen stays missing.
//
// Temperature is rounded half-up to 0.1 °C first (reading.TenthsHalfUp), the
// RCP defining no rounding of its own. Integer items are expected to be
// whole numbers (reading.Validate refuses fractions) and are rounded to the
// nearest integer in case they are not. Diastolic BP is not a NEWS2 item.
func ScoreNEWS2(v reading.Vitals, spo2Scale int) NEWS2 {
	if spo2Scale != 2 {
		spo2Scale = 1
	}
	n := NEWS2{Parameters: make(Parameters, len(params)), SpO2Scale: spo2Scale}
	set := func(name string, points int) { n.Parameters[name] = points }

	if v.RespiratoryRate != nil {
		set(ParamRespiratoryRate, scoreRespiratoryRate(whole(*v.RespiratoryRate)))
	}
	onOxygen := v.OnOxygen != nil && *v.OnOxygen
	if v.SpO2 != nil {
		s := whole(*v.SpO2)
		if spo2Scale == 2 {
			set(ParamSpO2, scoreSpO2Scale2(s, onOxygen))
		} else {
			set(ParamSpO2, scoreSpO2Scale1(s))
		}
	}
	if v.OnOxygen != nil {
		if onOxygen {
			set(ParamOnOxygen, 2)
		} else {
			set(ParamOnOxygen, 0)
		}
	}
	if v.SystolicBP != nil {
		set(ParamSystolicBP, scoreSystolicBP(whole(*v.SystolicBP)))
	}
	if v.HeartRate != nil {
		set(ParamHeartRate, scoreHeartRate(whole(*v.HeartRate)))
	}
	if v.Consciousness != nil {
		set(ParamConsciousness, scoreConsciousness(*v.Consciousness))
	}
	if v.Temperature != nil {
		set(ParamTemperature, scoreTemperature(reading.TenthsHalfUp(*v.Temperature)))
	}

	red := false
	for _, p := range params {
		points, ok := n.Parameters[p]
		if !ok {
			n.Missing = append(n.Missing, p)
			continue
		}
		n.Total += points
		red = red || points == 3
	}
	n.Partial = len(n.Missing) > 0
	n.Band = band(n.Total, red)
	return n
}

// whole rounds f to an int without relying on Go's implementation-defined
// conversion of NaN and out-of-range floats: NaN becomes 0, which scores 3
// on every integer item, so a corrupt value errs towards an alert.
func whole(f float64) int {
	const limit = 1 << 20
	switch {
	case math.IsNaN(f):
		return 0
	case f > limit:
		return limit
	case f < -limit:
		return -limit
	}
	return int(math.Round(f))
}

func scoreRespiratoryRate(rr int) int {
	switch {
	case rr <= 8:
		return 3
	case rr <= 11:
		return 1
	case rr <= 20:
		return 0
	case rr <= 24:
		return 2
	}
	return 3
}

func scoreSpO2Scale1(s int) int {
	switch {
	case s <= 91:
		return 3
	case s <= 93:
		return 2
	case s <= 95:
		return 1
	}
	return 0
}

// scoreSpO2Scale2 scores a patient whose target saturation is 88–92 %: on
// oxygen, saturations above the target score too, since they mean too much
// oxygen for a patient who retains CO2; on air they cannot be too high.
func scoreSpO2Scale2(s int, onOxygen bool) int {
	switch {
	case s <= 83:
		return 3
	case s <= 85:
		return 2
	case s <= 87:
		return 1
	case s <= 92 || !onOxygen:
		return 0
	case s <= 94:
		return 1
	case s <= 96:
		return 2
	}
	return 3
}

func scoreSystolicBP(sbp int) int {
	switch {
	case sbp <= 90:
		return 3
	case sbp <= 100:
		return 2
	case sbp <= 110:
		return 1
	case sbp <= 219:
		return 0
	}
	return 3
}

func scoreHeartRate(hr int) int {
	switch {
	case hr <= 40:
		return 3
	case hr <= 50:
		return 1
	case hr <= 90:
		return 0
	case hr <= 110:
		return 1
	case hr <= 130:
		return 2
	}
	return 3
}

// scoreConsciousness gives 3 to anything but alert, including values that
// Validate would refuse: an unknown state must not pass as a normal one.
func scoreConsciousness(c string) int {
	if c == reading.Alert {
		return 0
	}
	return 3
}

func scoreTemperature(tenths int) int {
	switch {
	case tenths <= 350:
		return 3
	case tenths <= 360:
		return 1
	case tenths <= 380:
		return 0
	case tenths <= 390:
		return 1
	}
	return 2
}

func band(total int, red bool) string {
	switch {
	case total >= 7:
		return BandHigh
	case total >= 5:
		return BandMedium
	case red:
		return BandLowMedium
	}
	return BandLow
}

// RiskOf maps a NEWS2 result to a risk level, following the clinical
// response of RCP 2017 Chart 4: none for an aggregate of 0 (routine
// monitoring), low for 1–4, medium for a single red parameter, high for 5–6
// (urgent review) and critical for 7 or more (emergency response).
func RiskOf(n NEWS2) string {
	switch n.Band {
	case BandHigh:
		return RiskCritical
	case BandMedium:
		return RiskHigh
	case BandLowMedium:
		return RiskMedium
	}
	if n.Total == 0 {
		return RiskNone
	}
	return RiskLow
}

// riskRank orders risk levels; unknown levels rank below all.
func riskRank(r string) int {
	switch r {
	case RiskNone:
		return 1
	case RiskLow:
		return 2
	case RiskMedium:
		return 3
	case RiskHigh:
		return 4
	case RiskCritical:
		return 5
	}
	return 0
}

func maxRisk(a, b string) string {
	if riskRank(b) > riskRank(a) {
		return b
	}
	return a
}

// AlertCandidate returns the alert that s calls for under the default rules
// (no protocol): NEWS2 in the medium or high band, or any single parameter
// scoring 3 — the thresholds at which RCP 2017 asks for urgent clinical
// review. AlertID is left for the store to assign.
func AlertCandidate(s Score) (Alert, bool) {
	return Candidate(s, reading.Reading{}, trial.Protocol{})
}

// Merge folds candidate into the patient's current unresolved alert, keeping
// one alert per patient whose severity only rises. It satisfies MergeFunc.
//
// A candidate changes the alert when it raises the severity, adds a reason
// or changes the patient's current risk; the alert then points at the
// candidate's reading and time. A rise in severity re-opens an acknowledged
// alert and restarts its escalation, because the acknowledgement was for a
// lesser state and a worse reading must reach a person again; on an alert
// nobody has acknowledged, a rise notifies the current tier again at once. Severity never
// falls: a better reading only lowers CurrentRisk, and only a person resolves
// an alert. A new alert is due for escalation at once (tier -1: nobody
// notified yet), so the scheduler notifies its first tier.
func Merge(current *Alert, candidate Alert) (Alert, bool) {
	if current == nil {
		if len(candidate.Reasons) == 0 {
			return Alert{}, false // a risk update with no alert to update
		}
		candidate.Reasons = slices.Clone(candidate.Reasons)
		slices.Sort(candidate.Reasons)
		candidate.Reasons = slices.Compact(candidate.Reasons)
		candidate.Findings = slices.Clone(candidate.Findings)
		candidate.Tier = -1
		due := candidate.UpdatedAt
		candidate.NextEscalationAt = &due
		return candidate, true
	}
	next := *current
	rose := riskRank(candidate.Severity) > riskRank(current.Severity)
	added := false
	for _, r := range candidate.Reasons {
		if !slices.Contains(current.Reasons, r) {
			added = true
			break
		}
	}
	riskChanged := candidate.CurrentRisk != "" && candidate.CurrentRisk != current.CurrentRisk
	if !rose && !added && !riskChanged {
		return *current, false
	}
	if rose {
		next.Severity = candidate.Severity
		due := candidate.UpdatedAt
		next.NextEscalationAt = &due
		if current.Status == StatusAcknowledged {
			next.Status = StatusOpen
			next.Acknowledged = nil
			next.Tier = -1
		} else {
			// No grouping delay on a worse state: the tier already told is
			// told again now, and escalation goes on from there.
			next.Tier = max(-1, current.Tier-1)
		}
	}
	reasons := make([]string, 0, len(current.Reasons)+len(candidate.Reasons))
	reasons = append(append(reasons, current.Reasons...), candidate.Reasons...)
	slices.Sort(reasons)
	next.Reasons = slices.Compact(reasons)
	next.Findings = mergeFindings(current.Findings, candidate.Findings)
	if candidate.CurrentRisk != "" {
		next.CurrentRisk = candidate.CurrentRisk
	}
	if (rose || added) && candidate.ReadingID != "" {
		next.ReadingID = candidate.ReadingID
	}
	next.UpdatedAt = candidate.UpdatedAt
	return next, true
}

// mergeFindings keeps one finding per (reason, parameter), the latest.
func mergeFindings(cur, cand []Finding) []Finding {
	out := slices.Clone(cur)
	for _, f := range cand {
		i := slices.IndexFunc(out, func(g Finding) bool { return g.Reason == f.Reason && g.Parameter == f.Parameter })
		if i >= 0 {
			out[i] = f
		} else {
			out = append(out, f)
		}
	}
	return out
}
