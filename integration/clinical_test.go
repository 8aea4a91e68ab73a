package integration

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigil/auth"
)

const hookSecret = "webhook-secret-for-the-safety-tier"

// clinicalNode starts a node wired to real receivers: the SMTP server for
// the site tier and the webhook for the safety tier.
func clinicalNode(t *testing.T, db string, smtp *smtpReceiver) *node {
	return start(t, db,
		"VIGIL_SMTP_ADDR="+smtp.addr(),
		"VIGIL_SMTP_FROM=vigil@vigil.test",
		"VIGIL_SECRET_SAFETY_HOOK="+hookSecret,
		"VIGIL_MISSED_INTERVAL=1s",
		"VIGIL_ESCALATION_INTERVAL=200ms",
		"VIGIL_ESCALATION_FLOOR=1s", // the tests' protocols page every 2–3 s
		"VIGIL_NOTIFY_BACKOFF=100ms",
	)
}

// carries reports whether text holds value as a word of its own: a vital
// such as 135 must not be found inside a timestamp's nanoseconds.
func carries(text, value string) bool {
	return regexp.MustCompile(`(^|[^0-9.])` + regexp.QuoteMeta(value) + `($|[^0-9])`).MatchString(text)
}

func adminToken(t *testing.T) string {
	return mint(t, auth.Claims{Role: auth.RoleAdmin, Name: "Ada Admin", Trials: []string{"T008"}}, "u-admin")
}

// protocol is T008's protocol: readings every 3 s (grace 1 s), a systolic
// limit, and two tiers: site (email) then safety (webhook), 2 s apart.
func protocol(hookURL string, every string) map[string]any {
	return map[string]any{
		"trial_id": "T008",
		"sites":    []string{"S01", "S02"},
		"schedule": map[string]any{"every": every, "grace": "1s"},
		"thresholds": map[string]any{
			"vitals": []any{map[string]any{"vital": "systolic_bp", "op": ">=", "value": 160, "grade": 3}},
		},
		"escalation": map[string]any{"tiers": []any{
			map[string]any{"name": "site", "after": "2s", "channels": []any{
				map[string]any{"kind": "email", "to": []string{"pi.s01@site.test"}},
				map[string]any{"kind": "board"},
			}},
			map[string]any{"name": "safety", "after": "2s", "channels": []any{
				map[string]any{"kind": "webhook", "url": hookURL, "secret_ref": "SAFETY_HOOK"},
			}},
		}},
	}
}

func putProtocol(t *testing.T, n *node, body map[string]any) {
	t.Helper()
	if rep := do(t, "PUT", n.base+"/v1/trials/T008", adminToken(t), body); rep.Status != 200 {
		t.Fatalf("put protocol: %d %s", rep.Status, rep.Body)
	}
}

func putPatient(t *testing.T, n *node, site, patient string, body map[string]any) {
	t.Helper()
	if rep := do(t, "PUT", n.base+"/v1/trials/T008/sites/"+site+"/patients/"+patient, adminToken(t), body); rep.Status != 200 {
		t.Fatalf("put patient: %d %s", rep.Status, rep.Body)
	}
}

