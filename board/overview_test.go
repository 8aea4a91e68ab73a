package board

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"vigil/auth"
	"vigil/problem"
	"vigil/reading"
	"vigil/scoring"
	"vigil/store"
	"vigil/store/sqlite"
	"vigil/trial"
)

var boardNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// boardEnv is the board API over a real SQLite file, its clock at boardNow.
type boardEnv struct {
	app   *fiber.App
	store *sqlite.Store
}

func newBoardEnv(t *testing.T) *boardEnv {
	app, st := openBoardApp(t, boardNow)
	return &boardEnv{app: app, store: st}
}

// openBoardApp mounts the board API over a fresh SQLite file, with a clock
// that always says now.
func openBoardApp(t *testing.T, now time.Time) (*fiber.App, *sqlite.Store) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	v, err := auth.NewVerifier(auth.VerifierConfig{Secret: []byte(testSecret), Issuer: "vigil", Audience: "vigil"})
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{ErrorHandler: problem.ErrorHandler})
	New(v, st, slog.New(slog.NewTextHandler(io.Discard, nil)), WithClock(func() time.Time { return now })).Register(app)
	return app, st
}

// read stores a reading measured ago before boardNow, scored with risk
// unless risk is "".
func (e *boardEnv) read(t *testing.T, trialID, site, patient string, ago time.Duration, risk string) {
	t.Helper()
	hr := 80.0
	r := reading.Reading{ReadingID: uuid.NewString(), PatientID: patient, TrialID: trialID, SiteID: site,
		MeasuredAt: boardNow.Add(-ago), Vitals: reading.Vitals{HeartRate: &hr}}
	if _, err := e.store.InsertReading(t.Context(), store.NewReading{Reading: r, ReceivedAt: r.MeasuredAt}); err != nil {
		t.Fatal(err)
	}
	if risk == "" {
		return
	}
	if _, err := e.store.SaveScore(t.Context(), scoring.Score{Kind: "score", ReadingID: r.ReadingID, PatientID: patient,
		TrialID: trialID, SiteID: site, MeasuredAt: r.MeasuredAt, ScoredAt: r.MeasuredAt, Risk: risk}); err != nil {
		t.Fatal(err)
	}
}

// alert opens (or raises) the patient's alert, opened ago before boardNow.
func (e *boardEnv) alert(t *testing.T, trialID, site, patient, severity string, ago time.Duration) scoring.Alert {
	t.Helper()
	a, changed, err := e.store.ApplyAlert(t.Context(), scoring.Alert{PatientID: patient, TrialID: trialID, SiteID: site,
		Severity: severity, Reasons: []string{scoring.ReasonNEWS2High}, ReadingID: uuid.NewString(),
		OpenedAt: boardNow.Add(-ago), UpdatedAt: boardNow.Add(-ago)}, raiseTo)
	if err != nil || !changed {
		t.Fatalf("ApplyAlert: %v %v", changed, err)
	}
	return a
}

// get asks for path as c's token: the status and the raw body.
func (e *boardEnv) get(t *testing.T, c *auth.Claims, path string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if c != nil {
		req.Header.Set("Authorization", "Bearer "+token(t, *c))
	}
	resp, err := e.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		var p problem.Details
		if err := json.Unmarshal(body, &p); err != nil || p.Status != resp.StatusCode ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), problem.ContentType) {
			t.Errorf("%d reply %s is not a problem (%v)", resp.StatusCode, body, err)
		}
	}
	return resp.StatusCode, body
}

// overviewFixture: trial T1's protocol lists S1, S2, S3 and reads every 4 h
// with 1 h of grace (stale after 5 h). S1 reported an hour ago, S2 six
// hours ago, S3 never; S4 is not in the protocol but has readings. T2 has
// no protocol (stale after the default 3 h).
func overviewFixture(t *testing.T) *boardEnv {
	e := newBoardEnv(t)
	p := trial.Protocol{TrialID: "T1", Sites: []string{"S1", "S2", "S3"},
		Schedule: trial.Schedule{Every: trial.Duration(4 * time.Hour), Grace: trial.Duration(time.Hour)},
		Escalation: trial.Escalation{Tiers: []trial.Tier{{Name: "site", After: trial.Duration(15 * time.Minute),
			Channels: []trial.Channel{{Kind: trial.ChannelBoard}}}}}}
	if _, err := e.store.PutProtocol(t.Context(), p, store.Change{Actor: store.Actor{Sub: "u-admin", Role: "admin"}}); err != nil {
		t.Fatal(err)
	}
	e.read(t, "T1", "S1", "P1", 3*time.Hour, scoring.RiskLow)
	e.read(t, "T1", "S1", "P1", time.Hour, scoring.RiskCritical)
	e.read(t, "T1", "S1", "P2", 2*time.Hour, scoring.RiskMedium)
	e.read(t, "T1", "S1", "P3", 90*time.Minute, "")
	e.alert(t, "T1", "S1", "P1", scoring.RiskCritical, time.Hour)
	e.read(t, "T1", "S2", "P1", 6*time.Hour, scoring.RiskLow)
	e.read(t, "T1", "S4", "P9", 10*time.Minute, scoring.RiskNone)
	e.read(t, "T2", "S1", "P1", 2*time.Hour, scoring.RiskHigh)
	return e
}

