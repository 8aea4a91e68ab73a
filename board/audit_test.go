package board

import (
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	_ "modernc.org/sqlite"

	"vigil/auditlog"
	"vigil/auth"
	"vigil/problem"
	"vigil/scoring"
	"vigil/store"
	"vigil/store/sqlite"
)

const testSecret = "board-test-secret-0123456789abcdef!"

// auditEnv is the board API over a real SQLite file, with an audit trail over
// two trials: alerts a1 (T1/S1, opened then updated), a2 (T1/S2) and a3
// (T2/S1), and protocol and registry records of both trials, interleaved.
type auditEnv struct {
	app        *fiber.App
	store      *sqlite.Store
	a1, a2, a3 string
	// ids of the records each admin may see, in id order.
	t1IDs, t2IDs []int64
}

func newAuditEnv(t *testing.T) *auditEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	v, err := auth.NewVerifier(auth.VerifierConfig{Secret: []byte(testSecret), Issuer: "vigil", Audience: "vigil"})
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{ErrorHandler: problem.ErrorHandler})
	New(v, st, slog.New(slog.NewTextHandler(io.Discard, nil))).Register(app)
	e := &auditEnv{app: app, store: st}

	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })

	e.a1 = e.alert(t, "P1", "T1", "S1", "medium")                 // 1: T1
	e.record(t, raw, store.EntityProtocol, "T1")                  // 2: T1
	e.a3 = e.alert(t, "P3", "T2", "S1", "high")                   // 3: T2
	e.record(t, raw, store.EntityPatient, "T1/S1/P1")             // 4: T1
	e.record(t, raw, store.EntityProtocol, "T2")                  // 5: T2
	e.a2 = e.alert(t, "P2", "T1", "S2", "high")                   // 6: T1
	if a := e.alert(t, "P1", "T1", "S1", "critical"); a != e.a1 { // 7: T1
		t.Fatalf("P1's second alert %s, want an update of %s", a, e.a1)
	}
	e.record(t, raw, store.EntityPatient, "T2/S1/P3") // 8: T2
	e.record(t, raw, "visit", "T1")                   // 9: an unknown type, hidden
	e.t1IDs = []int64{1, 2, 4, 6, 7}
	e.t2IDs = []int64{3, 5, 8}
	if n, err := st.VerifyAudit(t.Context()); err != nil || n != 9 {
		t.Fatalf("fixture trail: VerifyAudit = %d, %v; want 9 intact", n, err)
	}
	return e
}

// raiseTo opens an alert or raises its severity.
func raiseTo(cur *scoring.Alert, cand scoring.Alert) (scoring.Alert, bool) {
	if cur == nil {
		return cand, true
	}
	next := *cur
	next.Severity = cand.Severity
	return next, next.Severity != cur.Severity
}

func (e *auditEnv) alert(t *testing.T, patient, trial, site, severity string) string {
	t.Helper()
	a, changed, err := e.store.ApplyAlert(t.Context(), scoring.Alert{PatientID: patient, TrialID: trial, SiteID: site,
		Severity: severity, Reasons: []string{scoring.ReasonNEWS2High}, ReadingID: uuid.NewString()}, raiseTo)
	if err != nil || !changed {
		t.Fatalf("ApplyAlert: changed %v, err %v", changed, err)
	}
	return a.AlertID
}