// openAlert waits for the patient's unresolved alert.
func openAlert(t *testing.T, n *node, token, patient string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		rep := do(t, "GET", n.base+"/v1/alerts?trial=T008&limit=1000", token, nil)
		var body struct {
			Alerts []map[string]any `json:"alerts"`
		}
		_ = json.Unmarshal(rep.Body, &body)
		for _, a := range body.Alerts {
			if a["patient_id"] == patient && a["status"] != "resolved" {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no unresolved alert for %s within %s: %s", patient, within, rep.Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func latestScore(t *testing.T, n *node, token, site, patient string) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		rep := do(t, "GET", n.base+"/v1/trials/T008/sites/"+site+"/patients/"+patient+"/readings", token, nil)
		var body struct {
			Readings []map[string]any `json:"readings"`
		}
		_ = json.Unmarshal(rep.Body, &body)
		if len(body.Readings) > 0 {
			if s, ok := body.Readings[len(body.Readings)-1]["score"].(map[string]any); ok {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no score for %s: %s", patient, rep.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRegistryChangesScoring(t *testing.T) {
	smtp := newSMTPReceiver(t)
	hook := newWebhookReceiver(t, hookSecret, 0)
	n := clinicalNode(t, tempDB(t), smtp)
	putProtocol(t, n, protocol(hook.srv.URL, "8h"))
	putPatient(t, n, "S01", "P1001", map[string]any{"status": "enrolled", "spo2_scale": 2})
	putPatient(t, n, "S01", "P1002", map[string]any{"status": "withdrawn"})
	safety := staffToken(t, auth.RoleSafety, []string{"T008"})

	// SpO2 88 % on air: 3 points on scale 1, 0 on the prescribed scale 2,
	// whatever the app says.
	spo2 := func() map[string]any {
		v := vitalsOK()
		v["spo2"], v["spo2_scale"] = 88, 1
		return v
	}
	if rep := do(t, "POST", n.base+"/v1/readings", patientToken(t, "P1001", "T008", "S01"),
		newReading("P1001", "T008", "S01", spo2())); rep.Status != 202 {
		t.Fatalf("post: %d %s", rep.Status, rep.Body)
	}
	s := latestScore(t, n, safety, "S01", "P1001")
	news2 := s["news2"].(map[string]any)
	if news2["spo2_scale"] != float64(2) || news2["spo2_scale_source"] != "registry" ||
		news2["parameters"].(map[string]any)["spo2"] != float64(0) || s["registered"] != true {
		t.Fatalf("registered scale-2 patient scored %v", s)
	}

	// A withdrawn patient's reading is refused and not stored.
	r := newReading("P1002", "T008", "S01", vitalsOK())
	if rep := do(t, "POST", n.base+"/v1/readings", patientToken(t, "P1002", "T008", "S01"), r); rep.Status != 403 {
		t.Fatalf("withdrawn: %d %s", rep.Status, rep.Body)
	}
	rep := do(t, "GET", n.base+"/v1/trials/T008/sites/S01/patients/P1002/readings", safety, nil)
	if strings.Contains(string(rep.Body), r["reading_id"].(string)) {
		t.Fatal("a withdrawn patient's reading was stored")
	}

	// A patient without a record is scored with defaults, marked unregistered,
	// and the protocol's systolic limit raises a high alert.
	v := vitalsOK()
	v["systolic_bp"] = 165
	if rep := do(t, "POST", n.base+"/v1/readings", patientToken(t, "P1003", "T008", "S01"),
		newReading("P1003", "T008", "S01", v)); rep.Status != 202 {
		t.Fatalf("unregistered: %d %s", rep.Status, rep.Body)
	}
	s = latestScore(t, n, safety, "S01", "P1003")
	if s["registered"] != false || s["news2"].(map[string]any)["spo2_scale_source"] != "reading" {
		t.Fatalf("unregistered patient's score %v", s)
	}
	a := openAlert(t, n, safety, "P1003", 5*time.Second)
	if a["severity"] != "high" || fmt.Sprint(a["reasons"]) != "[vital_limit]" {
		t.Fatalf("vital-limit alert %v", a)
	}
}

func TestEscalationNotifiesAndStopsOnAck(t *testing.T) {
	smtp := newSMTPReceiver(t)
	hook := newWebhookReceiver(t, hookSecret, 2) // the first two attempts fail
	n := clinicalNode(t, tempDB(t), smtp)
	// The last tier is paged again every 3 s until someone acknowledges.
	p := protocol(hook.srv.URL, "8h")
	p["escalation"].(map[string]any)["repeat"] = "3s"
	putProtocol(t, n, p)
	pi := mint(t, auth.Claims{Role: auth.RolePI, Name: "Dr Ada Okafor", Trials: []string{"T008"}, Sites: []string{"T008/S01"}}, "u-pi")

	if rep := do(t, "POST", n.base+"/v1/readings", patientToken(t, "P1001", "T008", "S01"),
		newReading("P1001", "T008", "S01", vitalsHigh())); rep.Status != 202 {
		t.Fatalf("post: %d %s", rep.Status, rep.Body)
	}
	a := openAlert(t, n, pi, "P1001", 5*time.Second)
	id := a["alert_id"].(string)

	// Tier 0, the site: an email, with ids and severity only.
	select {
	case m := <-smtp.messages:
		if len(m.To) != 1 || m.To[0] != "pi.s01@site.test" || !strings.Contains(m.Data, id) ||
			!strings.Contains(strings.ToLower(m.Data), "critical") {
			t.Fatalf("email %+v", m)
		}
		for _, phi := range []string{"135", "39.5", "Okafor"} {
			if carries(m.Data, phi) {
				t.Fatalf("email carries %q: %s", phi, m.Data)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no email for tier 0")
	}
	// Not acknowledged within 2 s: tier 1, the safety webhook, delivered on
	// the third attempt, each attempt signed.
	select {
	case <-hook.deliveries:
	case <-time.After(15 * time.Second):
		t.Fatal("no webhook delivery for tier 1")
	}
	hook.mu.Lock()
	attempts, bad, body := 0, hook.badSigs, hook.bodies[0]
	for _, k := range hook.attempts {
		attempts = k
	}
	hook.mu.Unlock()
	if attempts != 3 || bad != 0 || !strings.Contains(body, id) || carries(body, "135") {
		t.Fatalf("webhook: %d attempts, %d bad signatures, body %s", attempts, bad, body)
	}
	if a := openAlert(t, n, pi, "P1001", time.Second); a["status"] != "escalated" || a["tier"] != float64(1) {
		t.Fatalf("after tier 1: %v", a)
	}

	// Acknowledge: signed, audited, escalation stops.
	rep := do(t, "POST", n.base+"/v1/alerts/"+id+"/ack", pi, map[string]any{"reason": "called the patient"})
	if rep.Status != 200 {
		t.Fatalf("ack: %d %s", rep.Status, rep.Body)
	}
	acked := rep.json(t)
	sig, _ := acked["acknowledged"].(map[string]any)
	if acked["status"] != "acknowledged" || sig == nil || sig["name"] != "Dr Ada Okafor" || sig["meaning"] == "" {
		t.Fatalf("acknowledged alert %v", acked)
	}
	cases := []struct {
		name, path, token string
		body              any
		status            int
	}{
		{"ack twice", "/ack", pi, map[string]any{"reason": "again"}, 409},
		{"no reason", "/resolve", pi, map[string]any{"outcome": "ae"}, 422},
		{"bad outcome", "/resolve", pi, map[string]any{"reason": "r", "outcome": "fine"}, 422},
		{"unknown field", "/ack", pi, map[string]any{"reason": "r", "mood": "ok"}, 400},
		{"other site's PI", "/ack", staffToken(t, auth.RolePI, []string{"T008"}, "T008/S02"), map[string]any{"reason": "r"}, 404},
		{"patient token", "/ack", patientToken(t, "P1001", "T008", "S01"), map[string]any{"reason": "r"}, 403},
		{"no token", "/ack", "", map[string]any{"reason": "r"}, 401},
		{"a CRA cannot judge seriousness", "/resolve", mint(t, auth.Claims{Role: auth.RoleCRA, Name: "Sam", Trials: []string{"T008"},
			Sites: []string{"T008/S01"}}, "u-cra"), map[string]any{"reason": "r", "outcome": "sae"}, 403},
		{"resolve", "/resolve", pi, map[string]any{"reason": "reviewed", "outcome": "ae"}, 200},
		{"resolve twice", "/resolve", pi, map[string]any{"reason": "again", "outcome": "ae"}, 409},
		{"escalate resolved", "/escalate", pi, map[string]any{"reason": "r"}, 409},
	}
	for _, tc := range cases {
		rep := do(t, "POST", n.base+"/v1/alerts/"+id+tc.path, tc.token, tc.body)
		if rep.Status != tc.status {
			t.Fatalf("%s: %d %s, want %d", tc.name, rep.Status, rep.Body, tc.status)
		}
	}
	// Nothing more is sent once acknowledged and resolved, though the
	// policy would have paged the last tier again 3 s after it was told.
	select {
	case m := <-smtp.messages:
		t.Fatalf("email after acknowledgement: %+v", m)
	case id := <-hook.deliveries:
		t.Fatalf("webhook after acknowledgement: %s", id)
	case <-time.After(5 * time.Second):
	}

	// The audit trail tells the whole story, with who and why.
	rep = do(t, "GET", n.base+"/v1/audit?alert_id="+id, pi, nil)
	var trail struct {
		Records []map[string]any `json:"records"`
	}
	if err := json.Unmarshal(rep.Body, &trail); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range trail.Records {
		actions = append(actions, r["action"].(string))
	}
	want := []string{"opened", "alert.notified", "alert.escalated", "alert.acknowledged", "alert.resolved"}
	got := strings.Join(actions, ",")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Fatalf("audit actions %v lack %s", actions, w)
		}
	}
	last := trail.Records[len(trail.Records)-1]
	if last["actor_name"] != "Dr Ada Okafor" || last["reason"] != "reviewed" || last["meaning"] == "" {
		t.Fatalf("resolution audit %v", last)
	}
}

func TestEscalationSurvivesRestart(t *testing.T) {
	smtp := newSMTPReceiver(t)
	hook := newWebhookReceiver(t, hookSecret, 0)
	db := tempDB(t)
	n := clinicalNode(t, db, smtp)
	putProtocol(t, n, protocol(hook.srv.URL, "8h"))
	if rep := do(t, "POST", n.base+"/v1/readings", patientToken(t, "P1001", "T008", "S01"),
		newReading("P1001", "T008", "S01", vitalsHigh())); rep.Status != 202 {
		t.Fatalf("post: %d %s", rep.Status, rep.Body)
	}
	select {
	case <-smtp.messages: // tier 0 done; tier 1 due in 2 s
	case <-time.After(10 * time.Second):
		t.Fatal("no tier-0 email")
	}
	n.kill()
	n = clinicalNode(t, db, smtp)
	select {
	case <-hook.deliveries:
	case <-time.After(15 * time.Second):
		t.Fatal("tier 1 was not notified after a restart")
	}
	_ = n
}

func TestMissedReadings(t *testing.T) {
	smtp := newSMTPReceiver(t)
	hook := newWebhookReceiver(t, hookSecret, 0)
	n := clinicalNode(t, tempDB(t), smtp)
	putProtocol(t, n, protocol(hook.srv.URL, "2s")) // silent for 2 s + 1 s grace is missed
	putPatient(t, n, "S01", "P1005", map[string]any{"status": "enrolled"})
	putPatient(t, n, "S01", "P1006", map[string]any{"status": "withdrawn"})
	safety := staffToken(t, auth.RoleSafety, []string{"T008"})

	// P1005 never reports; P1007 reports once and then goes silent.
	if rep := do(t, "POST", n.base+"/v1/readings", patientToken(t, "P1007", "T008", "S01"),
		newReading("P1007", "T008", "S01", vitalsOK())); rep.Status != 202 {
		t.Fatalf("post: %d", rep.Status)
	}
	for _, p := range []string{"P1005", "P1007"} {
		a := openAlert(t, n, safety, p, 3*time.Second+time.Minute)
		if fmt.Sprint(a["reasons"]) != "[missed_readings]" || a["severity"] != "medium" {
			t.Fatalf("%s: %v", p, a)
		}
	}
	// Resolving the silence (the patient is in hospital, say) is not undone
	// by the next check: a new alert needs a whole new window of silence.
	resolver := mint(t, auth.Claims{Role: auth.RoleSafety, Name: "Dr Priya Raman", Trials: []string{"T008"}}, "u-safety")
	a := openAlert(t, n, safety, "P1005", time.Second)
	if rep := do(t, "POST", n.base+"/v1/alerts/"+a["alert_id"].(string)+"/resolve", resolver,
		map[string]any{"reason": "admitted to hospital", "outcome": "sae"}); rep.Status != 200 {
		t.Fatalf("resolve: %d %s", rep.Status, rep.Body)
	}
	time.Sleep(1500 * time.Millisecond) // more than one scheduler tick, less than a window
	rep := do(t, "GET", n.base+"/v1/alerts?trial=T008&site=S01&status=open", safety, nil)
	if strings.Contains(string(rep.Body), `"P1005"`) {
		t.Fatalf("a resolved silence re-opened at the next check: %s", rep.Body)
	}
	// The withdrawn patient is not expected to report.
	rep = do(t, "GET", n.base+"/v1/alerts?trial=T008&site=S01", safety, nil)
	if strings.Contains(string(rep.Body), `"P1006"`) {
		t.Fatalf("withdrawn patient alerted: %s", rep.Body)
	}
}

func TestSignedActionsAndDeadLetters(t *testing.T) {
	smtp := newSMTPReceiver(t)
	// This receiver refuses every delivery as a client error: dead at once.
	hook := newWebhookReceiver(t, "not-the-configured-secret", 0)
	n := clinicalNode(t, tempDB(t), smtp)
	p := protocol(hook.srv.URL, "8h")
	p["require_auth_within"] = "5m"
	// The site tier is told, then the safety webhook after 2 s.
	putProtocol(t, n, p)
	safety := staffToken(t, auth.RoleSafety, []string{"T008"})

	// A severe symptom alone raises an alert.
	r := newReading("P1001", "T008", "S01", vitalsOK())
	r["symptoms"] = []any{map[string]any{"term": "shortness of breath", "grade": 3}}
	if rep := do(t, "POST", n.base+"/v1/readings", patientToken(t, "P1001", "T008", "S01"), r); rep.Status != 202 {
		t.Fatalf("post: %d %s", rep.Status, rep.Body)
	}
	a := openAlert(t, n, safety, "P1001", 5*time.Second)
	id := a["alert_id"].(string)
	if fmt.Sprint(a["reasons"]) != "[symptom_severe]" || a["severity"] != "medium" {
		t.Fatalf("symptom alert %v", a)
	}
	<-smtp.messages // tier 0

	// Escalating by hand notifies the next tier at once.
	if rep := do(t, "POST", n.base+"/v1/alerts/"+id+"/escalate", safety, map[string]any{"reason": "needs the safety team"}); rep.Status != 200 {
		t.Fatalf("escalate: %d %s", rep.Status, rep.Body)
	}
	// The webhook refuses the signature (401): dead-lettered, and visible.
	var dead []map[string]any
	for deadline := time.Now().Add(10 * time.Second); len(dead) == 0; {
		rep := do(t, "GET", n.base+"/v1/notifications?trial=T008&status=dead", safety, nil)
		if rep.Status != 200 {
			t.Fatalf("notifications: %d %s", rep.Status, rep.Body)
		}
		var body struct {
			Notifications []map[string]any `json:"notifications"`
		}
		_ = json.Unmarshal(rep.Body, &body)
		dead = body.Notifications
		if time.Now().After(deadline) {
			t.Fatal("the refused webhook was not dead-lettered")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if dead[0]["alert_id"] != id || dead[0]["last_error"] == "" {
		t.Fatalf("dead letter %v", dead[0])
	}
	pi := staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01")
	if rep := do(t, "GET", n.base+"/v1/notifications?trial=T008", pi, nil); rep.Status != 403 {
		t.Fatalf("a site PI listing the trial's notifications: %d", rep.Status)
	}

	// The protocol requires a recent sign-in to sign: a token without
	// auth_time, or with an old one, cannot acknowledge.
	old := mint(t, auth.Claims{Role: auth.RolePI, Name: "Dr B", Trials: []string{"T008"}, Sites: []string{"T008/S01"},
		AuthTime: jwt.NewNumericDate(time.Now().Add(-time.Hour))}, "u-b")
	fresh := mint(t, auth.Claims{Role: auth.RolePI, Name: "Dr B", Trials: []string{"T008"}, Sites: []string{"T008/S01"},
		AuthTime: jwt.NewNumericDate(time.Now())}, "u-b")
	for _, tc := range []struct {
		name, token string
		status      int
	}{{"no auth_time", pi, 401}, {"old auth_time", old, 401}, {"fresh auth_time", fresh, 200}} {
		rep := do(t, "POST", n.base+"/v1/alerts/"+id+"/ack", tc.token, map[string]any{"reason": "reviewed"})
		if rep.Status != tc.status {
			t.Fatalf("%s: %d %s, want %d", tc.name, rep.Status, rep.Body, tc.status)
		}
	}
}
