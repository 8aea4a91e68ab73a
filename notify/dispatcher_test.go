package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vigil/notify"
	"vigil/scoring"
	"vigil/store"
	"vigil/trial"
)

const hookSecret = "whsec-test-0123456789abcdef"

// checkSigned verifies a webhook request the way a receiver in any language
// would, with crypto primitives only (not notify.Verify), and reports what is
// wrong with it, or "".
func checkSigned(r *http.Request, body []byte, id int64) string {
	ts := r.Header.Get("X-Vigil-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "timestamp " + strconv.Quote(ts) + " is not unix seconds"
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return "timestamp is " + d.String() + " off"
	}
	m := hmac.New(sha256.New, []byte(hookSecret))
	m.Write([]byte(ts + "." + string(body)))
	want := "v1=" + hex.EncodeToString(m.Sum(nil))
	if got := r.Header.Get("X-Vigil-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
		return "signature " + got + ", want " + want
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		return "Content-Type " + got
	}
	if got := r.Header.Get("X-Vigil-Delivery"); got != strconv.FormatInt(id, 10) {
		return "X-Vigil-Delivery " + got + ", want " + strconv.FormatInt(id, 10)
	}
	if r.Method != http.MethodPost {
		return "method " + r.Method
	}
	return ""
}

// TestWebhookRetriesThenDelivers: a receiver that verifies every request and
// fails the first two with 503 gets the notification on the third attempt.
func TestWebhookRetriesThenDelivers(t *testing.T) {
	a := testAlert("A-webhook", scoring.RiskHigh)
	var (
		wantID atomic.Int64 // set once enqueued, before the dispatcher starts
		calls  atomic.Int32
		mu     sync.Mutex
		bodies [][]byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		if problem := checkSigned(r, body, wantID.Load()); problem != "" {
			t.Errorf("request %d: %s", calls.Load()+1, problem)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	s := openOutbox(t)
	ch := trial.Channel{Kind: "webhook", URL: srv.URL + "/hooks/vigil", SecretRef: "HOOK"}
	enqueue(t, s, notificationFor(t, a, 1, ch))
	wantID.Store(only(t, s, a.AlertID).ID)

	d := notify.NewDispatcher(s, map[string]notify.Sender{
		"webhook": notify.NewWebhook(secrets(map[string]string{"HOOK": hookSecret})),
	}, fastConfig())
	start(t, d)

	got := settled(t, s, a.AlertID, 1)[0]
	if got.Status != store.NotifySent || got.Attempts != 3 || got.SentAt == nil {
		t.Fatalf("notification = %+v, want sent on attempt 3", got)
	}
	if !strings.Contains(got.LastError, "503") {
		t.Errorf("LastError = %q, want the earlier 503 kept", got.LastError)
	}
	if c := calls.Load(); c != 3 {
		t.Errorf("receiver saw %d requests, want 3", c)
	}

	mu.Lock()
	defer mu.Unlock()
	for i, b := range bodies {
		assertNoPHI(t, "webhook body", string(b))
		if i > 0 && string(b) != string(bodies[0]) {
			t.Errorf("retry %d sent a different body:\n%s\nvs\n%s", i, b, bodies[0])
		}
	}
	var m map[string]any
	if err := json.Unmarshal(bodies[0], &m); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	wantKeys := []string{"alert_id", "link", "opened_at", "patient_id", "reasons", "severity", "site_id", "status", "tier", "trial_id"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("body fields = %v, want exactly %v", keys, wantKeys)
	}
	var msg notify.Message
	if err := json.Unmarshal(bodies[0], &msg); err != nil {
		t.Fatal(err)
	}
	want := notify.Message{AlertID: a.AlertID, TrialID: "T008", SiteID: "S01", PatientID: "P-0042",
		Severity: "high", Status: "escalated", Reasons: []string{"news2_high", "symptom_severe"}, Tier: 1,
		OpenedAt: a.OpenedAt, Link: "https://vigil.example.org/#alert=A-webhook"}
	if g, w := mustJSON(t, msg), mustJSON(t, want); g != w {
		t.Errorf("message\n got %s\nwant %s", g, w)
	}
}

func only(t *testing.T, s store.Outbox, alertID string) store.Notification {
	t.Helper()
	ns, err := s.Notifications(t.Context(), store.NotificationQuery{AlertID: alertID})
	if err != nil || len(ns) != 1 {
		t.Fatalf("Notifications(%s) = %d, %v; want 1", alertID, len(ns), err)
	}
	return ns[0]
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDispatcherOutcomes: which failures are retried and which dead-letter a
// notification at once.
func TestDispatcherOutcomes(t *testing.T) {
	tests := []struct {
		name        string
		channel     func(url string) trial.Channel
		status      int // the receiver's answer
		maxAttempts int
		wantStatus  string
		wantCalls   int32
		wantErr     string
	}{
		{"400 is dead at once", hookTo, http.StatusBadRequest, 8, store.NotifyDead, 1, "HTTP 400"},
		{"404 is dead at once", hookTo, http.StatusNotFound, 8, store.NotifyDead, 1, "HTTP 404"},
		{"410 is dead at once", hookTo, http.StatusGone, 8, store.NotifyDead, 1, "HTTP 410"},
		{"redirects are not followed", hookTo, http.StatusFound, 8, store.NotifyDead, 1, "HTTP 302"},
		{"429 is retried until MaxAttempts", hookTo, http.StatusTooManyRequests, 3, store.NotifyDead, 3, "HTTP 429"},
		{"408 is retried until MaxAttempts", hookTo, http.StatusRequestTimeout, 2, store.NotifyDead, 2, "HTTP 408"},
		{"500 is retried until MaxAttempts", hookTo, http.StatusInternalServerError, 4, store.NotifyDead, 4, "HTTP 500"},
		{"204 is delivered", hookTo, http.StatusNoContent, 8, store.NotifySent, 1, ""},
		{"missing secret is dead without a request", func(u string) trial.Channel {
			return trial.Channel{Kind: "webhook", URL: u, SecretRef: "UNSET"}
		}, http.StatusOK, 8, store.NotifyDead, 0, "VIGIL_SECRET_UNSET is not set"},
		{"no secret_ref is dead", func(u string) trial.Channel {
			return trial.Channel{Kind: "webhook", URL: u}
		}, http.StatusOK, 8, store.NotifyDead, 0, "no secret_ref"},
		{"plain http off loopback is refused", func(string) trial.Channel {
			return trial.Channel{Kind: "webhook", URL: "http://hooks.example.invalid/x?token=abc", SecretRef: "HOOK"}
		}, http.StatusOK, 8, store.NotifyDead, 0, "plain http"},
		{"unknown kind is dead", func(u string) trial.Channel {
			return trial.Channel{Kind: "carrier-pigeon", URL: u}
		}, http.StatusOK, 8, store.NotifyDead, 0, "no sender"},
		{"board is delivered at once", func(string) trial.Channel {
			return trial.Channel{Kind: "board"}
		}, http.StatusOK, 8, store.NotifySent, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				if tc.status == http.StatusFound {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()

			s := openOutbox(t)
			a := testAlert("A1", scoring.RiskCritical)
			enqueue(t, s, notificationFor(t, a, 0, tc.channel(srv.URL+"/hook")))
			cfg := fastConfig()
			cfg.MaxAttempts = tc.maxAttempts
			d := notify.NewDispatcher(s, map[string]notify.Sender{
				"webhook": notify.NewWebhook(secrets(map[string]string{"HOOK": hookSecret})),
			}, cfg)
			start(t, d)

			got := settled(t, s, a.AlertID, 1)[0]
			wantAttempts := max(int(tc.wantCalls), 1)
			if got.Status != tc.wantStatus || got.Attempts != wantAttempts {
				t.Errorf("notification = %s after %d attempts (%q), want %s after %d",
					got.Status, got.Attempts, got.LastError, tc.wantStatus, wantAttempts)
			}
			if !strings.Contains(got.LastError, tc.wantErr) {
				t.Errorf("LastError = %q, want it to say %q", got.LastError, tc.wantErr)
			}
			if strings.Contains(got.LastError, "token=abc") || strings.Contains(got.LastError, srv.URL) {
				t.Errorf("LastError = %q repeats the URL", got.LastError)
			}
			if c := calls.Load(); c != tc.wantCalls {
				t.Errorf("receiver saw %d requests, want %d", c, tc.wantCalls)
			}
			if tc.wantStatus == store.NotifyDead {
				dead, err := s.Notifications(t.Context(), store.NotificationQuery{Status: store.NotifyDead})
				if err != nil || len(dead) != 1 || dead[0].ID != got.ID {
					t.Errorf("dead letters = %v (err %v), want the notification", dead, err)
				}
			}
		})
	}
}

func hookTo(u string) trial.Channel {
	return trial.Channel{Kind: "webhook", URL: u, SecretRef: "HOOK"}
}

// TestPagerDutyEvent: a PagerDuty-shaped receiver gets Events API v2
// triggers with the mapped severity, one dedup key per alert, and no PHI.
func TestPagerDutyEvent(t *testing.T) {
	const routingKey = "R0UTINGKEY0123456789abcdefghijkl"
	var (
		mu     sync.Mutex
		events = map[string]map[string]any{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		assertNoPHI(t, "PagerDuty event", string(body))
		var ev map[string]any
		if r.URL.Path != "/v2/enqueue" || r.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal(body, &ev) != nil {
			t.Errorf("bad request %s %s: %s", r.URL.Path, r.Header.Get("Content-Type"), body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		events[ev["dedup_key"].(string)] = ev
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"status":"success","message":"Event processed","dedup_key":"x"}`)
	}))
	defer srv.Close()

	s := openOutbox(t)
	ch := trial.Channel{Kind: "pagerduty", URL: srv.URL + "/v2/enqueue", SecretRef: "PD_ONCALL"}
	tests := []struct {
		alert, severity, want string
	}{
		{"A-crit", scoring.RiskCritical, "critical"},
		{"A-high", scoring.RiskHigh, "error"},
		{"A-med", scoring.RiskMedium, "warning"},
	}
	for _, tc := range tests {
		enqueue(t, s, notificationFor(t, testAlert(tc.alert, tc.severity), 2, ch))
	}
	d := notify.NewDispatcher(s, map[string]notify.Sender{
		"pagerduty": notify.NewPagerDuty(secrets(map[string]string{"PD_ONCALL": routingKey})),
	}, fastConfig())
	start(t, d)

	for _, tc := range tests {
		t.Run(tc.severity, func(t *testing.T) {
			n := settled(t, s, tc.alert, 1)[0]
			if n.Status != store.NotifySent || n.Attempts != 1 {
				t.Fatalf("notification = %+v, want sent at once (202)", n)
			}
			mu.Lock()
			ev := events["vigil-"+tc.alert]
			mu.Unlock()
			if ev == nil {
				t.Fatalf("no event with dedup_key vigil-%s", tc.alert)
			}
			if ev["routing_key"] != routingKey || ev["event_action"] != "trigger" {
				t.Errorf("routing_key %v, event_action %v", ev["routing_key"], ev["event_action"])
			}
			p, _ := ev["payload"].(map[string]any)
			if p == nil {
				t.Fatalf("no payload in %v", ev)
			}
			if p["severity"] != tc.want || p["source"] != "vigil" || p["component"] != "T008/S01" {
				t.Errorf("payload severity %v source %v component %v, want %s vigil T008/S01",
					p["severity"], p["source"], p["component"], tc.want)
			}
			summary, _ := p["summary"].(string)
			if !strings.Contains(summary, tc.alert) || !strings.Contains(summary, "T008") || len(summary) > 1024 {
				t.Errorf("summary = %q", summary)
			}
			cd, _ := p["custom_details"].(map[string]any)
			if cd["alert_id"] != tc.alert || cd["patient_id"] != "P-0042" || cd["tier"] != float64(2) {
				t.Errorf("custom_details = %v", cd)
			}
			if reasons := mustJSON(t, cd["reasons"]); reasons != `["news2_high","symptom_severe"]` {
				t.Errorf("custom_details.reasons = %s", reasons)
			}
			links, _ := ev["links"].([]any)
			if len(links) != 1 || links[0].(map[string]any)["href"] != "https://vigil.example.org/#alert="+tc.alert {
				t.Errorf("links = %v", ev["links"])
			}
		})
	}
}

// TestDispatcherConcurrency: deliveries run at most Concurrency at a time,
// and a notification still in flight is not sent again by the next poll.
func TestDispatcherConcurrency(t *testing.T) {
	const n, limit = 24, 3
	var (
		cur, peak atomic.Int32
		mu        sync.Mutex
		seen      = map[string]int{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if c <= p || peak.CompareAndSwap(p, c) {
				break
			}
		}
		mu.Lock()
		seen[r.Header.Get("X-Vigil-Delivery")]++
		mu.Unlock()
		// Longer than several poll intervals, so polls happen mid-delivery.
		time.Sleep(30 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	s := openOutbox(t)
	var ns []store.Notification
	for i := range n {
		ns = append(ns, notificationFor(t, testAlert("A"+strconv.Itoa(i), scoring.RiskHigh), 0, hookTo(srv.URL)))
	}
	enqueue(t, s, ns...)
	cfg := fastConfig()
	cfg.Concurrency = limit
	cfg.Batch = 5
	d := notify.NewDispatcher(s, map[string]notify.Sender{
		"webhook": notify.NewWebhook(secrets(map[string]string{"HOOK": hookSecret})),
	}, cfg)
	start(t, d)

	for i := range n {
		if got := settled(t, s, "A"+strconv.Itoa(i), 1)[0]; got.Status != store.NotifySent || got.Attempts != 1 {
			t.Errorf("A%d: %+v, want sent at once", i, got)
		}
	}
	if p := peak.Load(); p > limit || p < 2 {
		t.Errorf("peak concurrency = %d, want between 2 and %d", p, limit)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Errorf("%d distinct deliveries, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("delivery %s sent %d times, want once", id, c)
		}
	}
}

// TestDispatcherKick: Kick delivers without waiting for the interval.
func TestDispatcherKick(t *testing.T) {
	s := openOutbox(t)
	cfg := fastConfig()
	cfg.Interval = time.Hour
	d := notify.NewDispatcher(s, nil, cfg)
	start(t, d)
	time.Sleep(20 * time.Millisecond) // let the first poll find nothing

	a := testAlert("A-kick", scoring.RiskCritical)
	enqueue(t, s, notificationFor(t, a, 0, trial.Channel{Kind: "board"}))
	d.Kick()
	d.Kick() // never blocks
	if got := settled(t, s, a.AlertID, 1)[0]; got.Status != store.NotifySent {
		t.Errorf("after Kick: %+v, want sent", got)
	}
}

// TestDispatcherShutdown: Run returns when its context ends, cancelling a
// delivery in flight, which stays pending without an attempt counted, to be
// sent again after a restart.
func TestDispatcherShutdown(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client hanging up only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done() // a receiver that never answers
	}))
	defer srv.Close()

	s := openOutbox(t)
	a := testAlert("A-stop", scoring.RiskCritical)
	enqueue(t, s, notificationFor(t, a, 0, hookTo(srv.URL)))
	d := notify.NewDispatcher(s, map[string]notify.Sender{
		"webhook": notify.NewWebhook(secrets(map[string]string{"HOOK": hookSecret})),
	}, fastConfig())
	stop := start(t, d)
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery never arrived")
	}
	began := time.Now()
	stop()
	if el := time.Since(began); el > 2*time.Second {
		t.Errorf("Run took %v to return", el)
	}
	got := only(t, s, a.AlertID)
	if got.Status != store.NotifyPending || got.Attempts != 0 {
		t.Errorf("after shutdown: %+v, want pending with no attempt counted", got)
	}
	due, err := s.DueNotifications(context.Background(), time.Now(), 10)
	if err != nil || len(due) != 1 {
		t.Errorf("due after shutdown = %v (err %v), want it due again", due, err)
	}
}

// TestDispatcherPanickingSender: a sender that panics costs an attempt, not
// the process.
func TestDispatcherPanickingSender(t *testing.T) {
	s := openOutbox(t)
	a := testAlert("A-panic", scoring.RiskCritical)
	enqueue(t, s, notificationFor(t, a, 0, trial.Channel{Kind: "webhook"}))
	cfg := fastConfig()
	cfg.MaxAttempts = 2
	d := notify.NewDispatcher(s, map[string]notify.Sender{"webhook": panicker{}}, cfg)
	start(t, d)
	if got := settled(t, s, a.AlertID, 1)[0]; got.Status != store.NotifyDead || got.Attempts != 2 ||
		!strings.Contains(got.LastError, "panicked") {
		t.Errorf("%+v, want dead after 2 attempts, error saying the sender panicked", got)
	}
}

type panicker struct{}

func (panicker) Send(context.Context, store.Notification, notify.Message) error { panic("boom") }
