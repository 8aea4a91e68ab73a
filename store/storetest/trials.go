package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"vigil/reading"
	"vigil/store"
	"vigil/trial"
)

// The trial store's contract: protocols and registry records are versioned
// from 1, every Put appends an audit record with the old and new value in
// the same transaction, invalid records and changes without an actor are
// refused (and leave no trace), and SilentPatients follows the registry and
// the readings.

var admin = store.Actor{Sub: "u-admin", Name: "Dr Ada Admin", Role: "admin"}

func change(minute int, reason string) store.Change {
	return store.Change{Actor: admin, Reason: reason, At: at(minute)}
}

func trialProtocol(trialID string, sites ...string) trial.Protocol {
	return trial.Protocol{
		TrialID:  trialID,
		Title:    "Phase II",
		Sites:    sites,
		Schedule: trial.Schedule{Every: trial.Duration(8 * time.Hour), Grace: trial.Duration(time.Hour)},
		Thresholds: trial.Thresholds{Vitals: []trial.VitalLimit{
			{Vital: "systolic_bp", Op: ">=", Value: 160, Grade: 3, Term: "hypertension"},
		}},
		Escalation: trial.Escalation{
			Tiers: []trial.Tier{{Name: "site", After: trial.Duration(15 * time.Minute),
				Channels: []trial.Channel{{Kind: trial.ChannelBoard},
					{Kind: trial.ChannelWebhook, URL: "https://hooks.example.org/v", SecretRef: "HOOK"}}}},
			Repeat: trial.Duration(10 * time.Minute),
		},
	}
}

func trialRecord(trialID, siteID, patientID, status string) trial.PatientRecord {
	hr := 72.0
	return trial.PatientRecord{TrialID: trialID, SiteID: siteID, PatientID: patientID, Status: status,
		SpO2Scale: 2, Baseline: &reading.Vitals{HeartRate: &hr}}
}

func mustPutProtocol(t *testing.T, s store.Store, p trial.Protocol, c store.Change) trial.Protocol {
	t.Helper()
	out, err := s.PutProtocol(t.Context(), p, c)
	if err != nil {
		t.Fatalf("PutProtocol(%s): %v", p.TrialID, err)
	}
	return out
}

func mustPutPatient(t *testing.T, s store.Store, r trial.PatientRecord, c store.Change) trial.PatientRecord {
	t.Helper()
	out, err := s.PutPatient(t.Context(), r, c)
	if err != nil {
		t.Fatalf("PutPatient(%s/%s/%s): %v", r.TrialID, r.SiteID, r.PatientID, err)
	}
	return out
}

