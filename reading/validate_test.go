package reading

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

func validReading() Reading {
	return Reading{
		ReadingID:  "6f1c2b1e-0a4b-4c5d-8e9f-0123456789ab",
		PatientID:  "P1001",
		TrialID:    "T008",
		SiteID:     "S01",
		MeasuredAt: now.Add(-time.Minute),
		Vitals: Vitals{
			RespiratoryRate: ptr(18.0),
			SpO2:            ptr(96.0),
			SpO2Scale:       ptr(1),
			OnOxygen:        ptr(false),
			SystolicBP:      ptr(118.0),
			DiastolicBP:     ptr(76.0),
			HeartRate:       ptr(88.0),
			Consciousness:   ptr(Alert),
			Temperature:     ptr(37.2),
		},
		Symptoms: []Symptom{{Term: "nausea", Grade: 2}},
	}
}

// fields returns the fields named by a Validate result, in order.
func fields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v (%T), want *ValidationError", err, err)
	}
	if len(ve.Errors) == 0 {
		t.Fatal("ValidationError with no errors")
	}
	var fs []string
	for _, fe := range ve.Errors {
		if fe.Message == "" {
			t.Errorf("field %s has an empty message", fe.Field)
		}
		fs = append(fs, fe.Field)
	}
	return fs
}

func TestValidateValid(t *testing.T) {
	if err := validReading().Validate(now); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// A nil *ValidationError in a non-nil interface would read as a failure.
	if err := validReading().Validate(now); err != nil {
		t.Fatalf("Validate returned a typed nil")
	}
}

type vitalCase struct {
	name  string
	set   func(*Vitals)
	field string // "" when valid
	msg   string
}

// rangeCases covers both sides of both edges of an integer vital, a fraction
// inside the range, and the non-finite values JSON cannot carry.
func rangeCases(field string, get func(*Vitals) **float64, lo, hi int) []vitalCase {
	at := func(f float64) func(*Vitals) { return func(v *Vitals) { *get(v) = ptr(f) } }
	vf := "vitals." + field
	between := fmt.Sprintf("must be between %d and %d", lo, hi)
	return []vitalCase{
		{fmt.Sprintf("%s %d", field, lo-1), at(float64(lo - 1)), vf, between},
		{fmt.Sprintf("%s %d", field, lo), at(float64(lo)), "", ""},
		{fmt.Sprintf("%s %d", field, hi), at(float64(hi)), "", ""},
		{fmt.Sprintf("%s %d", field, hi+1), at(float64(hi + 1)), vf, between},
		{field + " fraction", at(float64(lo) + 0.5), vf, "must be a whole number"},
		{field + " tiny fraction", at(float64(hi) - 1e-9), vf, "must be a whole number"},
		{field + " far below", at(-1e6), vf, between},
		{field + " zero", at(0), vf, between},
		{field + " NaN", at(math.NaN()), vf, "must be a finite number"},
		{field + " +Inf", at(math.Inf(1)), vf, "must be a finite number"},
		{field + " -Inf", at(math.Inf(-1)), vf, "must be a finite number"},
	}
}

