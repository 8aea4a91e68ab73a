package trial

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/reading"
)

func ptr[T any](v T) *T { return &v }

func hours(h float64) Duration { return Duration(time.Duration(h * float64(time.Hour))) }

// validProtocol is a protocol that meets every rule; each case changes one
// thing.
func validProtocol() Protocol {
	return Protocol{
		TrialID:  "T008",
		Title:    "Phase II",
		Sites:    []string{"S01", "S02"},
		Schedule: Schedule{Every: hours(8), Grace: hours(1)},
		Thresholds: Thresholds{
			NEWS2Band: BandMedium,
			Vitals: []VitalLimit{
				{Vital: "systolic_bp", Op: OpGE, Value: 160, Grade: 3, Term: "hypertension"},
				{Vital: "temperature", Op: OpGE, Value: 39.0, Grade: 2},
			},
			SymptomGrade:     3,
			ModelProbability: 0.5,
		},
		Escalation: Escalation{
			Tiers: []Tier{
				{Name: "site", After: hours(0.25), Channels: []Channel{
					{Kind: ChannelBoard},
					{Kind: ChannelEmail, To: []string{"site@example.org", "Dr A <a@example.org>"}},
				}},
				{Name: "safety", After: hours(0.25), Channels: []Channel{
					{Kind: ChannelWebhook, URL: "https://hooks.example.org/v", SecretRef: "T008_HOOK"},
					{Kind: ChannelPagerDuty, URL: "https://events.pagerduty.com/v2/enqueue", SecretRef: "PD_1"},
				}},
			},
			Repeat: hours(0.25),
		},
		RequireAuthWithin: hours(12),
	}
}

// fieldErrors returns err's field errors as "field: message" strings.
func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	var out []string
	for _, fe := range ve.Errors {
		out = append(out, fe.Field+": "+fe.Message)
	}
	return out
}

// hasError reports whether errs holds an error of field whose message
// contains msg.
func hasError(errs []string, field, msg string) bool {
	return slices.ContainsFunc(errs, func(e string) bool {
		return strings.HasPrefix(e, field+": ") && strings.Contains(e[len(field)+2:], msg)
	})
}