// record appends a chained protocol or registry record straight into the
// file, as the trial store will: the write paths that make them are not this
// package's to call.
func (e *auditEnv) record(t *testing.T, db *sql.DB, typ, id string) {
	t.Helper()
	var lastID int64
	var lastHash string
	err := db.QueryRowContext(t.Context(), `SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1`).Scan(&lastID, &lastHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	nv := `{"id":"` + id + `"}`
	f := auditlog.Fields{ID: lastID + 1, EntityType: typ, EntityID: id, Actor: "u-admin", ActorName: "Ana Admin",
		ActorRole: "admin", Action: "put", Reason: "set up", NewValue: &nv,
		At: auditlog.FormatTime(time.Now()), PrevHash: lastHash}
	_, err = db.ExecContext(t.Context(), `INSERT INTO audit (id, entity_type, entity_id, actor, actor_name,
		actor_role, action, reason, meaning, old_value, new_value, at, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', NULL, ?, ?, ?, ?)`,
		f.ID, f.EntityType, f.EntityID, f.Actor, f.ActorName, f.ActorRole, f.Action, f.Reason, nv, f.At,
		f.PrevHash, auditlog.Hash(f))
	if err != nil {
		t.Fatal(err)
	}
}

func token(t *testing.T, c auth.Claims) string {
	t.Helper()
	if c.Subject == "" {
		c.RegisteredClaims = jwt.RegisteredClaims{Subject: "u-" + c.Role}
	}
	tok, err := auth.Issuer{Secret: []byte(testSecret), Issuer: "vigil", Audience: "vigil"}.Mint(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var (
	adminT1  = auth.Claims{Role: auth.RoleAdmin, Trials: []string{"T1"}}
	adminT2  = auth.Claims{Role: auth.RoleAdmin, Trials: []string{"T2"}}
	adminAll = auth.Claims{Role: auth.RoleAdmin, Trials: []string{"T1", "T2"}}
	piS1     = auth.Claims{Role: auth.RolePI, Trials: []string{"T1"}, Sites: []string{"T1/S1"}}
	safetyT1 = auth.Claims{Role: auth.RoleSafety, Trials: []string{"T1"}}
	patient  = auth.Claims{Role: auth.RolePatient, Trial: "T1", Site: "S1"}
)

type auditReply struct {
	Records []store.AuditRecord `json:"records"`
	Next    string              `json:"next"`
}

// get asks for /v1/audit with query as c's token and decodes a 200's body
// into out, or checks that an error is a problem.
func (e *auditEnv) get(t *testing.T, c *auth.Claims, query url.Values, out *auditReply) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/v1/audit?"+query.Encode(), nil)
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
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, problem.ContentType) {
			t.Errorf("%d reply has Content-Type %q, want %s", resp.StatusCode, ct, problem.ContentType)
		}
		var p problem.Details
		if err := json.Unmarshal(body, &p); err != nil || p.Status != resp.StatusCode || p.Type == "" {
			t.Errorf("%d reply %s is not a problem (%v)", resp.StatusCode, body, err)
		}
		return resp.StatusCode
	}
	if out != nil {
		*out = auditReply{}
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if out.Records == nil {
			t.Errorf("reply %s: records is not a list", body)
		}
	}
	return resp.StatusCode
}

func ids(recs []store.AuditRecord) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func TestAuditByAlert(t *testing.T) {
	e := newAuditEnv(t)
	tests := []struct {
		name    string
		claims  *auth.Claims
		alertID string
		code    int
		want    []int64
	}{
		{"PI of the alert's site", &piS1, e.a1, 200, []int64{1, 7}},
		{"safety of the trial", &safetyT1, e.a2, 200, []int64{6}},
		{"admin of the trial", &adminT1, e.a1, 200, []int64{1, 7}},
		{"PI of another site", &piS1, e.a2, 404, nil},
		{"admin of another trial", &adminT2, e.a1, 404, nil},
		{"unknown alert", &adminAll, "no-such-alert", 404, nil},
		{"no token", nil, e.a1, 401, nil},
		{"patient token", &patient, e.a1, 403, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r auditReply
			if code := e.get(t, tc.claims, q("alert_id", tc.alertID), &r); code != tc.code {
				t.Fatalf("status %d, want %d", code, tc.code)
			}
			if tc.code != 200 {
				return
			}
			if !slices.Equal(ids(r.Records), tc.want) {
				t.Errorf("records %v, want %v", ids(r.Records), tc.want)
			}
			for _, rec := range r.Records {
				if rec.AlertID != tc.alertID || rec.Hash == "" {
					t.Errorf("record %d: alert_id %q hash %q, want %s and a hash", rec.ID, rec.AlertID, rec.Hash, tc.alertID)
				}
			}
		})
	}
}

func TestAuditWholeTrailIsForAdmins(t *testing.T) {
	e := newAuditEnv(t)
	for _, c := range []*auth.Claims{&piS1, &safetyT1} {
		if code := e.get(t, c, q(), nil); code != 403 {
			t.Errorf("%s without alert_id: status %d, want 403", c.Role, code)
		}
		if code := e.get(t, c, q("entity_type", "protocol", "entity_id", "T1"), nil); code != 403 {
			t.Errorf("%s with entity filters: status %d, want 403", c.Role, code)
		}
	}
}