func TestOverviewVisibility(t *testing.T) {
	e := overviewFixture(t)
	cra := func(sites ...string) *auth.Claims {
		return &auth.Claims{Role: auth.RoleCRA, Name: "Cam", Trials: []string{"T1"}, Sites: sites}
	}
	tests := []struct {
		name   string
		claims *auth.Claims
		trial  string
		code   int
		sites  []string
	}{
		{"safety sees every site", &safetyT1, "T1", 200, []string{"S1", "S2", "S3", "S4"}},
		{"admin sees every site", &adminT1, "T1", 200, []string{"S1", "S2", "S3", "S4"}},
		{"on-call sees every site", &auth.Claims{Role: auth.RoleOnCall, Trials: []string{"T1"}}, "T1", 200, []string{"S1", "S2", "S3", "S4"}},
		{"a PI sees their own site only", &piS1, "T1", 200, []string{"S1"}},
		{"a CRA of two sites sees both", cra("T1/S2", "T1/S4"), "T1", 200, []string{"S2", "S4"}},
		{"a CRA of a site that never reported sees it", cra("T1/S3"), "T1", 200, []string{"S3"}},
		{"a CRA of another trial's site", cra("T2/S1"), "T1", 403, nil},
		{"a PI listed on the trial without a site", &auth.Claims{Role: auth.RolePI, Trials: []string{"T1"}}, "T1", 403, nil},
		{"safety of another trial", &safetyT1, "T2", 403, nil},
		{"a trial without a protocol", &auth.Claims{Role: auth.RoleSafety, Trials: []string{"T2"}}, "T2", 200, []string{"S1"}},
		{"an unknown trial", &auth.Claims{Role: auth.RoleSafety, Trials: []string{"T9"}}, "T9", 200, []string{}},
		{"a patient token", &patient, "T1", 403, nil},
		{"no token", nil, "T1", 401, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.get(t, tc.claims, "/v1/trials/"+tc.trial+"/overview")
			if code != tc.code {
				t.Fatalf("status %d (%s), want %d", code, body, tc.code)
			}
			if code != 200 {
				return
			}
			var o Overview
			if err := json.Unmarshal(body, &o); err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, s := range o.Sites {
				got = append(got, s.SiteID)
			}
			if !slices.Equal(got, tc.sites) || o.TrialID != tc.trial {
				t.Errorf("trial %s sites %v, want %s %v", o.TrialID, got, tc.trial, tc.sites)
			}
		})
	}
}

