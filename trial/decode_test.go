package trial

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const protocolYAML = `
trial_id: T008
title: Phase II
sites: [S01, S02]
schedule: {every: 8h, grace: 1h}
thresholds:
  news2_band: medium
  vitals:
    - {vital: systolic_bp, op: ">=", value: 160, grade: 3, term: hypertension}
    - {vital: temperature, op: ">=", value: 39.0, grade: 2}
  symptom_grade: 3
  model_probability: 0.5
escalation:
  tiers:
    - name: site
      after: 15m
      channels:
        - kind: board
        - kind: email
          to: [site@example.org, "Dr A <a@example.org>"]
    - name: safety
      after: 15m
      channels:
        - {kind: webhook, url: "https://hooks.example.org/v", secret_ref: T008_HOOK}
        - {kind: pagerduty, url: "https://events.pagerduty.com/v2/enqueue", secret_ref: PD_1}
  repeat: 15m
require_auth_within: 12h
`

func decodeErrors(t *testing.T, err error) []string {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
	}
	var out []string
	for _, fe := range de.Errors {
		out = append(out, fe.Field+": "+fe.Message)
	}
	return out
}

func TestDecodeProtocolYAMLAndJSON(t *testing.T) {
	want := validProtocol()
	fromYAML, err := DecodeProtocol([]byte(protocolYAML))
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	if !reflect.DeepEqual(fromYAML, want) {
		t.Fatalf("YAML:\n got %+v\nwant %+v", fromYAML, want)
	}
	js, err := json.MarshalIndent(want, "", "\t") // tabs: JSON, not YAML, indentation
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := DecodeProtocol(js)
	if err != nil {
		t.Fatalf("JSON: %v\n%s", err, js)
	}
	if !reflect.DeepEqual(fromJSON, want) {
		t.Fatalf("JSON:\n got %+v\nwant %+v", fromJSON, want)
	}
}

