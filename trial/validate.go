package trial

import (
	"errors"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"vigil/reading"
)

// NEWS2 bands a protocol may set as its alert threshold. (They are the
// scoring package's band names; low is not allowed: it would alert on
// every reading.)
const (
	BandLowMedium = "low_medium"
	BandMedium    = "medium"
	BandHigh      = "high"
)

// Limit operators.
const (
	OpGE = ">="
	OpGT = ">"
	OpLE = "<="
	OpLT = "<"
)

// Rules a protocol must meet.
const (
	MaxIDLength     = reading.MaxIDLength
	MaxTitleLength  = 200
	MaxTierName     = 64
	MaxSecretRef    = 64
	MaxScheduleStep = 7 * 24 * time.Hour
)

// VitalNames are the numeric reading.Vitals fields a limit may name.
var VitalNames = []string{"respiratory_rate", "spo2", "systolic_bp", "diastolic_bp", "heart_rate", "temperature"}

// vitalRange is the plausible range reading.Validate accepts for a vital. A
// limit outside it can never fire (or always fires), which in a safety
// protocol is a silent hole, so it is refused.
var vitalRange = map[string][2]float64{
	"respiratory_rate": {reading.MinRespiratoryRate, reading.MaxRespiratoryRate},
	"spo2":             {reading.MinSpO2, reading.MaxSpO2},
	"systolic_bp":      {reading.MinSystolicBP, reading.MaxSystolicBP},
	"diastolic_bp":     {reading.MinDiastolicBP, reading.MaxDiastolicBP},
	"heart_rate":       {reading.MinHeartRate, reading.MaxHeartRate},
	"temperature":      {reading.MinTemperatureTenths / 10.0, reading.MaxTemperatureTenths / 10.0},
}

type validator struct{ errs []reading.FieldError }

func (v *validator) add(field, msg string) {
	v.errs = append(v.errs, reading.FieldError{Field: field, Message: msg})
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: v.errs}
}

func at(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// id checks an identifier: 1–64 of A–Z a–z 0–9 _ - . (the reading's rule, so
// every id a protocol names can appear on a reading).
func (v *validator) id(field, s string) {
	switch {
	case s == "":
		v.add(field, "required")
	case len(s) > MaxIDLength:
		v.add(field, fmt.Sprintf("must be at most %d characters", MaxIDLength))
	default:
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-' || c == '.') {
				v.add(field, "may hold only letters, digits, '_', '-' and '.'")
				return
			}
		}
	}
}

// text checks free text shown on the board and in notifications: control
// characters could break log lines, e-mail headers and displays.
func (v *validator) text(field, s string, maxLen int, required bool) {
	switch {
	case strings.TrimSpace(s) == "":
		if required {
			v.add(field, "required")
		}
	case utf8.RuneCountInString(s) > maxLen:
		v.add(field, fmt.Sprintf("must be at most %d characters", maxLen))
	case !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0:
		v.add(field, "must not contain control characters")
	}
}

// Validate checks every rule of a protocol and returns nil or a
// *ValidationError listing each problem with its field path.
func (p Protocol) Validate() error {
	v := &validator{}
	v.id("trial_id", p.TrialID)
	v.text("title", p.Title, MaxTitleLength, false)

	if len(p.Sites) == 0 {
		v.add("sites", "at least one site is required")
	}
	seen := make(map[string]bool, len(p.Sites))
	for i, s := range p.Sites {
		v.id(at("sites", i), s)
		if seen[s] {
			v.add(at("sites", i), "duplicate site")
		}
		seen[s] = true
	}

	switch {
	case p.Schedule.Every < 0:
		v.add("schedule.every", "must not be negative")
	case p.Schedule.Every == 0:
		v.add("schedule.every", "required: how often each patient is expected to report")
	case p.Schedule.Every.Std() > MaxScheduleStep:
		v.add("schedule.every", "must be at most 168h (7 days)")
	}
	if p.Schedule.Grace < 0 {
		v.add("schedule.grace", "must not be negative")
	}

	p.Thresholds.validate(v)
	p.Escalation.validate(v)

	if p.RequireAuthWithin < 0 {
		v.add("require_auth_within", "must not be negative")
	}
	return v.err()
}

