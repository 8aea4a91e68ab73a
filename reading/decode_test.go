package reading

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const validJSON = `{
  "reading_id": "6F1C2B1E-0A4B-4C5D-8E9F-0123456789AB",
  "patient_id": "P1001", "trial_id": "T008", "site_id": "S01",
  "measured_at": "2026-11-26T09:00:05.5+01:00",
  "vitals": {
    "respiratory_rate": 18,
    "spo2": 96,
    "spo2_scale": 1,
    "on_oxygen": false,
    "systolic_bp": 118, "diastolic_bp": 76,
    "heart_rate": 88,
    "consciousness": "alert",
    "temperature": 37.2
  },
  "symptoms": [{"term": "nausea", "grade": 2}, {"grade": 1, "term": "fatigue"}]
}`

func ptr[T any](v T) *T { return &v }

func TestDecodeValid(t *testing.T) {
	got, err := Decode([]byte(validJSON))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := Reading{
		ReadingID:  "6f1c2b1e-0a4b-4c5d-8e9f-0123456789ab",
		PatientID:  "P1001",
		TrialID:    "T008",
		SiteID:     "S01",
		MeasuredAt: time.Date(2026, 11, 26, 8, 0, 5, 500_000_000, time.UTC),
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
		Symptoms: []Symptom{{Term: "nausea", Grade: 2}, {Term: "fatigue", Grade: 1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode:\n got %+v\nwant %+v", got, want)
	}
	if got.MeasuredAt.Location() != time.UTC {
		t.Errorf("measured_at location = %v, want UTC", got.MeasuredAt.Location())
	}
}

func TestDecodeNullIsAbsent(t *testing.T) {
	r, err := Decode([]byte(`{"reading_id": null, "patient_id": null, "measured_at": null,
		"vitals": {"heart_rate": null, "spo2": 97, "spo2_scale": null, "on_oxygen": null,
		"consciousness": null}, "symptoms": [{"term": "cough", "grade": null}]}`))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := Reading{Vitals: Vitals{SpO2: ptr(97.0)}, Symptoms: []Symptom{{Term: "cough", Grade: gradeMissing}}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v, want %+v", r, want)
	}
	// A null or absent grade is refused as missing, never taken as 0 ("none").
	for _, body := range []string{`{"term": "cough", "grade": null}`, `{"term": "cough"}`} {
		r, err := Decode([]byte(`{"symptoms": [` + body + `]}`))
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		var ve *ValidationError
		if err := r.Validate(time.Now()); !errors.As(err, &ve) || !hasFieldError(ve, "symptoms[0].grade", "required") {
			t.Errorf("%s: Validate = %v, want symptoms[0].grade required", body, err)
		}
	}
	r, err = Decode([]byte(`{"vitals": null, "symptoms": null}`))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !reflect.DeepEqual(r, Reading{}) {
		t.Errorf("got %+v, want zero reading", r)
	}
}

// withField replaces or adds one top-level member of validJSON.
func withField(key, raw string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(validJSON), &m); err != nil {
		panic(err)
	}
	m[key] = json.RawMessage(raw)
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// withVital replaces validJSON's vitals with a single member.
func withVital(key, raw string) string {
	return withField("vitals", fmt.Sprintf(`{%q: %s}`, key, raw))
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		field string
		msg   string // a substring of the message
	}{
		{"empty body", ``, "", "empty body"},
		{"white space only", " \n\t", "", "empty body"},
		{"not JSON", `hello`, "", "invalid character"},
		{"array", `[]`, "", "must be a JSON object"},
		{"string", `"reading"`, "", "must be a JSON object"},
		{"null", `null`, "", "must be a JSON object"},
		{"number", `42`, "", "must be a JSON object"},
		{"truncated", validJSON[:40], "", "unexpected end"},
		{"truncated after vitals", `{"vitals": {"heart_rate": 80`, "", "unexpected end"},
		{"trailing comma", `{"patient_id": "P1",}`, "", "invalid character"},
		{"trailing object", validJSON + ` {}`, "", "after the JSON object"},
		{"trailing garbage", validJSON + `x`, "", "after the JSON object"},
		{"trailing bracket", validJSON + `]`, "", "after the JSON object"},
		{"two objects, no space", validJSON + validJSON, "", "after the JSON object"},

		{"unknown field", withField("notes", `"x"`), "notes", "unknown field"},
		{"key differs in case", withField("Patient_ID", `"P1"`), "Patient_ID", "unknown field"},
		{"unknown vital", withVital("pulse", `80`), "vitals.pulse", "unknown field"},
		{"vital key differs in case", withVital("Heart_Rate", `80`), "vitals.Heart_Rate", "unknown field"},
		{"unknown symptom field", withField("symptoms", `[{"term": "a", "grade": 1}, {"term": "b", "severity": 1}]`), "symptoms[1].severity", "unknown field"},
		{"duplicate field", `{"patient_id": "P1", "patient_id": "P2"}`, "patient_id", "duplicate field"},
		{"duplicate vital", withField("vitals", `{"heart_rate": 80, "heart_rate": 200}`), "vitals.heart_rate", "duplicate field"},
		{"duplicate symptom field", withField("symptoms", `[{"term": "a", "term": "b"}]`), "symptoms[0].term", "duplicate field"},

		{"patient_id number", withField("patient_id", `1001`), "patient_id", "must be a string, not a number"},
		{"trial_id object", withField("trial_id", `{}`), "trial_id", "must be a string, not an object"},
		{"site_id array", withField("site_id", `["S01"]`), "site_id", "must be a string, not an array"},
		{"reading_id bool", withField("reading_id", `true`), "reading_id", "must be a string, not a boolean"},
		{"measured_at number", withField("measured_at", `1764144005`), "measured_at", "must be a string"},
		{"vitals string", withField("vitals", `"none"`), "vitals", "must be an object, not a string"},
		{"vitals array", withField("vitals", `[]`), "vitals", "must be an object, not an array"},
		{"respiratory_rate string", withVital("respiratory_rate", `"18"`), "vitals.respiratory_rate", "must be a number, not a string"},
		{"spo2 bool", withVital("spo2", `true`), "vitals.spo2", "must be a number"},
		{"systolic object", withVital("systolic_bp", `{}`), "vitals.systolic_bp", "must be a number"},
		{"diastolic array", withVital("diastolic_bp", `[76]`), "vitals.diastolic_bp", "must be a number"},
		{"temperature string", withVital("temperature", `"37.2"`), "vitals.temperature", "must be a number"},
		{"number out of range", withVital("temperature", `1e400`), "vitals.temperature", "out of range"},
		{"negative number out of range", withVital("heart_rate", `-1e400`), "vitals.heart_rate", "out of range"},
		{"spo2_scale fraction", withVital("spo2_scale", `1.5`), "vitals.spo2_scale", "must be an integer"},
		{"spo2_scale exponent", withVital("spo2_scale", `1e0`), "vitals.spo2_scale", "must be an integer"},
		{"spo2_scale string", withVital("spo2_scale", `"2"`), "vitals.spo2_scale", "must be an integer, not a string"},
		{"spo2_scale huge", withVital("spo2_scale", `99999999999999999999`), "vitals.spo2_scale", "out of range"},
		{"on_oxygen string", withVital("on_oxygen", `"yes"`), "vitals.on_oxygen", "must be a boolean, not a string"},
		{"on_oxygen number", withVital("on_oxygen", `1`), "vitals.on_oxygen", "must be a boolean, not a number"},
		{"consciousness number", withVital("consciousness", `1`), "vitals.consciousness", "must be a string"},
		{"symptoms object", withField("symptoms", `{"term": "a"}`), "symptoms", "must be an array, not an object"},
		{"symptom not object", withField("symptoms", `[{"term": "a", "grade": 1}, "b"]`), "symptoms[1]", "must be an object, not a string"},
		{"symptom grade string", withField("symptoms", `[{"term": "a", "grade": 1}, {"term": "b", "grade": "2"}]`), "symptoms[1].grade", "must be an integer, not a string"},
		{"symptom grade fraction", withField("symptoms", `[{"term": "a", "grade": 2.5}]`), "symptoms[0].grade", "must be an integer"},
		{"symptom term number", withField("symptoms", `[{"term": 7, "grade": 1}]`), "symptoms[0].term", "must be a string"},

		{"uuid too short", withField("reading_id", `"6f1c2b1e-0a4b-4c5d-8e9f-0123456789a"`), "reading_id", "must be a UUID"},
		{"uuid too long", withField("reading_id", `"6f1c2b1e-0a4b-4c5d-8e9f-0123456789abc"`), "reading_id", "must be a UUID"},
		{"uuid without dashes", withField("reading_id", `"6f1c2b1e0a4b4c5d8e9f0123456789ab"`), "reading_id", "must be a UUID"},
		{"uuid in braces", withField("reading_id", `"{6f1c2b1e-0a4b-4c5d-8e9f-0123456789ab}"`), "reading_id", "must be a UUID"},
		{"uuid urn", withField("reading_id", `"urn:uuid:6f1c2b1e-0a4b-4c5d-8e9f-0123456789ab"`), "reading_id", "must be a UUID"},
		{"uuid non-hex", withField("reading_id", `"6f1c2b1e-0a4b-4c5d-8e9f-0123456789ag"`), "reading_id", "must be a UUID"},
		{"uuid dash misplaced", withField("reading_id", `"6f1c2b1e0-a4b-4c5d-8e9f-0123456789ab"`), "reading_id", "must be a UUID"},
		{"uuid padded", withField("reading_id", `" 6f1c2b1e-0a4b-4c5d-8e9f-0123456789a"`), "reading_id", "must be a UUID"},

		{"time without zone", withField("measured_at", `"2026-11-26T08:00:05"`), "measured_at", "RFC 3339"},
		{"date only", withField("measured_at", `"2026-11-26"`), "measured_at", "RFC 3339"},
		{"space for T", withField("measured_at", `"2026-11-26 08:00:05Z"`), "measured_at", "RFC 3339"},
		{"words", withField("measured_at", `"yesterday"`), "measured_at", "RFC 3339"},
		{"bad month", withField("measured_at", `"2026-13-26T08:00:05Z"`), "measured_at", "RFC 3339"},
		{"bad hour", withField("measured_at", `"2026-11-26T24:00:05Z"`), "measured_at", "RFC 3339"},
		{"leap second", withField("measured_at", `"2026-12-31T23:59:60Z"`), "measured_at", "RFC 3339"},
		{"zone without colon", withField("measured_at", `"2026-11-26T08:00:05+0100"`), "measured_at", "RFC 3339"},
		{"UTC year below 0", withField("measured_at", `"0000-01-01T00:30:00+01:00"`), "measured_at", "out of range"},
		{"UTC year above 9999", withField("measured_at", `"9999-12-31T23:30:00-01:00"`), "measured_at", "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error = %v (%T), want *DecodeError", err, err)
			}
			if de.Field != tt.field {
				t.Errorf("Field = %q, want %q (message %q)", de.Field, tt.field, de.Message)
			}
			if !strings.Contains(de.Message, tt.msg) {
				t.Errorf("Message = %q, want it to contain %q", de.Message, tt.msg)
			}
		})
	}
}