func TestAuditWholeTrail(t *testing.T) {
	e := newAuditEnv(t)
	tests := []struct {
		name   string
		claims *auth.Claims
		want   []int64
	}{
		{"admin of T1", &adminT1, e.t1IDs},
		{"admin of T2", &adminT2, e.t2IDs},
		{"admin of both", &adminAll, []int64{1, 2, 3, 4, 5, 6, 7, 8}},
		{"admin of no trial here", &auth.Claims{Role: auth.RoleAdmin, Trials: []string{"T9"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r auditReply
			if code := e.get(t, tc.claims, q(), &r); code != 200 {
				t.Fatalf("status %d", code)
			}
			if !slices.Equal(ids(r.Records), tc.want) || r.Next != "" {
				t.Errorf("records %v next %q, want %v and no next", ids(r.Records), r.Next, tc.want)
			}
		})
	}

	// The records carry the chain, so an auditor can check it from the API.
	var r auditReply
	e.get(t, &adminAll, q(), &r)
	for i, rec := range r.Records {
		if h := auditlog.Hash(auditlog.FromRecord(rec)); h != rec.Hash {
			t.Errorf("record %d: hash %s, recomputed from the reply %s", rec.ID, rec.Hash, h)
		}
		if i > 0 && rec.PrevHash != r.Records[i-1].Hash {
			t.Errorf("record %d: prev_hash does not link to record %d", rec.ID, r.Records[i-1].ID)
		}
	}
}

func TestAuditPaging(t *testing.T) {
	e := newAuditEnv(t)
	for _, limit := range []string{"1", "2", "5"} {
		t.Run("limit "+limit, func(t *testing.T) {
			var got []int64
			params := q("limit", limit)
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("paging does not end")
				}
				var r auditReply
				if code := e.get(t, &adminT1, params, &r); code != 200 {
					t.Fatalf("status %d", code)
				}
				got = append(got, ids(r.Records)...)
				if r.Next == "" {
					break
				}
				params.Set("after", r.Next)
			}
			if !slices.Equal(got, e.t1IDs) {
				t.Errorf("pages gave %v, want %v", got, e.t1IDs)
			}
		})
	}

	t.Run("a page cut short by the scan budget continues", func(t *testing.T) {
		defer func(n int) { auditScanBudget = n }(auditScanBudget)
		auditScanBudget = 1
		// T2's records are few and far between: with a budget of one batch
		// a page stops early, maybe empty, but says where to go on.
		var (
			r   auditReply
			got []int64
		)
		params := q("limit", "1")
		for pages := 0; pages < 20; pages++ {
			if code := e.get(t, &adminT2, params, &r); code != 200 {
				t.Fatalf("status %d", code)
			}
			got = append(got, ids(r.Records)...)
			if r.Next == "" {
				break
			}
			params.Set("after", r.Next)
		}
		if !slices.Equal(got, e.t2IDs) {
			t.Errorf("pages gave %v, want %v", got, e.t2IDs)
		}
	})
}

func TestAuditFilters(t *testing.T) {
	e := newAuditEnv(t)
	tests := []struct {
		name   string
		claims *auth.Claims
		query  url.Values
		code   int
		want   []int64
	}{
		{"protocols of my trial", &adminT1, q("entity_type", "protocol"), 200, []int64{2}},
		{"one protocol", &adminT2, q("entity_type", "protocol", "entity_id", "T2"), 200, []int64{5}},
		{"another trial's protocol", &adminT1, q("entity_type", "protocol", "entity_id", "T2"), 403, nil},
		{"patients of both trials", &adminAll, q("entity_type", "patient"), 200, []int64{4, 8}},
		{"one patient", &adminT1, q("entity_type", "patient", "entity_id", "T1/S1/P1"), 200, []int64{4}},
		{"another trial's patient", &adminT1, q("entity_type", "patient", "entity_id", "T2/S1/P3"), 403, nil},
		{"a patient id without its trial", &adminT1, q("entity_type", "patient", "entity_id", "P1"), 400, nil},
		{"alerts of my trial", &adminT1, q("entity_type", "alert"), 200, []int64{1, 6, 7}},
		{"one alert", &adminT1, q("entity_type", "alert", "entity_id", e.a1), 200, []int64{1, 7}},
		{"one alert after a cursor", &adminT1, q("entity_type", "alert", "entity_id", e.a1, "after", "1"), 200, []int64{7}},
		{"another trial's alert", &adminT1, q("entity_type", "alert", "entity_id", e.a3), 404, nil},
		{"unknown alert", &adminT1, q("entity_type", "alert", "entity_id", "nope"), 404, nil},
		{"after a cursor", &adminT1, q("after", "4"), 200, []int64{6, 7}},
		{"after the end", &adminT1, q("after", "100"), 200, nil},
		{"unknown entity type", &adminT1, q("entity_type", "visit"), 400, nil},
		{"entity id alone", &adminT1, q("entity_id", "T1"), 400, nil},
		{"bad cursor", &adminT1, q("after", "abc"), 400, nil},
		{"negative cursor", &adminT1, q("after", "-1"), 400, nil},
		{"zero limit", &adminT1, q("limit", "0"), 400, nil},
		{"limit over 1000", &adminT1, q("limit", "1001"), 400, nil},
		{"alert_id with entity filters", &adminT1, q("alert_id", e.a1, "entity_type", "alert"), 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r auditReply
			if code := e.get(t, tc.claims, tc.query, &r); code != tc.code {
				t.Fatalf("status %d, want %d", code, tc.code)
			}
			if tc.code == 200 && (!slices.Equal(ids(r.Records), tc.want) || r.Next != "") {
				t.Errorf("records %v next %q, want %v", ids(r.Records), r.Next, tc.want)
			}
		})
	}
}