func TestValidateVitals(t *testing.T) {
	var tests []vitalCase
	tests = append(tests, rangeCases("respiratory_rate", func(v *Vitals) **float64 { return &v.RespiratoryRate }, 1, 80)...)
	tests = append(tests, rangeCases("spo2", func(v *Vitals) **float64 { return &v.SpO2 }, 40, 100)...)
	// Diastolic is lowered for the systolic edges so that only the edge is tested.
	sys := rangeCases("systolic_bp", func(v *Vitals) **float64 { return &v.SystolicBP }, 40, 300)
	for i := range sys {
		set := sys[i].set
		sys[i].set = func(v *Vitals) { v.DiastolicBP = ptr(20.0); set(v) }
	}
	tests = append(tests, sys...)
	dia := rangeCases("diastolic_bp", func(v *Vitals) **float64 { return &v.DiastolicBP }, 20, 200)
	for i := range dia {
		set := dia[i].set
		dia[i].set = func(v *Vitals) { v.SystolicBP = ptr(300.0); set(v) }
	}
	tests = append(tests, dia...)
	tests = append(tests, rangeCases("heart_rate", func(v *Vitals) **float64 { return &v.HeartRate }, 20, 300)...)

	temp := func(c float64) func(*Vitals) { return func(v *Vitals) { v.Temperature = ptr(c) } }
	const tempMsg = "must be between 25.0 and 45.0 °C"
	tests = append(tests, []vitalCase{
		{"temperature 24.9", temp(24.9), "vitals.temperature", tempMsg},
		{"temperature 24.94 rounds to 24.9", temp(24.94), "vitals.temperature", tempMsg},
		{"temperature 24.95 rounds to 25.0", temp(24.95), "", ""},
		{"temperature 25.0", temp(25.0), "", ""},
		{"temperature 45.0", temp(45.0), "", ""},
		{"temperature 45.04 rounds to 45.0", temp(45.04), "", ""},
		{"temperature 45.05 rounds to 45.1", temp(45.05), "vitals.temperature", tempMsg},
		{"temperature 45.1", temp(45.1), "vitals.temperature", tempMsg},
		{"temperature in Fahrenheit", temp(98.6), "vitals.temperature", tempMsg},
		{"temperature 20", temp(20), "vitals.temperature", tempMsg},
		{"temperature many decimals", temp(37.123456789), "", ""},
		{"temperature huge", temp(1e300), "vitals.temperature", tempMsg},
		{"temperature negative", temp(-37.2), "vitals.temperature", tempMsg},
		{"temperature NaN", temp(math.NaN()), "vitals.temperature", "must be a finite number"},
		{"temperature +Inf", temp(math.Inf(1)), "vitals.temperature", "must be a finite number"},

		{"spo2_scale 0", func(v *Vitals) { v.SpO2Scale = ptr(0) }, "vitals.spo2_scale", "must be 1 or 2"},
		{"spo2_scale 1", func(v *Vitals) { v.SpO2Scale = ptr(1) }, "", ""},
		{"spo2_scale 2", func(v *Vitals) { v.SpO2Scale = ptr(2) }, "", ""},
		{"spo2_scale 3", func(v *Vitals) { v.SpO2Scale = ptr(3) }, "vitals.spo2_scale", "must be 1 or 2"},
		{"spo2_scale -1", func(v *Vitals) { v.SpO2Scale = ptr(-1) }, "vitals.spo2_scale", "must be 1 or 2"},
		{"spo2_scale absent", func(v *Vitals) { v.SpO2Scale = nil }, "", ""},

		{"diastolic below systolic", func(v *Vitals) { v.SystolicBP, v.DiastolicBP = ptr(120.0), ptr(119.0) }, "", ""},
		{"diastolic equals systolic", func(v *Vitals) { v.SystolicBP, v.DiastolicBP = ptr(120.0), ptr(120.0) }, "vitals.diastolic_bp", "must be below systolic_bp"},
		{"diastolic above systolic", func(v *Vitals) { v.SystolicBP, v.DiastolicBP = ptr(90.0), ptr(120.0) }, "vitals.diastolic_bp", "must be below systolic_bp"},
		{"diastolic without systolic", func(v *Vitals) { v.SystolicBP, v.DiastolicBP = nil, ptr(150.0) }, "", ""},
		{"systolic without diastolic", func(v *Vitals) { v.SystolicBP, v.DiastolicBP = ptr(41.0), nil }, "", ""},
		// An impossible systolic is reported once, not also as a faulty pair.
		{"systolic out of range hides the pair check", func(v *Vitals) { v.SystolicBP, v.DiastolicBP = ptr(30.0), ptr(76.0) }, "vitals.systolic_bp", "must be between 40 and 300"},

		{"consciousness sleepy", func(v *Vitals) { v.Consciousness = ptr("sleepy") }, "vitals.consciousness", "must be one of"},
		{"consciousness empty", func(v *Vitals) { v.Consciousness = ptr("") }, "vitals.consciousness", "must be one of"},
		{"consciousness wrong case", func(v *Vitals) { v.Consciousness = ptr("Alert") }, "vitals.consciousness", "must be one of"},
		{"consciousness ACVPU letter", func(v *Vitals) { v.Consciousness = ptr("A") }, "vitals.consciousness", "must be one of"},

		{"only on_oxygen", func(v *Vitals) { *v = Vitals{OnOxygen: ptr(true)} }, "", ""},
		{"only consciousness", func(v *Vitals) { *v = Vitals{Consciousness: ptr(Pain)} }, "", ""},
		{"only diastolic", func(v *Vitals) { *v = Vitals{DiastolicBP: ptr(70.0)} }, "", ""},
		{"only temperature", func(v *Vitals) { *v = Vitals{Temperature: ptr(36.5)} }, "", ""},
		{"no vitals", func(v *Vitals) { *v = Vitals{} }, "vitals", "no vitals"},
		{"only spo2_scale", func(v *Vitals) { *v = Vitals{SpO2Scale: ptr(2)} }, "vitals", "no vitals"},
	}...)
	for _, c := range []string{Alert, NewConfusion, Voice, Pain, Unresponsive} {
		tests = append(tests, vitalCase{"consciousness " + c, func(v *Vitals) { v.Consciousness = ptr(c) }, "", ""})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validReading()
			tt.set(&r.Vitals)
			err := r.Validate(now)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			want := []FieldError{{Field: tt.field, Message: ve.Errors[0].Message}}
			if !reflect.DeepEqual(ve.Errors, want) || !strings.Contains(ve.Errors[0].Message, tt.msg) {
				t.Errorf("errors = %+v, want only %s: %q", ve.Errors, tt.field, tt.msg)
			}
		})
	}
}