func TestDecodeErrorDoesNotEchoValues(t *testing.T) {
	_, err := Decode([]byte(withVital("heart_rate", `"secret-137"`)))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("error %v echoes the value", err)
	}
}

func TestDecodeAccepted(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(Reading) bool
	}{
		{"empty reading_id left to Validate", withField("reading_id", `""`), func(r Reading) bool { return r.ReadingID == "" }},
		{"empty measured_at left to Validate", withField("measured_at", `""`), func(r Reading) bool { return r.MeasuredAt.IsZero() }},
		{"lower-case t and z", withField("measured_at", `"2026-11-26t08:00:05z"`), func(r Reading) bool {
			return r.MeasuredAt.Equal(time.Date(2026, 11, 26, 8, 0, 5, 0, time.UTC))
		}},
		{"negative offset", withField("measured_at", `"2026-11-26T03:00:05-05:00"`), func(r Reading) bool {
			return r.MeasuredAt == time.Date(2026, 11, 26, 8, 0, 5, 0, time.UTC)
		}},
		{"nanoseconds", withField("measured_at", `"2026-11-26T08:00:05.123456789Z"`), func(r Reading) bool {
			return r.MeasuredAt.Nanosecond() == 123456789
		}},
		{"leading and trailing white space", "\n " + validJSON + " \n\t", func(r Reading) bool { return r.PatientID == "P1001" }},
		{"fractional vital kept for Validate", withVital("respiratory_rate", `18.5`), func(r Reading) bool {
			return *r.Vitals.RespiratoryRate == 18.5
		}},
		{"exponent vital", withVital("spo2", `9.6e1`), func(r Reading) bool { return *r.Vitals.SpO2 == 96 }},
		{"out-of-range spo2_scale left to Validate", withVital("spo2_scale", `7`), func(r Reading) bool { return *r.Vitals.SpO2Scale == 7 }},
		{"unknown consciousness left to Validate", withVital("consciousness", `"sleepy"`), func(r Reading) bool {
			return *r.Vitals.Consciousness == "sleepy"
		}},
		{"empty symptoms", withField("symptoms", `[]`), func(r Reading) bool { return len(r.Symptoms) == 0 }},
		{"escaped strings", withField("patient_id", `"P\u0031001"`), func(r Reading) bool { return r.PatientID == "P1001" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !tt.check(r) {
				t.Errorf("unexpected result %+v", r)
			}
		})
	}
}

func TestIsUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"6f1c2b1e-0a4b-4c5d-8e9f-0123456789ab":   true,
		"6F1C2B1E-0A4B-4C5D-8E9F-0123456789AB":   true,
		"00000000-0000-0000-0000-000000000000":   true,
		"6f1c2b1e-0a4b-4c5d-8e9f-0123456789a":    false,
		"6f1c2b1e-0a4b-4c5d-8e9f_0123456789ab":   false,
		"6f1c2b1e-0a4b-4c5d-8e9f-0123456789aé":   false,
		"":                                       false,
		"6f1c2b1e-0a4b-4c5d-8e9f-0123456789abcd": false,
	} {
		if got := IsUUID(s); got != want {
			t.Errorf("IsUUID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestDecodeBatch(t *testing.T) {
	items, err := DecodeBatch([]byte(`{"readings": [` + validJSON + `, 5, {"x": 1}]}`))
	if err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	if len(items) != 3 {
		t.Fatalf("got %d items, want 3", len(items))
	}
	// Each element decodes on its own: the bad ones do not sink the good one.
	if _, err := Decode(items[0]); err != nil {
		t.Errorf("item 0: %v", err)
	}
	for _, i := range []int{1, 2} {
		var de *DecodeError
		if _, err := Decode(items[i]); !errors.As(err, &de) {
			t.Errorf("item %d: err = %v, want *DecodeError", i, err)
		}
	}
	if string(items[1]) != "5" {
		t.Errorf("item 1 = %q, want the raw element", items[1])
	}
}

func TestDecodeBatchLimit(t *testing.T) {
	batch := func(n int) []byte {
		elems := make([]string, n)
		for i := range elems {
			elems[i] = `{}`
		}
		return []byte(`{"readings": [` + strings.Join(elems, ",") + `]}`)
	}
	for _, n := range []int{1, MaxBatch - 1, MaxBatch} {
		items, err := DecodeBatch(batch(n))
		if err != nil || len(items) != n {
			t.Errorf("%d readings: got %d items, err %v", n, len(items), err)
		}
	}
	for _, n := range []int{MaxBatch + 1, 2 * MaxBatch} {
		_, err := DecodeBatch(batch(n))
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Errors) != 1 || ve.Errors[0].Field != "readings" {
			t.Errorf("%d readings: err = %v, want *ValidationError on readings", n, err)
		}
	}
}

func TestDecodeBatchErrors(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		field      string
		validation bool // a *ValidationError rather than a *DecodeError
	}{
		{"empty body", ``, "", false},
		{"not JSON", `{readings}`, "", false},
		{"array", `[{}]`, "", false},
		{"unknown field", `{"readings": [{}], "extra": 1}`, "extra", false},
		{"key differs in case", `{"Readings": [{}]}`, "Readings", false},
		{"duplicate field", `{"readings": [{}], "readings": [{}]}`, "readings", false},
		{"readings object", `{"readings": {}}`, "readings", false},
		{"readings string", `{"readings": "[]"}`, "readings", false},
		{"truncated", `{"readings": [{}, {`, "", false},
		{"malformed element", `{"readings": [{}, {"a" 1}]}`, "", false},
		{"trailing data", `{"readings": [{}]} {}`, "", false},
		{"missing readings", `{}`, "readings", true},
		{"null readings", `{"readings": null}`, "readings", true},
		{"empty readings", `{"readings": []}`, "readings", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeBatch([]byte(tt.in))
			var (
				de *DecodeError
				ve *ValidationError
			)
			switch {
			case tt.validation && errors.As(err, &ve):
				if len(ve.Errors) != 1 || ve.Errors[0].Field != tt.field {
					t.Errorf("errors = %+v, want one on %q", ve.Errors, tt.field)
				}
			case !tt.validation && errors.As(err, &de):
				if de.Field != tt.field {
					t.Errorf("Field = %q, want %q", de.Field, tt.field)
				}
			default:
				t.Errorf("err = %v (%T), want validation=%v", err, err, tt.validation)
			}
		})
	}
}

func TestErrorStrings(t *testing.T) {
	if got := (&DecodeError{Field: "vitals.spo2", Message: "must be a number"}).Error(); got != "reading: vitals.spo2: must be a number" {
		t.Errorf("DecodeError.Error() = %q", got)
	}
	if got := (&DecodeError{Message: "empty body"}).Error(); got != "reading: empty body" {
		t.Errorf("DecodeError.Error() = %q", got)
	}
	ve := &ValidationError{Errors: []FieldError{{"vitals", "no vitals"}, {"site_id", "required"}}}
	if got := ve.Error(); got != "reading: invalid: vitals: no vitals; site_id: required" {
		t.Errorf("ValidationError.Error() = %q", got)
	}
}

func hasFieldError(ve *ValidationError, field, msg string) bool {
	for _, e := range ve.Errors {
		if e.Field == field && e.Message == msg {
			return true
		}
	}
	return false
}
