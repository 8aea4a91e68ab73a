package reading

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of a plausible reading. The ranges are what a living patient can
// show, chosen generously: a reading outside them is a device or entry error,
// and refusing it (422) tells the app at once, while a value that is extreme
// but possible must still be accepted, scored and alerted on. All ranges are
// inclusive.
//
//	respiratory_rate  1–80 breaths/min, whole number
//	spo2              40–100 %, whole number
//	spo2_scale        1 or 2
//	systolic_bp       40–300 mmHg, whole number
//	diastolic_bp      20–200 mmHg, whole number, below systolic_bp
//	heart_rate        20–300 beats/min, whole number
//	consciousness     alert, new_confusion, voice, pain or unresponsive
//	temperature       25.0–45.0 °C after rounding half-up to 0.1 °C
//	symptoms          at most 50; term 1–64 characters; grade 0–4
//	ids               1–64 characters of A–Z a–z 0–9 _ - .
//	measured_at       no later than MaxClockSkew after the server's clock
//
// Integer vitals arrive as JSON numbers and are refused, not rounded, when
// they have a fraction: 18.5 breaths/min is a faulty device or app, and
// guessing which way to round would hide it.
const (
	MinRespiratoryRate, MaxRespiratoryRate = 1, 80
	MinSpO2, MaxSpO2                       = 40, 100
	MinSystolicBP, MaxSystolicBP           = 40, 300
	MinDiastolicBP, MaxDiastolicBP         = 20, 200
	MinHeartRate, MaxHeartRate             = 20, 300
	// Temperature limits are in tenths of a degree Celsius, compared after
	// rounding, so the range checked is exactly the range that gets scored.
	MinTemperatureTenths, MaxTemperatureTenths = 250, 450

	MaxSymptoms   = 50
	MaxTermLength = 64
	MaxIDLength   = 64
)

// MaxClockSkew is how far measured_at may lie ahead of the server's clock.
// Phone clocks drift, and a reading rejected for a few seconds of skew would be
// lost for good on an app that cannot fix its clock; two minutes absorbs
// ordinary drift while still catching readings stamped in the wrong zone.
const MaxClockSkew = 2 * time.Minute

// Validate reports whether r could be a true reading at time now. It returns
// nil or a *ValidationError naming every field at fault, so that an app
// developer can fix them all at once.
func (r Reading) Validate(now time.Time) error {
	var errs []FieldError
	add := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }

	switch {
	case r.ReadingID == "":
		add("reading_id", "required")
	case !IsUUID(r.ReadingID):
		add("reading_id", "must be a UUID (8-4-4-4-12 hexadecimal digits)")
	}
	for _, id := range []struct{ field, value string }{
		{"patient_id", r.PatientID},
		{"trial_id", r.TrialID},
		{"site_id", r.SiteID},
	} {
		if msg := checkID(id.value); msg != "" {
			add(id.field, msg)
		}
	}

	switch {
	case r.MeasuredAt.IsZero():
		add("measured_at", "required")
	case r.MeasuredAt.After(now.Add(MaxClockSkew)):
		add("measured_at", "in the future")
	}

	v := r.Vitals
	if !v.any() {
		add("vitals", "no vitals")
	}
	rangeErr := func(field string, f *float64, lo, hi int) bool {
		if f == nil {
			return false
		}
		if msg := checkWhole(*f, lo, hi); msg != "" {
			add("vitals."+field, msg)
			return true
		}
		return false
	}
	rangeErr("respiratory_rate", v.RespiratoryRate, MinRespiratoryRate, MaxRespiratoryRate)
	rangeErr("spo2", v.SpO2, MinSpO2, MaxSpO2)
	if v.SpO2Scale != nil && *v.SpO2Scale != 1 && *v.SpO2Scale != 2 {
		add("vitals.spo2_scale", "must be 1 or 2")
	}
	badSys := rangeErr("systolic_bp", v.SystolicBP, MinSystolicBP, MaxSystolicBP)
	if !rangeErr("diastolic_bp", v.DiastolicBP, MinDiastolicBP, MaxDiastolicBP) &&
		!badSys && v.SystolicBP != nil && v.DiastolicBP != nil && *v.DiastolicBP >= *v.SystolicBP {
		add("vitals.diastolic_bp", "must be below systolic_bp")
	}
	rangeErr("heart_rate", v.HeartRate, MinHeartRate, MaxHeartRate)
	if v.Consciousness != nil && !validConsciousness(*v.Consciousness) {
		add("vitals.consciousness", "must be one of alert, new_confusion, voice, pain, unresponsive")
	}
	if v.Temperature != nil {
		if msg := checkTemperature(*v.Temperature); msg != "" {
			add("vitals.temperature", msg)
		}
	}

	if len(r.Symptoms) > MaxSymptoms {
		add("symptoms", fmt.Sprintf("at most %d symptoms", MaxSymptoms))
	}
	for i, s := range r.Symptoms {
		p := "symptoms[" + strconv.Itoa(i) + "]"
		if msg := checkTerm(s.Term); msg != "" {
			add(p+".term", msg)
		}
		switch {
		case s.Grade == gradeMissing:
			add(p+".grade", "required")
		case s.Grade < 0 || s.Grade > 4:
			add(p+".grade", "must be between 0 and 4")
		}
	}

	if len(errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: errs}
}