func TestValidateReading(t *testing.T) {
	long := strings.Repeat("x", 64)
	tests := []struct {
		name  string
		set   func(*Reading)
		field []string // nil when valid
	}{
		{"reading_id missing", func(r *Reading) { r.ReadingID = "" }, []string{"reading_id"}},
		{"reading_id not a UUID", func(r *Reading) { r.ReadingID = "abc" }, []string{"reading_id"}},
		{"reading_id upper case", func(r *Reading) { r.ReadingID = strings.ToUpper(r.ReadingID) }, nil},

		{"patient_id missing", func(r *Reading) { r.PatientID = "" }, []string{"patient_id"}},
		{"trial_id missing", func(r *Reading) { r.TrialID = "" }, []string{"trial_id"}},
		{"site_id missing", func(r *Reading) { r.SiteID = "" }, []string{"site_id"}},
		{"ids of one character", func(r *Reading) { r.PatientID, r.TrialID, r.SiteID = "P", "T", "S" }, nil},
		{"ids of 64 characters", func(r *Reading) { r.PatientID, r.TrialID, r.SiteID = long, long, long }, nil},
		{"ids of 65 characters", func(r *Reading) { r.PatientID, r.TrialID, r.SiteID = long+"x", long+"x", long+"x" }, []string{"patient_id", "trial_id", "site_id"}},
		{"ids with every allowed character", func(r *Reading) { r.PatientID = "AZaz09_-." }, nil},
		{"id with a space", func(r *Reading) { r.PatientID = "P 1001" }, []string{"patient_id"}},
		{"id with a slash", func(r *Reading) { r.SiteID = "T008/S01" }, []string{"site_id"}},
		{"id with a colon", func(r *Reading) { r.TrialID = "trial:T008" }, []string{"trial_id"}},
		{"id with non-ASCII", func(r *Reading) { r.PatientID = "Pé" }, []string{"patient_id"}},
		{"id with NUL", func(r *Reading) { r.PatientID = "P\x00" }, []string{"patient_id"}},

		{"measured_at missing", func(r *Reading) { r.MeasuredAt = time.Time{} }, []string{"measured_at"}},
		{"measured_at now", func(r *Reading) { r.MeasuredAt = now }, nil},
		{"measured_at at the skew limit", func(r *Reading) { r.MeasuredAt = now.Add(2 * time.Minute) }, nil},
		{"measured_at past the skew limit", func(r *Reading) { r.MeasuredAt = now.Add(2*time.Minute + time.Nanosecond) }, []string{"measured_at"}},
		{"measured_at an hour ahead", func(r *Reading) { r.MeasuredAt = now.Add(time.Hour) }, []string{"measured_at"}},
		{"measured_at a week ago", func(r *Reading) { r.MeasuredAt = now.AddDate(0, 0, -7) }, nil},
		{"measured_at in another zone", func(r *Reading) {
			r.MeasuredAt = now.Add(time.Minute).In(time.FixedZone("X", 5*3600))
		}, nil},

		{"no symptoms", func(r *Reading) { r.Symptoms = nil }, nil},
		{"50 symptoms", func(r *Reading) { r.Symptoms = make([]Symptom, 50); fill(r.Symptoms) }, nil},
		{"51 symptoms", func(r *Reading) { r.Symptoms = make([]Symptom, 51); fill(r.Symptoms) }, []string{"symptoms"}},
		{"term missing", func(r *Reading) { r.Symptoms = []Symptom{{Term: "", Grade: 1}} }, []string{"symptoms[0].term"}},
		{"term blank", func(r *Reading) { r.Symptoms = []Symptom{{Term: " \t", Grade: 1}} }, []string{"symptoms[0].term"}},
		{"term of 1 character", func(r *Reading) { r.Symptoms = []Symptom{{Term: "x", Grade: 1}} }, nil},
		{"term of 64 characters", func(r *Reading) { r.Symptoms = []Symptom{{Term: long, Grade: 1}} }, nil},
		{"term of 64 multi-byte characters", func(r *Reading) { r.Symptoms = []Symptom{{Term: strings.Repeat("é", 64), Grade: 1}} }, nil},
		{"term of 65 characters", func(r *Reading) { r.Symptoms = []Symptom{{Term: long + "x", Grade: 1}} }, []string{"symptoms[0].term"}},
		{"term with a newline", func(r *Reading) { r.Symptoms = []Symptom{{Term: "a\nb", Grade: 1}} }, []string{"symptoms[0].term"}},
		{"term with spaces", func(r *Reading) { r.Symptoms = []Symptom{{Term: "decreased appetite", Grade: 1}} }, nil},
		{"grade -1", func(r *Reading) { r.Symptoms = []Symptom{{Term: "a", Grade: -1}} }, []string{"symptoms[0].grade"}},
		{"grade 0", func(r *Reading) { r.Symptoms = []Symptom{{Term: "a", Grade: 0}} }, nil},
		{"grade 4", func(r *Reading) { r.Symptoms = []Symptom{{Term: "a", Grade: 4}} }, nil},
		{"grade 5", func(r *Reading) { r.Symptoms = []Symptom{{Term: "a", Grade: 5}} }, []string{"symptoms[0].grade"}},
		{"second symptom at fault", func(r *Reading) {
			r.Symptoms = []Symptom{{Term: "a", Grade: 1}, {Term: "", Grade: 9}}
		}, []string{"symptoms[1].term", "symptoms[1].grade"}},

		{"every field at fault", func(r *Reading) {
			*r = Reading{
				ReadingID: "nope",
				PatientID: "bad id",
				Vitals: Vitals{
					RespiratoryRate: ptr(0.0),
					SpO2:            ptr(101.0),
					SpO2Scale:       ptr(3),
					SystolicBP:      ptr(120.0),
					DiastolicBP:     ptr(130.0),
					HeartRate:       ptr(88.5),
					Consciousness:   ptr("sleepy"),
					Temperature:     ptr(20.0),
				},
				Symptoms: []Symptom{{Term: "", Grade: 5}},
			}
		}, []string{
			"reading_id", "patient_id", "trial_id", "site_id", "measured_at",
			"vitals.respiratory_rate", "vitals.spo2", "vitals.spo2_scale",
			"vitals.diastolic_bp", "vitals.heart_rate", "vitals.consciousness",
			"vitals.temperature", "symptoms[0].term", "symptoms[0].grade",
		}},
		{"no vitals with other faults", func(r *Reading) {
			r.Vitals = Vitals{}
			r.SiteID = ""
		}, []string{"site_id", "vitals"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validReading()
			tt.set(&r)
			if got := fields(t, r.Validate(now)); !reflect.DeepEqual(got, tt.field) {
				t.Errorf("fields = %q, want %q", got, tt.field)
			}
		})
	}
}