func TestProtocolValidateValid(t *testing.T) {
	cases := []struct {
		name   string
		change func(p *Protocol)
	}{
		{"as is", func(p *Protocol) {}},
		{"no title", func(p *Protocol) { p.Title = "" }},
		{"id characters", func(p *Protocol) { p.TrialID = "a-Z_0.9"; p.Sites = []string{strings.Repeat("s", 64)} }},
		{"every at the 7 day limit", func(p *Protocol) { p.Schedule.Every = hours(168) }},
		{"no grace", func(p *Protocol) { p.Schedule.Grace = 0 }},
		{"default band", func(p *Protocol) { p.Thresholds.NEWS2Band = "" }},
		{"band low_medium", func(p *Protocol) { p.Thresholds.NEWS2Band = BandLowMedium }},
		{"band high", func(p *Protocol) { p.Thresholds.NEWS2Band = BandHigh }},
		{"no vital limits", func(p *Protocol) { p.Thresholds.Vitals = nil }},
		{"every vital and op", func(p *Protocol) {
			p.Thresholds.Vitals = []VitalLimit{
				{Vital: "respiratory_rate", Op: OpGT, Value: 24, Grade: 1},
				{Vital: "spo2", Op: OpLT, Value: 90, Grade: 3},
				{Vital: "systolic_bp", Op: OpLE, Value: 80, Grade: 3},
				{Vital: "diastolic_bp", Op: OpGE, Value: 100, Grade: 3},
				{Vital: "heart_rate", Op: OpGE, Value: 131, Grade: 4},
				{Vital: "temperature", Op: OpGT, Value: 40.0, Grade: 3},
			}
		}},
		{"limit at the plausible edge", func(p *Protocol) {
			p.Thresholds.Vitals = []VitalLimit{{Vital: "spo2", Op: OpLE, Value: 100, Grade: 1},
				{Vital: "temperature", Op: OpLE, Value: 25, Grade: 4}}
		}},
		{"symptom grade 0 (default)", func(p *Protocol) { p.Thresholds.SymptomGrade = 0 }},
		{"symptom grade 4", func(p *Protocol) { p.Thresholds.SymptomGrade = 4 }},
		{"model probability 0 (default)", func(p *Protocol) { p.Thresholds.ModelProbability = 0 }},
		{"model probability 1", func(p *Protocol) { p.Thresholds.ModelProbability = 1 }},
		{"one tier, board only", func(p *Protocol) {
			p.Escalation.Tiers = []Tier{{Name: "site", After: hours(0.25), Channels: []Channel{{Kind: ChannelBoard}}}}
		}},
		{"http webhook", func(p *Protocol) { p.Escalation.Tiers[1].Channels[0].URL = "http://10.0.0.1:8080/hook?x=1" }},
		{"no repeat", func(p *Protocol) { p.Escalation.Repeat = 0 }},
		{"no auth window", func(p *Protocol) { p.RequireAuthWithin = 0 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validProtocol()
			tc.change(&p)
			if err := p.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestProtocolValidateInvalid(t *testing.T) {
	cases := []struct {
		name   string
		change func(p *Protocol)
		field  string
		msg    string
	}{
		{"no trial id", func(p *Protocol) { p.TrialID = "" }, "trial_id", "required"},
		{"trial id characters", func(p *Protocol) { p.TrialID = "T 008" }, "trial_id", "only letters"},
		{"trial id slash", func(p *Protocol) { p.TrialID = "T/8" }, "trial_id", "only letters"},
		{"trial id too long", func(p *Protocol) { p.TrialID = strings.Repeat("t", 65) }, "trial_id", "at most 64"},
		{"title too long", func(p *Protocol) { p.Title = strings.Repeat("x", 201) }, "title", "at most 200"},
		{"title control character", func(p *Protocol) { p.Title = "a\nb" }, "title", "control"},
		{"no sites", func(p *Protocol) { p.Sites = nil }, "sites", "at least one site"},
		{"bad site", func(p *Protocol) { p.Sites = []string{"S01", "S:2"} }, "sites[1]", "only letters"},
		{"empty site", func(p *Protocol) { p.Sites = []string{""} }, "sites[0]", "required"},
		{"duplicate site", func(p *Protocol) { p.Sites = []string{"S01", "S02", "S01"} }, "sites[2]", "duplicate"},
		{"no schedule", func(p *Protocol) { p.Schedule.Every = 0 }, "schedule.every", "required"},
		{"negative every", func(p *Protocol) { p.Schedule.Every = -1 }, "schedule.every", "negative"},
		{"every over 7 days", func(p *Protocol) { p.Schedule.Every = hours(168) + 1 }, "schedule.every", "at most 168h"},
		{"negative grace", func(p *Protocol) { p.Schedule.Grace = -1 }, "schedule.grace", "negative"},
		{"band low", func(p *Protocol) { p.Thresholds.NEWS2Band = "low" }, "thresholds.news2_band", "one of"},
		{"band unknown", func(p *Protocol) { p.Thresholds.NEWS2Band = "HIGH" }, "thresholds.news2_band", "one of"},
		{"no vital", func(p *Protocol) { p.Thresholds.Vitals[1].Vital = "" }, "thresholds.vitals[1].vital", "required"},
		{"unknown vital", func(p *Protocol) { p.Thresholds.Vitals[1].Vital = "pulse" }, "thresholds.vitals[1].vital", "one of respiratory_rate"},
		{"non-numeric vital", func(p *Protocol) { p.Thresholds.Vitals[0].Vital = "consciousness" }, "thresholds.vitals[0].vital", "one of"},
		{"spo2_scale is no vital", func(p *Protocol) { p.Thresholds.Vitals[0].Vital = "spo2_scale" }, "thresholds.vitals[0].vital", "one of"},
		{"no op", func(p *Protocol) { p.Thresholds.Vitals[1].Op = "" }, "thresholds.vitals[1].op", "required"},
		{"bad op", func(p *Protocol) { p.Thresholds.Vitals[1].Op = "=>" }, "thresholds.vitals[1].op", "one of >=, >, <=, <"},
		{"op ==", func(p *Protocol) { p.Thresholds.Vitals[1].Op = "==" }, "thresholds.vitals[1].op", "one of"},
		{"value NaN", func(p *Protocol) { p.Thresholds.Vitals[0].Value = math.NaN() }, "thresholds.vitals[0].value", "finite"},
		{"value never fires", func(p *Protocol) { p.Thresholds.Vitals[1].Value = 390 }, "thresholds.vitals[1].value", "between 25 and 45"},
		{"value below range", func(p *Protocol) { p.Thresholds.Vitals[0].Value = 30 }, "thresholds.vitals[0].value", "between 40 and 300"},
		{"grade 0", func(p *Protocol) { p.Thresholds.Vitals[0].Grade = 0 }, "thresholds.vitals[0].grade", "1 to 4"},
		{"grade 5", func(p *Protocol) { p.Thresholds.Vitals[0].Grade = 5 }, "thresholds.vitals[0].grade", "1 to 4"},
		{"term too long", func(p *Protocol) { p.Thresholds.Vitals[0].Term = strings.Repeat("x", 65) }, "thresholds.vitals[0].term", "at most 64"},
		{"symptom grade -1", func(p *Protocol) { p.Thresholds.SymptomGrade = -1 }, "thresholds.symptom_grade", "0 to 4"},
		{"symptom grade 5", func(p *Protocol) { p.Thresholds.SymptomGrade = 5 }, "thresholds.symptom_grade", "0 to 4"},
		{"model probability negative", func(p *Protocol) { p.Thresholds.ModelProbability = -0.1 }, "thresholds.model_probability", "between 0 and 1"},
		{"model probability over 1", func(p *Protocol) { p.Thresholds.ModelProbability = 1.01 }, "thresholds.model_probability", "between 0 and 1"},
		{"model probability NaN", func(p *Protocol) { p.Thresholds.ModelProbability = math.NaN() }, "thresholds.model_probability", "between 0 and 1"},
		{"no tiers", func(p *Protocol) { p.Escalation.Tiers = nil }, "escalation.tiers", "at least one tier"},
		{"tier without name", func(p *Protocol) { p.Escalation.Tiers[1].Name = " " }, "escalation.tiers[1].name", "required"},
		{"duplicate tier name", func(p *Protocol) { p.Escalation.Tiers[1].Name = "site" }, "escalation.tiers[1].name", "duplicate"},
		{"tier name too long", func(p *Protocol) { p.Escalation.Tiers[0].Name = strings.Repeat("n", 65) }, "escalation.tiers[0].name", "at most 64"},
		{"after zero", func(p *Protocol) { p.Escalation.Tiers[0].After = 0 }, "escalation.tiers[0].after", "more than zero"},
		{"after negative", func(p *Protocol) { p.Escalation.Tiers[1].After = -1 }, "escalation.tiers[1].after", "more than zero"},
		{"tier without channels", func(p *Protocol) { p.Escalation.Tiers[1].Channels = nil }, "escalation.tiers[1].channels", "at least one channel"},
		{"channel without kind", func(p *Protocol) { p.Escalation.Tiers[0].Channels[0].Kind = "" }, "escalation.tiers[0].channels[0].kind", "required"},
		{"unknown kind", func(p *Protocol) { p.Escalation.Tiers[0].Channels[0].Kind = "sms" }, "escalation.tiers[0].channels[0].kind", "one of webhook"},
		{"webhook without url", func(p *Protocol) { p.Escalation.Tiers[1].Channels[0].URL = "" }, "escalation.tiers[1].channels[0].url", "required"},
		{"webhook relative url", func(p *Protocol) { p.Escalation.Tiers[1].Channels[0].URL = "/hook" }, "escalation.tiers[1].channels[0].url", "absolute http"},
		{"webhook ftp url", func(p *Protocol) { p.Escalation.Tiers[1].Channels[0].URL = "ftp://x.org/h" }, "escalation.tiers[1].channels[0].url", "absolute http"},
		{"webhook url without host", func(p *Protocol) { p.Escalation.Tiers[1].Channels[0].URL = "https:///h" }, "escalation.tiers[1].channels[0].url", "absolute http"},
		{"webhook url credentials", func(p *Protocol) { p.Escalation.Tiers[1].Channels[0].URL = "https://u:pw@x.org/h" }, "escalation.tiers[1].channels[0].url", "credentials"},
		{"webhook without secret", func(p *Protocol) { p.Escalation.Tiers[1].Channels[0].SecretRef = "" }, "escalation.tiers[1].channels[0].secret_ref", "required"},
		{"secret lower case", func(p *Protocol) { p.Escalation.Tiers[1].Channels[0].SecretRef = "hook" }, "escalation.tiers[1].channels[0].secret_ref", "A-Z, 0-9"},
		{"secret with dash", func(p *Protocol) { p.Escalation.Tiers[1].Channels[0].SecretRef = "T-1" }, "escalation.tiers[1].channels[0].secret_ref", "A-Z, 0-9"},
		{"secret too long", func(p *Protocol) { p.Escalation.Tiers[1].Channels[0].SecretRef = strings.Repeat("A", 65) }, "escalation.tiers[1].channels[0].secret_ref", "at most 64"},
		{"webhook with to", func(p *Protocol) { p.Escalation.Tiers[1].Channels[0].To = []string{"a@b.org"} }, "escalation.tiers[1].channels[0].to", "not used"},
		{"pagerduty without url", func(p *Protocol) { p.Escalation.Tiers[1].Channels[1].URL = "" }, "escalation.tiers[1].channels[1].url", "required"},
		{"pagerduty without secret", func(p *Protocol) { p.Escalation.Tiers[1].Channels[1].SecretRef = "" }, "escalation.tiers[1].channels[1].secret_ref", "required"},
		{"email without to", func(p *Protocol) { p.Escalation.Tiers[0].Channels[1].To = nil }, "escalation.tiers[0].channels[1].to", "at least one address"},
		{"email bad address", func(p *Protocol) { p.Escalation.Tiers[0].Channels[1].To[1] = "not an address" }, "escalation.tiers[0].channels[1].to[1]", "e-mail address"},
		{"email header injection", func(p *Protocol) { p.Escalation.Tiers[0].Channels[1].To[0] = "a@b.org\r\nBcc: x@y.org" }, "escalation.tiers[0].channels[1].to[0]", "e-mail address"},
		{"email with url", func(p *Protocol) { p.Escalation.Tiers[0].Channels[1].URL = "https://x.org" }, "escalation.tiers[0].channels[1].url", "not used"},
		{"email with secret", func(p *Protocol) { p.Escalation.Tiers[0].Channels[1].SecretRef = "X" }, "escalation.tiers[0].channels[1].secret_ref", "not used"},
		{"board with url", func(p *Protocol) { p.Escalation.Tiers[0].Channels[0].URL = "https://x.org" }, "escalation.tiers[0].channels[0].url", "not used"},
		{"board with secret", func(p *Protocol) { p.Escalation.Tiers[0].Channels[0].SecretRef = "X" }, "escalation.tiers[0].channels[0].secret_ref", "not used"},
		{"board with to", func(p *Protocol) { p.Escalation.Tiers[0].Channels[0].To = []string{"a@b.org"} }, "escalation.tiers[0].channels[0].to", "not used"},
		{"negative repeat", func(p *Protocol) { p.Escalation.Repeat = -1 }, "escalation.repeat", "negative"},
		{"negative auth window", func(p *Protocol) { p.RequireAuthWithin = -1 }, "require_auth_within", "negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validProtocol()
			tc.change(&p)
			errs := fieldErrors(t, p.Validate())
			if !hasError(errs, tc.field, tc.msg) {
				t.Fatalf("errors %q lack %s: …%s…", errs, tc.field, tc.msg)
			}
			if len(errs) != 1 {
				t.Errorf("want exactly one error, got %q", errs)
			}
		})
	}
}

func TestProtocolValidateListsEveryProblem(t *testing.T) {
	p := Protocol{Thresholds: Thresholds{Vitals: []VitalLimit{{Vital: "x", Op: "=", Grade: 9}}},
		Escalation: Escalation{Tiers: []Tier{{Channels: []Channel{{Kind: ChannelWebhook}}}}}}
	errs := fieldErrors(t, p.Validate())
	for _, want := range []string{"trial_id", "sites", "schedule.every", "thresholds.vitals[0].vital",
		"thresholds.vitals[0].op", "thresholds.vitals[0].grade", "escalation.tiers[0].name",
		"escalation.tiers[0].after", "escalation.tiers[0].channels[0].url", "escalation.tiers[0].channels[0].secret_ref"} {
		if !hasError(errs, want, "") {
			t.Errorf("no error for %s in %q", want, errs)
		}
	}
}

func validRecord() PatientRecord {
	return PatientRecord{TrialID: "T008", SiteID: "S01", PatientID: "P1001", Status: Enrolled, SpO2Scale: 2,
		Baseline: &reading.Vitals{HeartRate: ptr(72.0), Temperature: ptr(36.8)}}
}

func TestPatientValidate(t *testing.T) {
	cases := []struct {
		name       string
		change     func(r *PatientRecord)
		field, msg string // empty: valid
	}{
		{"as is", func(r *PatientRecord) {}, "", ""},
		{"withdrawn", func(r *PatientRecord) { r.Status = Withdrawn }, "", ""},
		{"scale unset", func(r *PatientRecord) { r.SpO2Scale = 0 }, "", ""},
		{"scale 1", func(r *PatientRecord) { r.SpO2Scale = 1 }, "", ""},
		{"no baseline", func(r *PatientRecord) { r.Baseline = nil }, "", ""},
		{"no trial", func(r *PatientRecord) { r.TrialID = "" }, "trial_id", "required"},
		{"bad site", func(r *PatientRecord) { r.SiteID = "S 1" }, "site_id", "only letters"},
		{"no patient", func(r *PatientRecord) { r.PatientID = "" }, "patient_id", "required"},
		{"long patient", func(r *PatientRecord) { r.PatientID = strings.Repeat("p", 65) }, "patient_id", "at most 64"},
		{"no status", func(r *PatientRecord) { r.Status = "" }, "status", "required"},
		{"bad status", func(r *PatientRecord) { r.Status = "active" }, "status", "enrolled or withdrawn"},
		{"scale 3", func(r *PatientRecord) { r.SpO2Scale = 3 }, "spo2_scale", "must be 1, or 2"},
		{"scale -1", func(r *PatientRecord) { r.SpO2Scale = -1 }, "spo2_scale", "must be 1, or 2"},
		{"age band 80+", func(r *PatientRecord) { r.AgeBand = "80+" }, "", ""},
		{"age band as an age", func(r *PatientRecord) { r.AgeBand = "67" }, "age_band", "one of <40, 40-64, 65-79, 80+"},
		{"implausible baseline", func(r *PatientRecord) { r.Baseline.HeartRate = ptr(400.0) }, "baseline.heart_rate", "between 20 and 300"},
		{"fractional baseline", func(r *PatientRecord) { r.Baseline.HeartRate = ptr(72.5) }, "baseline.heart_rate", "whole number"},
		{"empty baseline", func(r *PatientRecord) { r.Baseline = &reading.Vitals{} }, "baseline", "no vitals"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := validRecord()
			tc.change(&r)
			errs := fieldErrors(t, r.Validate())
			if tc.field == "" {
				if errs != nil {
					t.Fatalf("Validate: %q", errs)
				}
				return
			}
			if !hasError(errs, tc.field, tc.msg) || len(errs) != 1 {
				t.Fatalf("errors %q, want only %s: …%s…", errs, tc.field, tc.msg)
			}
		})
	}
}

func TestPatientValidateFor(t *testing.T) {
	p := validProtocol()
	r := validRecord()
	if err := r.ValidateFor(p); err != nil {
		t.Fatalf("ValidateFor: %v", err)
	}
	r.SiteID = "S09"
	if errs := fieldErrors(t, r.ValidateFor(p)); !hasError(errs, "site_id", "one of the trial's sites (S01, S02)") {
		t.Errorf("site outside the protocol: %q", errs)
	}
	if err := r.Validate(); err != nil {
		t.Errorf("Validate without a protocol: %v", err)
	}
	r = validRecord()
	r.TrialID = "T009"
	if errs := fieldErrors(t, r.ValidateFor(p)); !hasError(errs, "trial_id", "protocol's trial") {
		t.Errorf("other trial: %q", errs)
	}
}

func TestFileValidate(t *testing.T) {
	f := File{Protocol: validProtocol(), Patients: []PatientRecord{validRecord(), validRecord()}}
	f.Patients[1].PatientID = "P1002"
	if err := f.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	f.Patients[1].SiteID = "S07"
	f.Patients[1].Status = ""
	f.Patients = append(f.Patients, validRecord())
	f.Sites = append(f.Sites, "bad site")
	errs := fieldErrors(t, f.Validate())
	for _, want := range [][2]string{
		{"sites[2]", "only letters"},
		{"patients[1].site", "one of the trial's sites"},
		{"patients[1].status", "required"},
		{"patients[2].id", "duplicate patient"},
	} {
		if !hasError(errs, want[0], want[1]) {
			t.Errorf("errors %q lack %s", errs, want[0])
		}
	}
	if len(errs) != 4 {
		t.Errorf("errors %q, want 4", errs)
	}
}

func TestDefaults(t *testing.T) {
	var th Thresholds
	if th.Band() != "medium" || th.SymptomThreshold() != 3 || th.ModelThreshold() != 0.5 {
		t.Errorf("defaults: %s %d %v", th.Band(), th.SymptomThreshold(), th.ModelThreshold())
	}
	th = Thresholds{NEWS2Band: BandHigh, SymptomGrade: 2, ModelProbability: 0.7}
	if th.Band() != BandHigh || th.SymptomThreshold() != 2 || th.ModelThreshold() != 0.7 {
		t.Errorf("set: %s %d %v", th.Band(), th.SymptomThreshold(), th.ModelThreshold())
	}

	d := DefaultProtocol("T1")
	if d.TrialID != "T1" || d.Schedule.Enabled() || len(d.Sites) != 0 {
		t.Errorf("default protocol: %+v", d)
	}
	if len(d.Escalation.Tiers) != 1 || d.Escalation.Tiers[0].Name != "site" ||
		d.Escalation.Tiers[0].After.Std() != 15*time.Minute || d.Escalation.Repeat.Std() != 15*time.Minute ||
		len(d.Escalation.Tiers[0].Channels) != 1 || d.Escalation.Tiers[0].Channels[0].Kind != ChannelBoard {
		t.Errorf("default escalation: %+v", d.Escalation)
	}
	// Apart from the sites and schedule nobody configured, the default
	// meets the rules a configured protocol must.
	d.Sites, d.Schedule.Every = []string{"S1"}, hours(8)
	if err := d.Validate(); err != nil {
		t.Errorf("default protocol with sites and schedule: %v", err)
	}
	// Each call has its own slices.
	d.Escalation.Tiers[0].Name = "changed"
	if DefaultProtocol("T1").Escalation.Tiers[0].Name != "site" {
		t.Error("DefaultProtocol shares its slices")
	}

	s := Schedule{Every: hours(8), Grace: hours(1)}
	if !s.Enabled() || s.Overdue() != 9*time.Hour {
		t.Errorf("schedule: %v %v", s.Enabled(), s.Overdue())
	}
}