// sameValue compares two records by their JSON with times in UTC, so that
// instants compare equal however a store keeps zones.
func sameValue(t *testing.T, what string, got, want any) {
	t.Helper()
	enc := func(v any) string {
		switch x := v.(type) {
		case trial.Protocol:
			x.UpdatedAt = x.UpdatedAt.UTC()
			v = x
		case trial.PatientRecord:
			x.CreatedAt, x.UpdatedAt = x.CreatedAt.UTC(), x.UpdatedAt.UTC()
			v = x
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return string(b)
	}
	if g, w := enc(got), enc(want); g != w {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func decodeValue[T any](t *testing.T, what string, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %s: %v", what, raw, err)
	}
	return v
}

func testProtocolPut(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.Protocol(ctx, "T1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Protocol of a new trial: err = %v, want ErrNotFound", err)
	}
	if list, err := s.Protocols(ctx); err != nil || len(list) != 0 {
		t.Fatalf("Protocols of a new store = %v, %v; want none", list, err)
	}

	v1 := mustPutProtocol(t, s, trialProtocol("T1", "S1", "S2"), change(0, "initial"))
	if v1.Version != 1 || !v1.UpdatedAt.Equal(at(0)) {
		t.Errorf("first put: version %d updated %v; want 1, %v", v1.Version, v1.UpdatedAt, at(0))
	}
	got, err := s.Protocol(ctx, "T1")
	if err != nil {
		t.Fatalf("Protocol: %v", err)
	}
	sameValue(t, "read back", got, v1)

	next := trialProtocol("T1", "S1", "S2", "S3")
	next.Version, next.UpdatedAt = 99, at(-100) // the store assigns these
	v2 := mustPutProtocol(t, s, next, change(5, "site S3 opened"))
	if v2.Version != 2 || !v2.UpdatedAt.Equal(at(5)) || len(v2.Sites) != 3 {
		t.Errorf("second put: %+v", v2)
	}
	got, err = s.Protocol(ctx, "T1")
	if err != nil {
		t.Fatalf("Protocol: %v", err)
	}
	sameValue(t, "read back v2", got, v2)

	t0 := mustPutProtocol(t, s, trialProtocol("T0", "S1"), change(6, ""))
	list, err := s.Protocols(ctx)
	if err != nil {
		t.Fatalf("Protocols: %v", err)
	}
	if len(list) != 2 {
		t.Fatalf("Protocols: %d, want 2", len(list))
	}
	sameValue(t, "Protocols[0]", list[0], t0)
	sameValue(t, "Protocols[1]", list[1], v2)
}

func testProtocolAudit(t *testing.T, s store.Store) {
	v1 := mustPutProtocol(t, s, trialProtocol("T1", "S1"), change(0, "initial"))
	c := change(3, "threshold agreed with the DSMB")
	c.Action = "protocol.apply"
	v2 := mustPutProtocol(t, s, trialProtocol("T1", "S1", "S2"), c)
	mustPutProtocol(t, s, trialProtocol("T2", "S1"), change(4, "other trial"))

	recs := mustAuditRecords(t, s, store.AuditQuery{EntityType: store.EntityProtocol, EntityID: "T1"})
	if len(recs) != 2 {
		t.Fatalf("audit records of T1: %d, want 2", len(recs))
	}
	want := []struct {
		action, reason string
		at             time.Time
		old, new       *trial.Protocol
	}{
		{"protocol.put", "initial", at(0), nil, &v1},
		{"protocol.apply", "threshold agreed with the DSMB", at(3), &v1, &v2},
	}
	for i, w := range want {
		r := recs[i]
		what := fmt.Sprintf("audit record %d", i)
		if r.EntityType != store.EntityProtocol || r.EntityID != "T1" || r.Actor != admin.Sub ||
			r.ActorName != admin.Name || r.ActorRole != admin.Role || r.Action != w.action ||
			r.Reason != w.reason || !r.At.Equal(w.at) || r.AlertID != "" {
			t.Errorf("%s: %+v", what, r)
		}
		if w.old == nil {
			if !isNull(r.OldValue) {
				t.Errorf("%s: old value %s, want null", what, r.OldValue)
			}
		} else {
			sameValue(t, what+" old value", decodeValue[trial.Protocol](t, what, r.OldValue), *w.old)
		}
		sameValue(t, what+" new value", decodeValue[trial.Protocol](t, what, r.NewValue), *w.new)
	}
	// Protocol changes are in the one audit trail, chained with the rest.
	checkChain(t, mustAuditRecords(t, s, store.AuditQuery{}))
}

func testProtocolRefused(t *testing.T, s store.Store) {
	ctx := t.Context()
	bad := trialProtocol("T1", "S1")
	bad.Sites = nil
	bad.Thresholds.Vitals[0].Op = "=>"
	_, err := s.PutProtocol(ctx, bad, change(0, "x"))
	var ve *trial.ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 2 {
		t.Errorf("invalid protocol: err = %v, want a *trial.ValidationError with 2 errors", err)
	}
	_, err = s.PutProtocol(ctx, trialProtocol("T1", "S1"), store.Change{Reason: "nobody", At: at(0)})
	if err == nil {
		t.Error("change without an actor: no error")
	}
	if _, err := s.Protocol(ctx, "T1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after refused puts: Protocol err = %v, want ErrNotFound", err)
	}
	if recs := mustAuditRecords(t, s, store.AuditQuery{}); len(recs) != 0 {
		t.Errorf("refused puts left %d audit records", len(recs))
	}
}

