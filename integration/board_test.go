package integration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"vigil/auth"
)

func TestBoardAPIFiltersByToken(t *testing.T) {
	n := start(t, tempDB(t))
	for _, p := range []struct{ id, site string }{{"P1001", "S01"}, {"P1002", "S01"}, {"P2001", "S02"}} {
		r := newReading(p.id, "T008", p.site, vitalsHigh())
		if rep := do(t, "POST", n.base+"/v1/readings", patientToken(t, p.id, "T008", p.site), r); rep.Status != 202 {
			t.Fatalf("post: %d %s", rep.Status, rep.Body)
		}
	}
	pi := staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01")
	safety := staffToken(t, auth.RoleSafety, []string{"T008"})

	// Scoring is asynchronous: wait until both S01 patients are scored.
	var patients []map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; {
		rep := do(t, "GET", n.base+"/v1/trials/T008/sites/S01/patients", pi, nil)
		if rep.Status != 200 {
			t.Fatalf("patients: %d %s", rep.Status, rep.Body)
		}
		var body struct {
			Patients []map[string]any `json:"patients"`
		}
		if err := json.Unmarshal(rep.Body, &body); err != nil {
			t.Fatal(err)
		}
		patients = body.Patients
		if len(patients) == 2 && patients[0]["score"] != nil && patients[1]["score"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("patients not scored: %s", rep.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if patients[0]["patient_id"] != "P1001" || patients[1]["patient_id"] != "P1002" {
		t.Fatalf("patients %v", patients)
	}
	for _, k := range []string{"reading_id", "patient_id", "measured_at", "received_at", "vitals", "symptoms", "score"} {
		if _, ok := patients[0][k]; !ok {
			t.Errorf("patient entry lacks %q", k)
		}
	}

	cases := []struct {
		name, token, path string
		status            int
		count             int // entries in the list, when 200
		list              string
	}{
		{"pi own site", pi, "/v1/trials/T008/sites/S01/patients", 200, 2, "patients"},
		{"pi other site", pi, "/v1/trials/T008/sites/S02/patients", 403, 0, ""},
		{"pi other trial", pi, "/v1/trials/T009/sites/S01/patients", 403, 0, ""},
		{"safety any site", safety, "/v1/trials/T008/sites/S02/patients", 200, 1, "patients"},
		{"patient token", patientToken(t, "P1001", "T008", "S01"), "/v1/trials/T008/sites/S01/patients", 403, 0, ""},
		{"no token", "", "/v1/alerts", 401, 0, ""},
		{"pi alerts see own site only", pi, "/v1/alerts?status=open", 200, 2, "alerts"},
		{"pi alerts of other site", pi, "/v1/alerts?trial=T008&site=S02", 403, 0, ""},
		{"safety alerts of trial", safety, "/v1/alerts?trial=T008&status=open", 200, 3, "alerts"},
		{"bad status", safety, "/v1/alerts?status=closed", 400, 0, ""},
		{"history", pi, "/v1/trials/T008/sites/S01/patients/P1001/readings", 200, 1, "readings"},
		{"history other site", pi, "/v1/trials/T008/sites/S02/patients/P2001/readings", 403, 0, ""},
		{"bad limit", pi, "/v1/trials/T008/sites/S01/patients/P1001/readings?limit=0", 400, 0, ""},
		{"audit without alert_id is for admins", pi, "/v1/audit", 403, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := do(t, "GET", n.base+tc.path, tc.token, nil)
			if rep.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", rep.Status, tc.status, rep.Body)
			}
			if tc.status != 200 {
				if ct := rep.Header.Get("Content-Type"); ct != "application/problem+json" {
					t.Fatalf("content type %q", ct)
				}
				return
			}
			list, _ := rep.json(t)[tc.list].([]any)
			if len(list) != tc.count {
				t.Fatalf("%d %s, want %d: %s", len(list), tc.list, tc.count, rep.Body)
			}
		})
	}

	// The audit trail of an alert the PI can see; another site's alert is "not found".
	rep := do(t, "GET", n.base+"/v1/alerts?trial=T008", safety, nil)
	var body struct {
		Alerts []struct {
			AlertID string `json:"alert_id"`
			SiteID  string `json:"site_id"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal(rep.Body, &body); err != nil {
		t.Fatal(err)
	}
	for _, a := range body.Alerts {
		rep := do(t, "GET", n.base+"/v1/audit?alert_id="+a.AlertID, pi, nil)
		switch a.SiteID {
		case "S01":
			if rep.Status != 200 {
				t.Fatalf("audit own site: %d %s", rep.Status, rep.Body)
			}
			recs, _ := rep.json(t)["records"].([]any)
			if len(recs) == 0 || recs[0].(map[string]any)["action"] != "opened" {
				t.Fatalf("audit records %s", rep.Body)
			}
		default:
			if rep.Status != 404 {
				t.Fatalf("audit other site: %d", rep.Status)
			}
		}
	}
}

func TestHealthAndMetrics(t *testing.T) {
	n := start(t, tempDB(t))
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/": 200} {
		if rep := do(t, "GET", n.base+path, "", nil); rep.Status != want {
			t.Errorf("%s: %d, want %d", path, rep.Status, want)
		}
	}
	staff := staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01")
	for _, tc := range []struct {
		method, path, token string
		status              int
	}{
		{"GET", "/v1/nothing", "", 404},
		{"GET", "/v1/nothing", staff, 404},
		{"GET", "/v1/readings", "", 404},
		{"DELETE", "/v1/alerts", staff, 404},
		{"GET", "/ws", "", 426},
	} {
		rep := do(t, tc.method, n.base+tc.path, tc.token, nil)
		if rep.Status != tc.status || rep.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d %q, want %d problem+json", tc.method, tc.path, rep.Status, rep.Header.Get("Content-Type"), tc.status)
		}
	}
	board := connect(t, n, staff)
	board.subscribe("site:T008:S01", nil)
	if rep := do(t, "POST", n.base+"/v1/readings", patientToken(t, "P1001", "T008", "S01"),
		newReading("P1001", "T008", "S01", vitalsOK())); rep.Status != 202 {
		t.Fatalf("post: %d", rep.Status)
	}
	nextScore(t, board, 2*time.Second)
	// The fan-out worker counts a delivery just after writing it.
	time.Sleep(100 * time.Millisecond)
	body := string(do(t, "GET", n.base+"/metrics", "", nil).Body)
	for _, name := range []string{"vigil_readings_accepted_total", "vigil_scoring_queue_depth", "vigil_hub_sessions",
		"vigil_scoring_latency_seconds", "vigil_hub_frames_dropped_total", "vigil_bus_republish_queue",
		"vigil_predictor_breaker_state"} {
		if !strings.Contains(body, "# TYPE "+name+" ") {
			t.Errorf("metrics lack %s", name)
		}
	}
	// Every stage of the one reading, with its value.
	for _, series := range []string{
		`vigil_http_requests_total{code="202",route="/v1/readings"} 1`,
		`vigil_http_requests_total{code="404",route="/v1/*"} 4`,
		`vigil_http_request_seconds_count{route="/v1/readings"} 1`,
		`vigil_scoring_queue_wait_seconds_count 1`,
		`vigil_bus_published_total{outcome="ok"} 1`,
		`vigil_bus_publish_seconds_count 1`,
		`vigil_hub_rooms 1`,
		`vigil_hub_sessions 1`,
		`vigil_hub_events_delivered_total 1`,
	} {
		if !strings.Contains(body, "\n"+series+"\n") {
			t.Errorf("metrics lack %s", series)
		}
	}
}
