package storetest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"testing"

	"vigil/scoring"
	"vigil/store"
)

// The audit log's contract, through the only write path every store has
// (ApplyAlert): records come back in id order, ids run on without gaps, each
// record's prev_hash is the hash before it (the first's is empty), and
// VerifyAudit finds an untouched trail intact.

var hexHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

func mustAuditRecords(t *testing.T, s store.Store, q store.AuditQuery) []store.AuditRecord {
	t.Helper()
	recs, err := s.AuditRecords(t.Context(), q)
	if err != nil {
		t.Fatalf("AuditRecords(%+v): %v", q, err)
	}
	return recs
}

func auditIDs(recs []store.AuditRecord) []int64 {
	ids := make([]int64, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids
}

// checkChain checks that recs are a whole trail from its first record: ids
// consecutive, hashes well formed and distinct, and each prev_hash the hash
// of the record before.
func checkChain(t *testing.T, recs []store.AuditRecord) {
	t.Helper()
	seen := map[string]bool{}
	for i, r := range recs {
		if !hexHash.MatchString(r.Hash) {
			t.Errorf("record %d: hash %q is not 64 lower-case hex digits", r.ID, r.Hash)
		}
		if seen[r.Hash] {
			t.Errorf("record %d: hash %s repeats an earlier record's", r.ID, r.Hash)
		}
		seen[r.Hash] = true
		if i == 0 {
			if r.PrevHash != "" {
				t.Errorf("first record %d: prev_hash = %q, want empty", r.ID, r.PrevHash)
			}
			continue
		}
		if p := recs[i-1]; r.ID != p.ID+1 {
			t.Errorf("record %d follows record %d: ids must run on without gaps", r.ID, p.ID)
		} else if r.PrevHash != p.Hash {
			t.Errorf("record %d: prev_hash = %s, want record %d's hash %s", r.ID, r.PrevHash, p.ID, p.Hash)
		}
	}
}

// sameRecord compares records as the API would show them, times in UTC.
func sameRecord(t *testing.T, what string, got, want store.AuditRecord) {
	t.Helper()
	enc := func(r store.AuditRecord) string {
		r.At = r.At.UTC()
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return string(b)
	}
	if g, w := enc(got), enc(want); g != w {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func mustVerify(t *testing.T, s store.Store, want int) {
	t.Helper()
	n, err := s.VerifyAudit(t.Context())
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	if n != want {
		t.Errorf("VerifyAudit = %d records, want %d", n, want)
	}
}

func testVerifyAuditEmpty(t *testing.T, s store.Store) {
	if recs := mustAuditRecords(t, s, store.AuditQuery{}); len(recs) != 0 {
		t.Errorf("new store: %d audit records, want none", len(recs))
	}
	mustVerify(t, s, 0)
}

func testAuditChain(t *testing.T, s store.Store) {
	a1 := mustApply(t, s, candidate("P1", "T1", "S1", "medium", 1), raise)
	mustApply(t, s, candidate("P1", "T1", "S1", "high", 2), raise)
	a2 := mustApply(t, s, candidate("P2", "T1", "S2", "medium", 3), raise)
	mustApply(t, s, candidate("P1", "T1", "S1", "high", 4), resolve)

	recs := mustAuditRecords(t, s, store.AuditQuery{})
	if len(recs) != 4 {
		t.Fatalf("%d audit records, want 4", len(recs))
	}
	checkChain(t, recs)
	wantAlert := []string{a1.AlertID, a1.AlertID, a2.AlertID, a1.AlertID}
	wantAction := []string{"opened", "updated", "opened", "updated"}
	for i, r := range recs {
		if r.EntityType != store.EntityAlert || r.EntityID != wantAlert[i] || r.AlertID != wantAlert[i] {
			t.Errorf("record %d: entity %s/%s alert_id %q, want alert/%s", r.ID, r.EntityType, r.EntityID,
				r.AlertID, wantAlert[i])
		}
		if r.Action != wantAction[i] || r.Actor != "system" || r.At.IsZero() {
			t.Errorf("record %d: action %s by %s at %v, want %s by system", r.ID, r.Action, r.Actor, r.At, wantAction[i])
		}
	}
	if !isNull(recs[0].OldValue) || isNull(recs[1].OldValue) {
		t.Errorf("old values %s, %s: want null for opened, the alert for updated", recs[0].OldValue, recs[1].OldValue)
	}

	// Audit(alert) and AuditRecords are two views of one trail.
	byID := map[int64]store.AuditRecord{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	for _, id := range []string{a1.AlertID, a2.AlertID} {
		for _, r := range mustAudit(t, s, id) {
			sameRecord(t, fmt.Sprintf("Audit(%s) record %d", id, r.ID), r, byID[r.ID])
		}
	}
	mustVerify(t, s, 4)

	// The chain grows from where it was.
	mustApply(t, s, candidate("P3", "T2", "S1", "critical", 5), raise)
	all := mustAuditRecords(t, s, store.AuditQuery{})
	if len(all) != 5 {
		t.Fatalf("%d records after one more change, want 5", len(all))
	}
	checkChain(t, all)
	sameRecord(t, "earlier records unchanged", all[3], recs[3])
	mustVerify(t, s, 5)
}

func testAuditRecordsPaging(t *testing.T, s store.Store) {
	// 53 open/resolve cycles: 106 records, more than the default page.
	const cycles = 53
	for i := range cycles {
		mustApply(t, s, candidate("P1", "T1", "S1", "medium", 2*i), raise)
		mustApply(t, s, candidate("P1", "T1", "S1", "medium", 2*i+1), resolve)
	}
	all := mustAuditRecords(t, s, store.AuditQuery{Limit: 1000})
	if len(all) != 2*cycles {
		t.Fatalf("%d records, want %d", len(all), 2*cycles)
	}
	checkChain(t, all)

	if got := mustAuditRecords(t, s, store.AuditQuery{}); len(got) != 100 {
		t.Errorf("no limit: %d records, want the default 100", len(got))
	}
	if got := mustAuditRecords(t, s, store.AuditQuery{Limit: 5000}); len(got) != 2*cycles {
		t.Errorf("limit 5000: %d records, want all %d (under the 1000 cap)", len(got), 2*cycles)
	}

	// Walking pages of 7 by the last id seen gives every record once, in order.
	var walked []store.AuditRecord
	var after int64
	for pages := 0; ; pages++ {
		if pages > 2*cycles {
			t.Fatal("paging does not end")
		}
		page := mustAuditRecords(t, s, store.AuditQuery{AfterID: after, Limit: 7})
		if len(page) == 0 {
			break
		}
		if len(page) > 7 {
			t.Fatalf("page of %d records, limit 7", len(page))
		}
		walked = append(walked, page...)
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(auditIDs(walked)) != fmt.Sprint(auditIDs(all)) {
		t.Errorf("pages gave ids %v, want %v", auditIDs(walked), auditIDs(all))
	}

	last := all[len(all)-1].ID
	if got := mustAuditRecords(t, s, store.AuditQuery{AfterID: last}); len(got) != 0 {
		t.Errorf("after the last record: %d records, want none", len(got))
	}
	if got := mustAuditRecords(t, s, store.AuditQuery{AfterID: last + 1000}); len(got) != 0 {
		t.Errorf("after an id not yet issued: %d records, want none", len(got))
	}
	mustVerify(t, s, 2*cycles)
}

func testAuditRecordsFilters(t *testing.T, s store.Store) {
	a1 := mustApply(t, s, candidate("P1", "T1", "S1", "medium", 1), raise)
	a2 := mustApply(t, s, candidate("P2", "T1", "S1", "medium", 2), raise)
	mustApply(t, s, candidate("P1", "T1", "S1", "high", 3), raise)
	mustApply(t, s, candidate("P3", "T2", "S1", "high", 4), raise)
	mustApply(t, s, candidate("P1", "T1", "S1", "high", 5), resolve)
	all := mustAuditRecords(t, s, store.AuditQuery{})
	if len(all) != 5 {
		t.Fatalf("%d records, want 5", len(all))
	}
	id := func(i int) int64 { return all[i].ID }

	tests := []struct {
		name string
		q    store.AuditQuery
		want []int64
	}{
		{"entity type", store.AuditQuery{EntityType: store.EntityAlert}, auditIDs(all)},
		{"one alert", store.AuditQuery{EntityType: store.EntityAlert, EntityID: a1.AlertID}, []int64{id(0), id(2), id(4)}},
		{"entity id alone", store.AuditQuery{EntityID: a2.AlertID}, []int64{id(1)}},
		{"one alert after a cursor", store.AuditQuery{EntityType: store.EntityAlert, EntityID: a1.AlertID, AfterID: id(0)}, []int64{id(2), id(4)}},
		{"one alert, limit", store.AuditQuery{EntityType: store.EntityAlert, EntityID: a1.AlertID, Limit: 2}, []int64{id(0), id(2)}},
		{"another type", store.AuditQuery{EntityType: store.EntityProtocol}, nil},
		{"type and id that do not go together", store.AuditQuery{EntityType: store.EntityPatient, EntityID: a1.AlertID}, nil},
		{"unknown id", store.AuditQuery{EntityType: store.EntityAlert, EntityID: "no-such-alert"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustAuditRecords(t, s, tc.q)
			if g, w := fmt.Sprint(auditIDs(got)), fmt.Sprint(tc.want); g != w && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("ids %s, want %s", g, w)
			}
			for _, r := range got {
				sameRecord(t, fmt.Sprintf("record %d", r.ID), r, all[r.ID-all[0].ID])
			}
		})
	}
}

func testAuditChainConcurrent(t *testing.T, s store.Store) {
	// Many writers at once must still make one chain: no two records may
	// claim the same predecessor.
	const patients, each = 16, 4
	severities := []string{"medium", "high", "critical"}
	parallel(patients*each, func(i int) {
		p := fmt.Sprintf("C%02d", i%patients)
		merge := raise
		if i%5 == 4 {
			merge = resolve
		}
		if _, _, err := s.ApplyAlert(t.Context(), candidate(p, "T1", "S1", severities[i%3], i), merge); err != nil {
			t.Errorf("ApplyAlert %d: %v", i, err)
		}
	})
	recs := mustAuditRecords(t, s, store.AuditQuery{Limit: 1000})
	if len(recs) < patients {
		t.Fatalf("%d records, want at least one per patient (%d)", len(recs), patients)
	}
	checkChain(t, recs)
	mustVerify(t, s, len(recs))
	for _, r := range recs {
		if r.Action != "opened" && r.Action != "updated" {
			t.Errorf("record %d: action %s", r.ID, r.Action)
		}
		var a scoring.Alert
		if err := json.Unmarshal(r.NewValue, &a); err != nil || a.AlertID != r.EntityID {
			t.Errorf("record %d: new value %s is not alert %s (%v)", r.ID, r.NewValue, r.EntityID, err)
		}
	}
}