func testProtocolPutConcurrent(t *testing.T, s store.Store) {
	const n = 12
	versions := make([]int, n)
	errs := make([]error, n)
	parallel(n, func(i int) {
		p, err := s.PutProtocol(t.Context(), trialProtocol("T1", "S1"), change(i, fmt.Sprint("put ", i)))
		versions[i], errs[i] = p.Version, err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	slices.Sort(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("versions %v, want 1..%d each once", versions, n)
		}
	}
	got, err := s.Protocol(t.Context(), "T1")
	if err != nil || got.Version != n {
		t.Errorf("final version %d, %v; want %d", got.Version, err, n)
	}
	if recs := mustAuditRecords(t, s, store.AuditQuery{EntityType: store.EntityProtocol}); len(recs) != n {
		t.Errorf("%d audit records, want %d", len(recs), n)
	}
}

func testPatientPut(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.Patient(ctx, "T1", "S1", "P1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Patient without a record: err = %v, want ErrNotFound", err)
	}
	// A trial without a protocol still has a registry.
	v1 := mustPutPatient(t, s, trialRecord("T1", "S1", "P1", trial.Enrolled), change(0, "consented"))
	if v1.Version != 1 || !v1.CreatedAt.Equal(at(0)) || !v1.UpdatedAt.Equal(at(0)) {
		t.Errorf("first put: %+v", v1)
	}
	got, err := s.Patient(ctx, "T1", "S1", "P1")
	if err != nil {
		t.Fatalf("Patient: %v", err)
	}
	sameValue(t, "read back", got, v1)

	w := trialRecord("T1", "S1", "P1", trial.Withdrawn)
	w.Baseline = nil
	w.CreatedAt = at(-50) // the store keeps the first registration
	c := change(7, "consent withdrawn")
	c.Action = "patient.withdraw"
	v2 := mustPutPatient(t, s, w, c)
	if v2.Version != 2 || !v2.CreatedAt.Equal(at(0)) || !v2.UpdatedAt.Equal(at(7)) || v2.Status != trial.Withdrawn || v2.Baseline != nil {
		t.Errorf("second put: %+v", v2)
	}
	got, err = s.Patient(ctx, "T1", "S1", "P1")
	if err != nil {
		t.Fatalf("Patient: %v", err)
	}
	sameValue(t, "read back v2", got, v2)
	// The key is the triple.
	for _, k := range [][3]string{{"T1", "S2", "P1"}, {"T2", "S1", "P1"}, {"T1", "S1", "P2"}} {
		if _, err := s.Patient(ctx, k[0], k[1], k[2]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Patient(%v): err = %v, want ErrNotFound", k, err)
		}
	}

	recs := mustAuditRecords(t, s, store.AuditQuery{EntityType: store.EntityPatient, EntityID: "T1/S1/P1"})
	if len(recs) != 2 {
		t.Fatalf("audit records: %d, want 2", len(recs))
	}
	if r := recs[0]; r.Action != "patient.put" || r.Reason != "consented" || r.Actor != admin.Sub ||
		r.ActorRole != admin.Role || !isNull(r.OldValue) || !r.At.Equal(at(0)) {
		t.Errorf("first audit record: %+v", r)
	}
	if r := recs[1]; r.Action != "patient.withdraw" || r.Reason != "consent withdrawn" || !r.At.Equal(at(7)) {
		t.Errorf("second audit record: %+v", r)
	}
	sameValue(t, "old value", decodeValue[trial.PatientRecord](t, "old", recs[1].OldValue), v1)
	sameValue(t, "new value", decodeValue[trial.PatientRecord](t, "new", recs[1].NewValue), v2)
}

func testPatientRefused(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustPutProtocol(t, s, trialProtocol("T1", "S1", "S2"), change(0, "initial"))
	before := len(mustAuditRecords(t, s, store.AuditQuery{}))

	var ve *trial.ValidationError
	_, err := s.PutPatient(ctx, trialRecord("T1", "S9", "P1", trial.Enrolled), change(1, "x"))
	if !errors.As(err, &ve) || len(ve.Errors) != 1 || ve.Errors[0].Field != "site_id" {
		t.Errorf("site outside the protocol: err = %v, want a site_id *trial.ValidationError", err)
	}
	_, err = s.PutPatient(ctx, trialRecord("T1", "S1", "P1", "active"), change(1, "x"))
	if !errors.As(err, &ve) || ve.Errors[0].Field != "status" {
		t.Errorf("bad status: err = %v, want a status *trial.ValidationError", err)
	}
	if _, err := s.PutPatient(ctx, trialRecord("T1", "S1", "P1", trial.Enrolled), store.Change{At: at(1)}); err == nil {
		t.Error("change without an actor: no error")
	}
	if _, err := s.Patient(ctx, "T1", "S9", "P1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after refused puts: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Patient(ctx, "T1", "S1", "P1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after refused puts: err = %v, want ErrNotFound", err)
	}
	if after := len(mustAuditRecords(t, s, store.AuditQuery{})); after != before {
		t.Errorf("refused puts left %d audit records", after-before)
	}
	// A site of the protocol is accepted.
	mustPutPatient(t, s, trialRecord("T1", "S2", "P1", trial.Enrolled), change(2, "x"))
}