func (t Thresholds) validate(v *validator) {
	switch t.NEWS2Band {
	case "", BandLowMedium, BandMedium, BandHigh:
	default:
		v.add("thresholds.news2_band", "must be one of low_medium, medium, high")
	}
	for i, l := range t.Vitals {
		p := at("thresholds.vitals", i)
		rng, known := vitalRange[l.Vital]
		switch {
		case l.Vital == "":
			v.add(p+".vital", "required")
		case !known:
			v.add(p+".vital", "must be one of "+strings.Join(VitalNames, ", "))
		}
		switch l.Op {
		case OpGE, OpGT, OpLE, OpLT:
		case "":
			v.add(p+".op", "required")
		default:
			v.add(p+".op", "must be one of >=, >, <=, <")
		}
		switch {
		case math.IsNaN(l.Value) || math.IsInf(l.Value, 0):
			v.add(p+".value", "must be a finite number")
		case known && (l.Value < rng[0] || l.Value > rng[1]):
			v.add(p+".value", fmt.Sprintf("must be between %g and %g, the plausible range of %s: a limit outside it never fires",
				rng[0], rng[1], l.Vital))
		}
		if l.Grade < 1 || l.Grade > 4 {
			v.add(p+".grade", "must be a CTCAE grade from 1 to 4")
		}
		v.text(p+".term", l.Term, reading.MaxTermLength, false)
	}
	if t.SymptomGrade < 0 || t.SymptomGrade > 4 {
		v.add("thresholds.symptom_grade", "must be a PRO-CTCAE grade from 0 to 4 (0: the default, 3)")
	}
	if math.IsNaN(t.ModelProbability) || t.ModelProbability < 0 || t.ModelProbability > 1 {
		v.add("thresholds.model_probability", "must be between 0 and 1 (0: the default, 0.5)")
	}
}

func (e Escalation) validate(v *validator) {
	if len(e.Tiers) == 0 {
		v.add("escalation.tiers", "at least one tier is required: an alert must reach someone")
	}
	names := make(map[string]bool, len(e.Tiers))
	for i, t := range e.Tiers {
		p := at("escalation.tiers", i)
		v.text(p+".name", t.Name, MaxTierName, true)
		if t.Name != "" && names[t.Name] {
			v.add(p+".name", "duplicate tier name")
		}
		names[t.Name] = true
		if t.After <= 0 {
			v.add(p+".after", "must be more than zero")
		}
		if len(t.Channels) == 0 {
			v.add(p+".channels", "at least one channel is required")
		}
		for j, c := range t.Channels {
			c.validate(v, at(p+".channels", j))
		}
	}
	if e.Repeat < 0 {
		v.add("escalation.repeat", "must not be negative")
	}
	if e.AckTimeout < 0 {
		v.add("escalation.ack_timeout", "must not be negative")
	}
}