func fill(s []Symptom) {
	for i := range s {
		s[i] = Symptom{Term: fmt.Sprintf("term%d", i), Grade: i % 5}
	}
}

func TestTenthsHalfUp(t *testing.T) {
	tests := []struct {
		in   float64
		want int
	}{
		{38.05, 381},
		{36.04, 360},
		{35.05, 351},
		{35.04, 350},
		{35.0, 350},
		{35.1, 351},
		{36.0, 360},
		{36.05, 361},
		{36.1, 361},
		{38.0, 380},
		{38.04, 380},
		{38.1, 381},
		{39.0, 390},
		{39.05, 391},
		{39.1, 391},
		{37.2, 372},
		{36.95, 370},
		{36.949999, 369},
		{36.9500001, 370},
		{37, 370},
		{0, 0},
		{0.05, 1},
		{0.04, 0},
		{-0.04, 0},
		{-35.05, -351},
		{45.05, 451},
		{24.95, 250},
		{1e300, 1e9},
		{-1e300, -1e9},
		{math.Inf(1), 1e9},
		{math.Inf(-1), -1e9},
		{math.NaN(), 0},
		{5e-324, 0},
	}
	for _, tt := range tests {
		if got := TenthsHalfUp(tt.in); got != tt.want {
			t.Errorf("TenthsHalfUp(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestTenthsHalfUpExhaustive checks every temperature with two and three
// decimals across the plausible range against integer arithmetic, where
// floating-point error cannot hide.
func TestTenthsHalfUpExhaustive(t *testing.T) {
	for h := 0; h <= 5000; h++ { // hundredths, 0.00 to 50.00
		c := float64(h) / 100
		if got, want := TenthsHalfUp(c), (h+5)/10; got != want {
			t.Fatalf("TenthsHalfUp(%v) = %d, want %d", c, got, want)
		}
	}
	for m := 20000; m <= 46000; m++ { // thousandths, 20.000 to 46.000
		c := float64(m) / 1000
		if got, want := TenthsHalfUp(c), (m+50)/100; got != want {
			t.Fatalf("TenthsHalfUp(%v) = %d, want %d", c, got, want)
		}
	}
}

func TestContentHash(t *testing.T) {
	base, err := Decode([]byte(validJSON))
	if err != nil {
		t.Fatal(err)
	}
	h := ContentHash(base)
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Fatalf("ContentHash = %q, want 64 lower-case hex digits", h)
	}

	same := []string{
		// Key order, white space, number spelling, zone and letter case of the id.
		`{"symptoms":[{"grade":2,"term":"nausea"},{"term":"fatigue","grade":1}],
		  "vitals":{"temperature":37.20,"consciousness":"alert","heart_rate":88.0,
		  "diastolic_bp":76,"systolic_bp":1.18e2,"on_oxygen":false,"spo2_scale":1,"spo2":96,
		  "respiratory_rate":18},"measured_at":"2026-11-26T08:00:05.500Z",
		  "site_id":"S01","trial_id":"T008","patient_id":"P1001",
		  "reading_id":"6f1c2b1e-0a4b-4c5d-8e9f-0123456789ab"}`,
		strings.ReplaceAll(validJSON, "\n", " "),
		withField("measured_at", `"2026-11-26T03:00:05.5-05:00"`),
	}
	for i, s := range same {
		r, err := Decode([]byte(s))
		if err != nil {
			t.Fatalf("same[%d]: %v", i, err)
		}
		if got := ContentHash(r); got != h {
			t.Errorf("same[%d]: hash differs", i)
		}
	}

	noSymptoms := base
	noSymptoms.Symptoms = nil
	emptySymptoms := base
	emptySymptoms.Symptoms = []Symptom{}
	if ContentHash(noSymptoms) != ContentHash(emptySymptoms) {
		t.Error("nil and empty symptoms hash differently")
	}

	different := map[string]func(*Reading){
		"reading_id":     func(r *Reading) { r.ReadingID = "00000000-0000-0000-0000-000000000000" },
		"patient_id":     func(r *Reading) { r.PatientID = "P1002" },
		"trial_id":       func(r *Reading) { r.TrialID = "T009" },
		"site_id":        func(r *Reading) { r.SiteID = "S02" },
		"measured_at":    func(r *Reading) { r.MeasuredAt = r.MeasuredAt.Add(time.Nanosecond) },
		"temperature":    func(r *Reading) { r.Vitals.Temperature = ptr(37.21) },
		"no temperature": func(r *Reading) { r.Vitals.Temperature = nil },
		"on_oxygen":      func(r *Reading) { r.Vitals.OnOxygen = ptr(true) },
		"no on_oxygen":   func(r *Reading) { r.Vitals.OnOxygen = nil },
		"spo2_scale":     func(r *Reading) { r.Vitals.SpO2Scale = ptr(2) },
		"consciousness":  func(r *Reading) { r.Vitals.Consciousness = ptr(Voice) },
		"symptom grade":  func(r *Reading) { r.Symptoms = []Symptom{{"nausea", 3}, {"fatigue", 1}} },
		"symptom order":  func(r *Reading) { r.Symptoms = []Symptom{{"fatigue", 1}, {"nausea", 2}} },
		"no symptoms":    func(r *Reading) { r.Symptoms = nil },
	}
	for name, change := range different {
		r := base
		r.Symptoms = append([]Symptom(nil), base.Symptoms...)
		change(&r)
		if ContentHash(r) == h {
			t.Errorf("%s: changed reading hashes the same", name)
		}
	}

	upper := base
	upper.ReadingID = strings.ToUpper(base.ReadingID)
	if ContentHash(upper) != h {
		t.Error("reading_id case changes the hash")
	}
}

func TestContentHashUnencodable(t *testing.T) {
	a, b := validReading(), validReading()
	a.Vitals.Temperature = ptr(math.NaN())
	b.Vitals.Temperature = ptr(math.Inf(1))
	ha, hb := ContentHash(a), ContentHash(b)
	if len(ha) != 64 || ha == hb {
		t.Errorf("unencodable readings: hashes %q and %q", ha, hb)
	}
	if ha != ContentHash(a) {
		t.Error("hash of an unencodable reading is not stable")
	}
}
