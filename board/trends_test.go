package board

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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
)

// trendNow is the clock of the trend tests: the window of 24 hours in 48
// buckets ends at 10:30 and starts at 10:30 the day before.
var trendNow = time.Date(2026, 11, 27, 10, 17, 3, 0, time.UTC)

type trendEnv struct {
	app   *fiber.App
	store *sqlite.Store
}

func newTrendEnv(t *testing.T) *trendEnv {
	app, st := openBoardApp(t, trendNow)
	return &trendEnv{app: app, store: st}
}

// add stores a reading of patient with a heart rate and temperature and,
// with news2 >= 0, its score.
func (e *trendEnv) add(t *testing.T, trial, site, patient string, at time.Time, hr, temp float64, news2 int) {
	t.Helper()
	r := reading.Reading{ReadingID: uuid.NewString(), PatientID: patient, TrialID: trial, SiteID: site,
		MeasuredAt: at, Vitals: reading.Vitals{HeartRate: &hr, Temperature: &temp}}
	payload, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.InsertReading(t.Context(), store.NewReading{Reading: r, Payload: payload, ContentHash: r.ReadingID}); err != nil {
		t.Fatal(err)
	}
	if news2 < 0 {
		return
	}
	sc := scoring.Score{Kind: "score", ReadingID: r.ReadingID, PatientID: patient, TrialID: trial, SiteID: site,
		MeasuredAt: at, NEWS2: scoring.NEWS2{Total: news2, Band: scoring.BandLow, Parameters: scoring.Parameters{}},
		Risk: scoring.RiskLow}
	if _, err := e.store.SaveScore(t.Context(), sc); err != nil {
		t.Fatal(err)
	}
}

// get asks for path as c's token (nil: none) and returns the status and
// body, checking that an error is a problem.
func (e *trendEnv) get(t *testing.T, c *auth.Claims, path string) (int, []byte) {
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
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode == http.StatusOK {
		if !strings.HasPrefix(ct, "application/json") || !json.Valid(body) {
			t.Errorf("200 reply: Content-Type %q, valid JSON %v: %s", ct, json.Valid(body), body)
		}
		return resp.StatusCode, body
	}
	var p problem.Details
	if !strings.HasPrefix(ct, problem.ContentType) || json.Unmarshal(body, &p) != nil || p.Status != resp.StatusCode {
		t.Errorf("%d reply is not a problem: %q %s", resp.StatusCode, ct, body)
	}
	return resp.StatusCode, body
}

type trendReply struct {
	TrialID       string                           `json:"trial_id"`
	SiteID        string                           `json:"site_id"`
	From          time.Time                        `json:"from"`
	To            time.Time                        `json:"to"`
	BucketSeconds float64                          `json:"bucket_seconds"`
	Vitals        []string                         `json:"vitals"`
	Patients      map[string]map[string][]*float64 `json:"patients"`
	Truncated     *bool                            `json:"truncated"`
}