func TestDecodeProtocolIgnoresStoreFields(t *testing.T) {
	p, err := DecodeProtocol([]byte(`{"trial_id": "T1", "version": 7, "updated_at": "2026-11-26T08:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 0 || !p.UpdatedAt.IsZero() || p.TrialID != "T1" {
		t.Errorf("got %+v", p)
	}
}

func TestDecodeProtocolErrors(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string // "field: message" prefixes
	}{
		{"empty", "", []string{": the document is empty"}},
		{"blank", "  \n# just a comment\n", []string{": the document is empty"}},
		{"null", "null", []string{": the document is empty"}},
		{"not an object", "[1, 2]", []string{": must be an object"}},
		{"scalar", "not json", []string{": must be an object"}},
		{"bad JSON", `{"trial_id": `, []string{": not valid JSON"}},
		{"trailing JSON", `{"trial_id": "T1"} {}`, []string{": not valid JSON"}},
		{"bad YAML", "trial_id: [T1\n", []string{": not valid YAML"}},
		{"two documents", "trial_id: T1\n---\ntrial_id: T2\n", []string{": the file holds more than one document"}},
		{"unknown field", `{"trial_id": "T1", "sitez": []}`, []string{"sitez: unknown field"}},
		{"field case matters", `{"Trial_ID": "T1"}`, []string{"Trial_ID: unknown field"}},
		{"unknown nested fields listed", "escalation:\n  tiers:\n    - name: a\n      chanels: []\n      after: 5m\n      channels:\n        - {kind: board, urll: x}\n",
			[]string{"escalation.tiers[0].chanels: unknown field", "escalation.tiers[0].channels[0].urll: unknown field"}},
		{"unknown in vitals", `{"thresholds": {"vitals": [{}, {"vital": "spo2", "level": 3}]}}`,
			[]string{"thresholds.vitals[1].level: unknown field"}},
		{"reason is no protocol field", `{"trial_id": "T1", "reason": "x"}`, []string{"reason: unknown field"}},
		{"duplicate JSON key", `{"trial_id": "T1", "trial_id": "T2"}`, []string{"trial_id: duplicate field"}},
		{"duplicate YAML key", "trial_id: T1\nsites: [a]\ntrial_id: T2\n", []string{"trial_id: duplicate field"}},
		{"JSON number for string", `{"trial_id": 8}`, []string{"trial_id: must be a string"}},
		{"JSON string for number", `{"thresholds": {"symptom_grade": "3"}}`, []string{"thresholds.symptom_grade: must be a whole number"}},
		{"fractional grade", `{"thresholds": {"vitals": [{"grade": 2.5}]}}`, []string{"thresholds.vitals[0].grade: must be a whole number"}},
		{"string for float", `{"thresholds": {"model_probability": "high"}}`, []string{"thresholds.model_probability: must be a number"}},
		{"infinite float", "thresholds: {model_probability: .inf}", []string{"thresholds.model_probability: must be a finite number"}},
		{"object for list", `{"sites": {"S01": true}}`, []string{"sites: must be a list"}},
		{"list for object", `{"schedule": []}`, []string{"schedule: must be an object"}},
		{"JSON number duration", `{"schedule": {"every": 3600}}`, []string{"schedule.every: must be a duration"}},
		{"YAML number duration", "schedule: {every: 3600}", []string{"schedule.every: must be a duration"}},
		{"days", "schedule: {every: 7d}", []string{"schedule.every: must be a duration such as \"8h\", \"90m\" or \"1h30m\" (there is no day unit"}},
		{"negative duration", `{"escalation": {"repeat": "-5m"}}`, []string{"escalation.repeat: must not be negative"}},
		{"bad updated_at", `{"updated_at": "yesterday"}`, []string{"updated_at: must be an RFC 3339 time"}},
		{"every problem listed", `{"trial_id": 1, "x": 2, "schedule": {"every": "soon"}}`,
			[]string{"trial_id: must be a string", "x: unknown field", "schedule.every: must be a duration"}},
		{"too large", "title: " + strings.Repeat("x", MaxDocument), []string{": the document is larger than"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeProtocol([]byte(tc.doc))
			if err == nil {
				t.Fatal("no error")
			}
			got := decodeErrors(t, err)
			if len(got) != len(tc.want) {
				t.Fatalf("errors %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("error %d = %q, want prefix %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestDecodeYAMLScalarsAsWritten(t *testing.T) {
	// In YAML an unquoted 0012 is a number (octal, 10); where a string is
	// expected it is taken as written.
	r, err := DecodePatient([]byte("trial_id: 0012\nsite_id: S01\npatient_id: 1001\nstatus: enrolled\nbaseline: {heart_rate: 70, on_oxygen: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.TrialID != "0012" || r.PatientID != "1001" {
		t.Errorf("ids %q %q", r.TrialID, r.PatientID)
	}
	if r.Baseline == nil || r.Baseline.HeartRate == nil || *r.Baseline.HeartRate != 70 || r.Baseline.OnOxygen == nil || *r.Baseline.OnOxygen {
		t.Errorf("baseline %+v", r.Baseline)
	}
	// YAML 1.1's yes is a string, not true.
	if _, err := DecodePatient([]byte("baseline: {on_oxygen: yes}")); err == nil {
		t.Error("on_oxygen: yes accepted")
	}
}

func TestDecodePatient(t *testing.T) {
	r, err := DecodePatient([]byte(`{"status": "enrolled", "spo2_scale": 2, "baseline": {"spo2": 90},
		"version": 3, "created_at": "2026-01-01T00:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != Enrolled || r.SpO2Scale != 2 || r.Baseline == nil || *r.Baseline.SpO2 != 90 || r.Version != 0 || !r.CreatedAt.IsZero() {
		t.Errorf("got %+v", r)
	}
	for _, doc := range []string{
		`{"status": "enrolled", "site": "S01"}`,            // the file's name, not the API's
		`{"status": "enrolled", "baseline": {"pulse": 1}}`, // unknown vital
		`{"status": "enrolled", "spo2_scale": "2"}`,
	} {
		if _, err := DecodePatient([]byte(doc)); err == nil {
			t.Errorf("%s: no error", doc)
		}
	}
}

func TestDecodeFile(t *testing.T) {
	doc := protocolYAML + `
patients:
  - {site: S01, id: P1001, status: enrolled, spo2_scale: 1}
  - site: S02
    id: P2001
    status: withdrawn
    baseline: {spo2: 90}
`
	f, err := DecodeFile([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Protocol, validProtocol()) {
		t.Errorf("protocol %+v", f.Protocol)
	}
	if len(f.Patients) != 2 {
		t.Fatalf("patients %+v", f.Patients)
	}
	p := f.Patients[1]
	if p.TrialID != "T008" || p.SiteID != "S02" || p.PatientID != "P2001" || p.Status != Withdrawn || *p.Baseline.SpO2 != 90 {
		t.Errorf("patient %+v", p)
	}
	if err := f.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	_, err = DecodeFile([]byte("trial_id: T1\npatients:\n  - {site_id: S01, id: P1}\n"))
	if got := decodeErrors(t, err); len(got) != 1 || got[0] != "patients[0].site_id: unknown field" {
		t.Errorf("file with API names: %q", got)
	}
}

// The example in docs/ must stay a valid file.
func TestExampleFile(t *testing.T) {
	data, err := os.ReadFile("../docs/examples/trial-T008.yaml")
	if err != nil {
		t.Skipf("example not found: %v", err)
	}
	f, err := DecodeFile(data)
	if err != nil {
		t.Fatalf("DecodeFile: %v", err)
	}
	if err := f.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if len(f.Sites) != 4 || f.Schedule.Overdue() != 9*time.Hour || len(f.Escalation.Tiers) != 3 || len(f.Patients) != 2 ||
		f.Patients[1].SpO2Scale != 2 {
		t.Errorf("example: %+v", f)
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		8 * time.Hour: "8h", 90 * time.Minute: "1h30m", 15 * time.Minute: "15m", 0: "0s",
		90 * time.Second: "1m30s", time.Hour + 30*time.Second: "1h0m30s", 500 * time.Millisecond: "500ms",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("%v: String = %q, want %q", d, got, want)
		}
		js, err := json.Marshal(Duration(d))
		if err != nil || string(js) != `"`+want+`"` {
			t.Errorf("%v: MarshalJSON = %s, %v", d, js, err)
		}
		var back Duration
		if err := json.Unmarshal(js, &back); err != nil || back != Duration(d) {
			t.Errorf("%v: UnmarshalJSON = %v, %v", d, back, err)
		}
		y, err := yaml.Marshal(struct{ D Duration }{Duration(d)})
		if err != nil {
			t.Fatal(err)
		}
		var yback struct{ D Duration }
		if err := yaml.Unmarshal(y, &yback); err != nil || yback.D != Duration(d) {
			t.Errorf("%v: YAML round trip %s = %v, %v", d, y, yback.D, err)
		}
	}
	for _, bad := range []string{`"-1h"`, `3600`, `"8"`, `"7d"`, `""`, `{}`} {
		var d Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("UnmarshalJSON(%s) = %v, want error", bad, d)
		}
	}
	for _, bad := range []string{"d: -1h", "d: 3600", "d: [1h]"} {
		var v struct{ D Duration }
		if err := yaml.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("UnmarshalYAML(%s) = %v, want error", bad, v.D)
		}
	}
	d := Duration(time.Hour)
	if err := json.Unmarshal([]byte("null"), &d); err != nil || d != Duration(time.Hour) {
		t.Errorf("null: %v %v", d, err)
	}
}

// A protocol survives the store's JSON round trip unchanged.
func TestProtocolJSONRoundTrip(t *testing.T) {
	p := validProtocol()
	p.Version = 3
	p.UpdatedAt = time.Date(2026, 11, 26, 8, 0, 0, 123, time.UTC)
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Protocol
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, p)
	}
}

// YAML aliases cannot make a small document cost unbounded work.
func TestDecodeAliasBomb(t *testing.T) {
	doc := `
x:
  - &e a@example.org
  - &c {kind: email, to: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]}
  - &c2 [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
  - &t {name: t, after: 5m, channels: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c,
         *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c]}
escalation:
  tiers: [` + strings.TrimSuffix(strings.Repeat("*t, ", 2000), ", ") + `]
`
	_, err := DecodeProtocol([]byte(doc))
	got := decodeErrors(t, err)
	// x is unknown (and not walked); the tiers stop at the value budget.
	if len(got) != 2 || got[0] != "x: unknown field" || !strings.Contains(got[1], "expands to more than") {
		t.Errorf("errors %q", got)
	}
}

func TestDecodeErrorsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 500 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `"f%d": 1`, i)
	}
	b.WriteString("}")
	_, err := DecodeProtocol([]byte(b.String()))
	got := decodeErrors(t, err)
	if len(got) != 101 || got[100] != ": too many errors; fix these first" {
		t.Errorf("%d errors, last %q", len(got), got[len(got)-1])
	}
}
