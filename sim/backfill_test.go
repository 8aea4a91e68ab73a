package sim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/auth"
	"vigil/reading"
)

// Backfill posts one batch per patient, with that patient's token, of
// readings every step over the span before now, oldest first, all valid and
// none at or after now.
func TestBackfill(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]reading.Reading{}
	tokens := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/readings/batch" {
			http.NotFound(w, r)
			return
		}
		var b struct {
			Readings []reading.Reading `json:"readings"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rd := range b.Readings {
			got[rd.PatientID] = append(got[rd.PatientID], rd)
			tokens[rd.PatientID] = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	cfg := Config{URL: srv.URL, Trial: "T008", Sites: 2, Patients: 6, Deteriorating: 0.5, Seed: 7,
		Issuer: auth.Issuer{Secret: []byte(strings.Repeat("k", 32)), Issuer: "vigil", Audience: "vigil"}}
	ps, err := Cohort(cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := Backfill(t.Context(), cfg, ps, 24*time.Hour, 2*time.Hour, now); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ps) {
		t.Fatalf("%d patients backfilled, want %d", len(got), len(ps))
	}
	for _, p := range ps {
		rs := got[p.ID]
		if len(rs) < 11 || len(rs) > 12 {
			t.Errorf("%s: %d readings over 24 h every 2 h", p.ID, len(rs))
		}
		if tokens[p.ID] != p.token {
			t.Errorf("%s: posted with another patient's token", p.ID)
		}
		for i, r := range rs {
			if err := r.Validate(now); err != nil {
				t.Errorf("%s reading %d: %v", p.ID, i, err)
			}
			if !r.MeasuredAt.Before(now) || r.MeasuredAt.Before(now.Add(-24*time.Hour)) {
				t.Errorf("%s reading %d measured at %v, outside the day before %v", p.ID, i, r.MeasuredAt, now)
			}
			if i > 0 && r.MeasuredAt.Sub(rs[i-1].MeasuredAt) != 2*time.Hour {
				t.Errorf("%s readings %d and %d are %v apart", p.ID, i-1, i, r.MeasuredAt.Sub(rs[i-1].MeasuredAt))
			}
			if r.SiteID != p.Site || r.TrialID != "T008" {
				t.Errorf("%s reading %d at %s/%s", p.ID, i, r.TrialID, r.SiteID)
			}
		}
	}

	if err := Backfill(t.Context(), cfg, ps, time.Hour, 0, now); err == nil {
		t.Error("a zero step was accepted")
	}
}