func TestTrendsReply(t *testing.T) {
	e := newTrendEnv(t)
	to := time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)
	from := to.Add(-24 * time.Hour)
	bucket := func(i int) time.Time { return from.Add(time.Duration(i) * 30 * time.Minute) }
	e.add(t, "T1", "S1", "P1", bucket(0), 80, 37.0, 2)
	e.add(t, "T1", "S1", "P1", bucket(0).Add(10*time.Minute), 91, 37.5, -1) // unscored
	e.add(t, "T1", "S1", "P1", bucket(47).Add(time.Second), 100, 38.25, 5)
	e.add(t, "T1", "S1", "P2", bucket(20), 70, 36.5, 0)
	e.add(t, "T1", "S1", "P3", from.Add(-time.Second), 70, 36.5, 0) // before the window
	e.add(t, "T1", "S2", "P9", bucket(3), 70, 36.5, 0)              // another site

	code, body := e.get(t, &piS1, "/v1/trials/T1/sites/S1/trends")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var r trendReply
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if r.TrialID != "T1" || r.SiteID != "S1" || !r.From.Equal(from) || !r.To.Equal(to) || r.BucketSeconds != 1800 ||
		r.Truncated == nil || *r.Truncated {
		t.Errorf("reply head %s", body[:min(len(body), 200)])
	}
	wantVitals := []string{"respiratory_rate", "spo2", "systolic_bp", "heart_rate", "temperature", "news2"}
	if strings.Join(r.Vitals, ",") != strings.Join(wantVitals, ",") {
		t.Errorf("vitals %v, want %v", r.Vitals, wantVitals)
	}
	if len(r.Patients) != 2 || r.Patients["P1"] == nil || r.Patients["P2"] == nil {
		t.Fatalf("patients %v, want P1 and P2", keys(r.Patients))
	}
	want := map[string]map[string]map[int]float64{
		"P1": {"heart_rate": {0: 85.5, 47: 100}, "temperature": {0: 37.3, 47: 38.3}, "news2": {0: 2, 47: 5}},
		"P2": {"heart_rate": {20: 70}, "temperature": {20: 36.5}, "news2": {20: 0}},
	}
	for p, series := range r.Patients {
		if len(series) != len(wantVitals) {
			t.Errorf("%s has series %v, want %v", p, keys(series), wantVitals)
		}
		for _, v := range wantVitals {
			vals := series[v]
			if len(vals) != 48 {
				t.Errorf("%s %s: %d values, want 48", p, v, len(vals))
				continue
			}
			for i, x := range vals {
				w, ok := want[p][v][i]
				switch {
				case !ok && x != nil:
					t.Errorf("%s %s[%d] = %v, want null", p, v, i, *x)
				case ok && (x == nil || *x != w):
					t.Errorf("%s %s[%d] = %v, want %v", p, v, i, x, w)
				}
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestTrendsParams(t *testing.T) {
	e := newTrendEnv(t)
	e.add(t, "T1", "S1", "P1", trendNow.Add(-time.Minute), 80, 37, 1)
	tests := []struct {
		query   string
		code    int
		field   string
		buckets int
		seconds float64
	}{
		{"", 200, "", 48, 1800},
		{"?hours=1&buckets=4", 200, "", 4, 900},
		{"?hours=168&buckets=96", 200, "", 96, 6300},
		{"?hours=1&buckets=7", 200, "", 7, 515},
		{"?hours=0", 400, "hours", 0, 0},
		{"?hours=169", 400, "hours", 0, 0},
		{"?hours=1.5", 400, "hours", 0, 0},
		{"?hours=-1", 400, "hours", 0, 0},
		{"?hours=abc", 400, "hours", 0, 0},
		{"?buckets=3", 400, "buckets", 0, 0},
		{"?buckets=97", 400, "buckets", 0, 0},
		{"?buckets=x", 400, "buckets", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			code, body := e.get(t, &piS1, "/v1/trials/T1/sites/S1/trends"+tc.query)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			if code != 200 {
				var p problem.Details
				if err := json.Unmarshal(body, &p); err != nil || len(p.Errors) != 1 || p.Errors[0].Field != tc.field ||
					p.Errors[0].Message == "" {
					t.Errorf("problem %s, want one error for %s", body, tc.field)
				}
				return
			}
			var r trendReply
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			if r.BucketSeconds != tc.seconds || r.To.Sub(r.From) != time.Duration(tc.buckets)*time.Duration(tc.seconds)*time.Second {
				t.Errorf("bucket_seconds %v, [%v, %v); want %v × %d", r.BucketSeconds, r.From, r.To, tc.seconds, tc.buckets)
			}
			if n := len(r.Patients["P1"]["heart_rate"]); n != tc.buckets {
				t.Errorf("%d values, want %d", n, tc.buckets)
			}
		})
	}
}

func TestTrendsAccess(t *testing.T) {
	e := newTrendEnv(t)
	e.add(t, "T1", "S2", "P1", trendNow.Add(-time.Minute), 80, 37, 1)
	tests := []struct {
		name   string
		claims *auth.Claims
		path   string
		code   int
	}{
		{"PI of another site", &piS1, "/v1/trials/T1/sites/S2/trends", 403},
		{"PI, bad params, another site", &piS1, "/v1/trials/T1/sites/S2/trends?hours=0", 403},
		{"admin of another trial", &adminT2, "/v1/trials/T1/sites/S2/trends", 403},
		{"patient token", &patient, "/v1/trials/T1/sites/S1/trends", 403},
		{"no token", nil, "/v1/trials/T1/sites/S2/trends", 401},
		{"safety of the trial", &safetyT1, "/v1/trials/T1/sites/S2/trends", 200},
		{"admin of the trial", &adminT1, "/v1/trials/T1/sites/S2/trends", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.get(t, tc.claims, tc.path)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			if code == 200 && !strings.Contains(string(body), `"P1":{"respiratory_rate":[`) {
				t.Errorf("reply %s lacks P1", body)
			}
		})
	}
}