func (c Channel) validate(v *validator, p string) {
	notFor := func(field, kinds string) { v.add(p+"."+field, "not used by "+kinds) }
	switch c.Kind {
	case ChannelWebhook, ChannelPagerDuty:
		checkURL(v, p+".url", c.URL)
		switch {
		case c.SecretRef == "":
			v.add(p+".secret_ref", "required: the name X of the environment variable VIGIL_SECRET_X holding the key")
		case len(c.SecretRef) > MaxSecretRef:
			v.add(p+".secret_ref", fmt.Sprintf("must be at most %d characters", MaxSecretRef))
		case strings.IndexFunc(c.SecretRef, func(r rune) bool {
			return (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_'
		}) >= 0:
			v.add(p+".secret_ref", "may hold only A-Z, 0-9 and '_'")
		}
		if len(c.To) > 0 {
			notFor("to", "webhook and pagerduty channels")
		}
	case ChannelEmail:
		if len(c.To) == 0 {
			v.add(p+".to", "at least one address is required")
		}
		for k, addr := range c.To {
			if _, err := mail.ParseAddress(addr); err != nil || strings.ContainsAny(addr, "\r\n") {
				v.add(at(p+".to", k), "must be an e-mail address")
			}
		}
		if c.URL != "" {
			notFor("url", "email channels")
		}
		if c.SecretRef != "" {
			notFor("secret_ref", "email channels")
		}
	case ChannelBoard:
		if c.URL != "" {
			notFor("url", "board channels")
		}
		if c.SecretRef != "" {
			notFor("secret_ref", "board channels")
		}
		if len(c.To) > 0 {
			notFor("to", "board channels")
		}
	case "":
		v.add(p+".kind", "required")
	default:
		v.add(p+".kind", "must be one of webhook, pagerduty, email, board")
	}
}

func checkURL(v *validator, field, s string) {
	if s == "" {
		v.add(field, "required")
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(field, "must be an absolute http or https URL")
		return
	}
	// The protocol is stored, audited and shown to staff; a key belongs in
	// the environment (secret_ref), never in the document.
	if u.User != nil {
		v.add(field, "must not hold credentials: name them with secret_ref")
	}
}

// Validate checks a registry record on its own: ids, status, SpO2 scale and
// the plausibility of the baseline vitals.
func (r PatientRecord) Validate() error {
	v := &validator{}
	r.validate(v)
	return v.err()
}

// ValidateFor checks a record against its trial's configured protocol as
// well: the trial must be the protocol's and the site one of its sites.
func (r PatientRecord) ValidateFor(p Protocol) error {
	v := &validator{}
	r.validate(v)
	if r.TrialID != "" && r.TrialID != p.TrialID {
		v.add("trial_id", "must be the protocol's trial")
	}
	if r.SiteID != "" && !p.HasSite(r.SiteID) {
		v.add("site_id", "must be one of the trial's sites ("+strings.Join(p.Sites, ", ")+")")
	}
	return v.err()
}

func (r PatientRecord) validate(v *validator) {
	v.id("trial_id", r.TrialID)
	v.id("site_id", r.SiteID)
	v.id("patient_id", r.PatientID)
	switch r.Status {
	case Enrolled, Withdrawn:
	case "":
		v.add("status", "required: enrolled or withdrawn")
	default:
		v.add("status", "must be enrolled or withdrawn")
	}
	if r.SpO2Scale != 0 && r.SpO2Scale != 1 && r.SpO2Scale != 2 {
		v.add("spo2_scale", "must be 1, or 2 for confirmed hypercapnic respiratory failure")
	}
	if r.AgeBand != "" && r.AgeBandIndex() < 0 {
		v.add("age_band", "must be one of "+strings.Join(AgeBands(), ", "))
	}
	if r.Baseline != nil {
		// The baseline is held to a reading's plausibility limits; a stand-in
		// reading carries it through reading.Validate, whose vitals errors
		// are renamed.
		probe := reading.Reading{
			ReadingID: "00000000-0000-0000-0000-000000000000",
			PatientID: "p", TrialID: "t", SiteID: "s",
			MeasuredAt: time.Unix(0, 0).UTC(),
			Vitals:     *r.Baseline,
		}
		var ve *reading.ValidationError
		if err := probe.Validate(time.Unix(0, 0)); errors.As(err, &ve) {
			for _, fe := range ve.Errors {
				if rest, ok := strings.CutPrefix(fe.Field, "vitals"); ok {
					v.add("baseline"+rest, fe.Message)
				}
			}
		}
	}
}

// Validate checks the protocol and every patient against it, with the
// file's field names (patients[i].site, patients[i].id).
func (f File) Validate() error {
	v := &validator{}
	if err := f.Protocol.Validate(); err != nil {
		v.errs = append(v.errs, err.(*ValidationError).Errors...)
	}
	rename := map[string]string{"site_id": "site", "patient_id": "id"}
	seen := make(map[[2]string]bool, len(f.Patients))
	for i, r := range f.Patients {
		p := at("patients", i)
		if err := r.ValidateFor(f.Protocol); err != nil {
			for _, fe := range err.(*ValidationError).Errors {
				name, rest, _ := strings.Cut(fe.Field, ".")
				if n, ok := rename[name]; ok {
					name = n
				}
				field := p + "." + name
				if rest != "" {
					field += "." + rest
				}
				if name == "trial_id" {
					// Patients take the file's trial; a bad one is reported there.
					continue
				}
				v.add(field, fe.Message)
			}
		}
		k := [2]string{r.SiteID, r.PatientID}
		if seen[k] {
			v.add(p+".id", "duplicate patient")
		}
		seen[k] = true
	}
	return v.err()
}