// any reports whether at least one observation was made. spo2_scale alone
// does not count: it says how to read SpO2, it is not an observation.
func (v Vitals) any() bool {
	return v.RespiratoryRate != nil || v.SpO2 != nil || v.OnOxygen != nil ||
		v.SystolicBP != nil || v.DiastolicBP != nil || v.HeartRate != nil ||
		v.Consciousness != nil || v.Temperature != nil
}

func checkID(s string) string {
	if s == "" {
		return "required"
	}
	if len(s) > MaxIDLength {
		return fmt.Sprintf("must be at most %d characters", MaxIDLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-' || c == '.') {
			return "may hold only letters, digits, '_', '-' and '.'"
		}
	}
	return ""
}

func checkWhole(f float64, lo, hi int) string {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "must be a finite number"
	case f != math.Trunc(f):
		return "must be a whole number"
	case f < float64(lo) || f > float64(hi):
		return fmt.Sprintf("must be between %d and %d", lo, hi)
	}
	return ""
}

func checkTemperature(c float64) string {
	if math.IsNaN(c) || math.IsInf(c, 0) {
		return "must be a finite number"
	}
	if t := TenthsHalfUp(c); t < MinTemperatureTenths || t > MaxTemperatureTenths {
		return fmt.Sprintf("must be between %.1f and %.1f °C",
			float64(MinTemperatureTenths)/10, float64(MaxTemperatureTenths)/10)
	}
	return ""
}

func validConsciousness(s string) bool {
	switch s {
	case Alert, NewConfusion, Voice, Pain, Unresponsive:
		return true
	}
	return false
}

// checkTerm limits terms to what a board can show safely: control characters
// could break log lines and displays, and blank terms say nothing.
func checkTerm(s string) string {
	n := utf8.RuneCountInString(s)
	switch {
	case strings.TrimSpace(s) == "":
		return "required"
	case n > MaxTermLength:
		return fmt.Sprintf("must be at most %d characters", MaxTermLength)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "must not contain control characters"
	}
	return ""
}

// TenthsHalfUp returns celsius rounded half-up to 0.1 °C, in tenths of a
// degree: 38.05 gives 381 and 36.04 gives 360.
//
// It rounds the shortest decimal that reads back as celsius, which is the
// number the client wrote, rather than celsius*10: 38.05 is stored as
// 38.04999…, so arithmetic rounding would give 380 and move a fever across a
// NEWS2 boundary. Halves of negative numbers round away from zero; values
// beyond ±1e8 °C saturate, and NaN gives 0. No such value passes Validate.
func TenthsHalfUp(celsius float64) int {
	const limit = 1e8 // keeps the result within a 32-bit int
	switch {
	case math.IsNaN(celsius):
		return 0
	case celsius >= limit:
		return limit * 10
	case celsius <= -limit:
		return -limit * 10
	}
	s := strconv.FormatFloat(math.Abs(celsius), 'f', -1, 64)
	whole, frac, _ := strings.Cut(s, ".")
	frac += "00"
	n, _ := strconv.Atoi(whole) // at most nine digits, after the checks above
	t := n*10 + int(frac[0]-'0')
	if frac[1] >= '5' {
		t++
	}
	if celsius < 0 {
		return -t
	}
	return t
}