func testSilentPatients(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.SilentPatients(ctx, "T1", at(50)); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v, %v", got, err)
	}
	read := func(patient, site string, minutes ...int) {
		for _, m := range minutes {
			mustInsert(t, s, newReading(patient, "T1", site, at(m)))
		}
	}
	reg := func(patient, site, status string, minute int) {
		mustPutPatient(t, s, trialRecord("T1", site, patient, status), change(minute, "x"))
	}
	read("P1", "S1", 0, 10)  // unregistered, silent since 10
	read("P2", "S1", 0, 100) // unregistered, reported after the cutoff
	read("P3", "S2", 5)      // withdrawn below: excluded
	reg("P3", "S2", trial.Withdrawn, 6)
	reg("P4", "S2", trial.Enrolled, 20)  // never reported: silent since registration
	reg("P5", "S2", trial.Enrolled, 200) // registered after the cutoff
	reg("P6", "S1", trial.Withdrawn, 1)  // withdrawn, never reported
	read("P7", "S1", 30)                 // enrolled and reported: the reading counts,
	reg("P7", "S1", trial.Enrolled, 2)   // not the registration
	read("P8", "S1", 49)
	reg("P8", "S1", trial.Enrolled, 40)
	read("P8", "S1", 50)                                  // measured exactly at the cutoff: not silent
	read("P1", "S3", 60)                                  // the same pseudonym at another site is another patient
	mustInsert(t, s, newReading("P9", "T2", "S1", at(0))) // another trial
	mustPutPatient(t, s, trialRecord("T2", "S1", "P10", trial.Enrolled), change(0, "x"))

	got, err := s.SilentPatients(ctx, "T1", at(50))
	if err != nil {
		t.Fatalf("SilentPatients: %v", err)
	}
	want := []store.SilentPatient{
		{TrialID: "T1", SiteID: "S1", PatientID: "P1", LastMeasuredAt: at(10), Since: at(10)},
		{TrialID: "T1", SiteID: "S1", PatientID: "P7", LastMeasuredAt: at(30), Since: at(30)},
		{TrialID: "T1", SiteID: "S2", PatientID: "P4", Since: at(20)},
	}
	if len(got) != len(want) {
		t.Fatalf("SilentPatients = %+v\nwant %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.TrialID != w.TrialID || g.SiteID != w.SiteID || g.PatientID != w.PatientID ||
			!g.LastMeasuredAt.Equal(w.LastMeasuredAt) || !g.Since.Equal(w.Since) {
			t.Errorf("SilentPatients[%d] = %+v, want %+v", i, g, w)
		}
	}

	// Re-enrolling P3 brings it back, silent since its last reading.
	reg("P3", "S2", trial.Enrolled, 70)
	got, err = s.SilentPatients(ctx, "T1", at(50))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(got, func(p store.SilentPatient) bool {
		return p.SiteID == "S2" && p.PatientID == "P3" && p.Since.Equal(at(5)) && p.LastMeasuredAt.Equal(at(5))
	}) {
		t.Errorf("re-enrolled P3 missing: %+v", got)
	}
}

func testTrialStoreClosed(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.PutProtocol(t.Context(), trialProtocol("T1", "S1"), change(0, "x")); err == nil {
		t.Error("PutProtocol after Close: no error")
	}
	if _, err := s.PutPatient(t.Context(), trialRecord("T1", "S1", "P1", trial.Enrolled), change(0, "x")); err == nil {
		t.Error("PutPatient after Close: no error")
	}
}