func TestOverviewFigures(t *testing.T) {
	e := overviewFixture(t)
	code, body := e.get(t, &safetyT1, "/v1/trials/T1/overview")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var o Overview
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatal(err)
	}
	if !o.GeneratedAt.Equal(boardNow) || o.StaleAfterSeconds != 5*3600 {
		t.Errorf("generated_at %v stale_after_seconds %d, want %v and 18000", o.GeneratedAt, o.StaleAfterSeconds, boardNow)
	}
	bySite := map[string]SiteView{}
	for _, s := range o.Sites {
		bySite[s.SiteID] = s
	}
	tests := []struct {
		site     string
		patients int
		risk     store.RiskCounts
		last     time.Duration // before now; 0: none
		stale    bool
		alerts   store.AlertCounts
	}{
		{"S1", 3, store.RiskCounts{Critical: 1, Medium: 1, Pending: 1}, time.Hour, false,
			store.AlertCounts{Open: 1, Critical: 1}},
		{"S2", 1, store.RiskCounts{Low: 1}, 6 * time.Hour, true, store.AlertCounts{}},
		{"S3", 0, store.RiskCounts{}, 0, true, store.AlertCounts{}},
		{"S4", 1, store.RiskCounts{None: 1}, 10 * time.Minute, false, store.AlertCounts{}},
	}
	for _, tc := range tests {
		t.Run(tc.site, func(t *testing.T) {
			s, ok := bySite[tc.site]
			if !ok {
				t.Fatalf("no site %s in %s", tc.site, body)
			}
			if s.Patients != tc.patients || s.Risk != tc.risk || s.Stale != tc.stale || s.Alerts != tc.alerts {
				t.Errorf("%+v, want patients %d risk %+v stale %v alerts %+v", s, tc.patients, tc.risk, tc.stale, tc.alerts)
			}
			switch {
			case tc.last == 0 && s.LastReadingAt != nil:
				t.Errorf("last_reading_at %v, want null", s.LastReadingAt)
			case tc.last != 0 && (s.LastReadingAt == nil || !s.LastReadingAt.Equal(boardNow.Add(-tc.last))):
				t.Errorf("last_reading_at %v, want %v", s.LastReadingAt, boardNow.Add(-tc.last))
			}
			if s.Ack.Count != 0 || s.Ack.MedianSeconds != nil {
				t.Errorf("ack %+v, want none", s.Ack)
			}
		})
	}

	// The JSON shape: a site that never reported has null, not absent,
	// last_reading_at, and ack figures are null without acknowledgements.
	var raw struct {
		Sites []map[string]json.RawMessage `json:"sites"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, s := range raw.Sites {
		for _, k := range []string{"site_id", "patients", "risk", "last_reading_at", "stale", "alerts", "ack"} {
			if _, ok := s[k]; !ok {
				t.Errorf("site %s has no %q", s["site_id"], k)
			}
		}
		if string(s["site_id"]) == `"S3"` && string(s["last_reading_at"]) != "null" {
			t.Errorf("S3 last_reading_at %s, want null", s["last_reading_at"])
		}
		var ack map[string]json.RawMessage
		if err := json.Unmarshal(s["ack"], &ack); err != nil {
			t.Fatal(err)
		}
		if string(ack["count"]) != "0" || string(ack["median_seconds"]) != "null" || string(ack["p90_seconds"]) != "null" ||
			string(ack["max_seconds"]) != "null" {
			t.Errorf("ack %s, want a zero count and null figures", s["ack"])
		}
	}

	// Without a protocol, stale after the default 3 h.
	code, body = e.get(t, &auth.Claims{Role: auth.RoleSafety, Trials: []string{"T2"}}, "/v1/trials/T2/overview")
	if code != 200 {
		t.Fatalf("T2: %d %s", code, body)
	}
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatal(err)
	}
	if o.StaleAfterSeconds != 3*3600 || len(o.Sites) != 1 || o.Sites[0].Stale || o.Sites[0].Risk.High != 1 {
		t.Errorf("T2 overview %s, want stale after 10800 s and S1 fresh with one high", body)
	}
}

func TestAlertsByPatient(t *testing.T) {
	e := newBoardEnv(t)
	first := e.alert(t, "T1", "S1", "P1", scoring.RiskHigh, 3*time.Hour)
	if _, err := e.store.UpdateAlert(t.Context(), first.AlertID, func(cur scoring.Alert) (store.AlertChange, error) {
		cur.Status = scoring.StatusResolved
		return store.AlertChange{Alert: cur}, nil
	}, store.Change{Actor: store.Actor{Sub: "u-pi", Role: "pi"}, Action: "alert.resolved"}); err != nil {
		t.Fatal(err)
	}
	second := e.alert(t, "T1", "S1", "P1", scoring.RiskMedium, time.Hour)
	e.alert(t, "T1", "S1", "P2", scoring.RiskHigh, time.Hour)
	e.alert(t, "T1", "S2", "P1", scoring.RiskHigh, time.Hour)
	tests := []struct {
		name   string
		claims *auth.Claims
		query  string
		code   int
		field  string
		want   []string
	}{
		{"every status of one patient", &piS1, "trial=T1&site=S1&patient=P1", 200, "", []string{second.AlertID, first.AlertID}},
		{"open only", &piS1, "trial=T1&site=S1&patient=P1&status=open", 200, "", []string{second.AlertID}},
		{"safety of the trial", &safetyT1, "trial=T1&site=S1&patient=P1", 200, "", []string{second.AlertID, first.AlertID}},
		{"a patient without alerts", &piS1, "trial=T1&site=S1&patient=P7", 200, "", []string{}},
		{"without trial and site", &piS1, "patient=P1", 400, "patient", nil},
		{"without site", &piS1, "trial=T1&patient=P1", 400, "patient", nil},
		{"another site's patient", &piS1, "trial=T1&site=S2&patient=P1", 403, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.get(t, tc.claims, "/v1/alerts?"+tc.query)
			if code != tc.code {
				t.Fatalf("status %d (%s), want %d", code, body, tc.code)
			}
			if tc.field != "" {
				var p problem.Details
				if err := json.Unmarshal(body, &p); err != nil || len(p.Errors) != 1 || p.Errors[0].Field != tc.field {
					t.Errorf("problem %s, want field %s", body, tc.field)
				}
			}
			if code != 200 {
				return
			}
			var r struct {
				Alerts []scoring.Alert `json:"alerts"`
			}
			if err := json.Unmarshal(body, &r); err != nil || r.Alerts == nil {
				t.Fatalf("reply %s: %v", body, err)
			}
			got := []string{}
			for _, a := range r.Alerts {
				got = append(got, a.AlertID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("alerts %v, want %v", got, tc.want)
			}
		})
	}
}
