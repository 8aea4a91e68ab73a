package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"vigil/scoring"
	"vigil/store"
	"vigil/trial"
)

// Outbox tests run against the store's own clock (EnqueueNotifications makes
// a notification due "now"), so they reason from the CreatedAt the store
// reports rather than from base. Times they pass in are whole seconds, which
// every store keeps exactly.

func notification(alertID, trialID string, tier int, ch trial.Channel) store.Notification {
	a := scoring.Alert{
		Kind: "alert", AlertID: alertID, PatientID: "P1", TrialID: trialID, SiteID: "S1",
		Severity: scoring.RiskHigh, Status: scoring.StatusEscalated,
		Reasons: []string{scoring.ReasonNEWS2High}, OpenedAt: at(0), UpdatedAt: at(1), Tier: tier,
	}
	payload, err := json.Marshal(a)
	if err != nil {
		panic(err)
	}
	return store.Notification{AlertID: alertID, TrialID: trialID, Tier: tier, Channel: ch, Payload: payload}
}

var (
	hook  = trial.Channel{Kind: "webhook", URL: "https://hooks.example/vigil", SecretRef: "HOOK"}
	mail  = trial.Channel{Kind: "email", To: []string{"oncall@example.org", "pi@example.org"}}
	pager = trial.Channel{Kind: "pagerduty", URL: "https://events.pagerduty.com/v2/enqueue", SecretRef: "PD"}
)

func mustEnqueue(t *testing.T, s store.Store, ns ...store.Notification) {
	t.Helper()
	if err := s.EnqueueNotifications(t.Context(), ns); err != nil {
		t.Fatalf("EnqueueNotifications: %v", err)
	}
}

func mustNotifications(t *testing.T, s store.Store, q store.NotificationQuery) []store.Notification {
	t.Helper()
	ns, err := s.Notifications(t.Context(), q)
	if err != nil {
		t.Fatalf("Notifications(%+v): %v", q, err)
	}
	return ns
}

func mustDue(t *testing.T, s store.Store, now time.Time, limit int) []store.Notification {
	t.Helper()
	ns, err := s.DueNotifications(t.Context(), now, limit)
	if err != nil {
		t.Fatalf("DueNotifications(%v): %v", now, err)
	}
	return ns
}

func mustRecord(t *testing.T, s store.Store, id int64, status string, next time.Time, lastErr string) {
	t.Helper()
	if err := s.RecordAttempt(t.Context(), id, status, next, lastErr); err != nil {
		t.Fatalf("RecordAttempt(%d, %s): %v", id, status, err)
	}
}

// only returns the one notification q selects.
func only(t *testing.T, s store.Store, q store.NotificationQuery) store.Notification {
	t.Helper()
	ns := mustNotifications(t, s, q)
	if len(ns) != 1 {
		t.Fatalf("Notifications(%+v) = %d notifications, want 1", q, len(ns))
	}
	return ns[0]
}

// brief describes n without its payload, for failure messages.
func brief(n store.Notification) string {
	sent := "never"
	if n.SentAt != nil {
		sent = n.SentAt.String()
	}
	return fmt.Sprintf("{id %d alert %s trial %s tier %d kind %s status %s attempts %d next %v error %q created %v sent %s}",
		n.ID, n.AlertID, n.TrialID, n.Tier, n.Channel.Kind, n.Status, n.Attempts, n.NextAttemptAt, n.LastError, n.CreatedAt, sent)
}

func briefs(ns []store.Notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = brief(n)
	}
	return out
}

func notificationIDs(ns []store.Notification) []int64 {
	ids := make([]int64, len(ns))
	for i, n := range ns {
		ids[i] = n.ID
	}
	return ids
}

// sameJSON compares two JSON documents by value: a store may keep them in a
// normalised form (PostgreSQL jsonb reorders keys).
func sameJSON(t *testing.T, what string, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %s is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: %s is not JSON: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// testOutboxLifecycle follows one notification from enqueue to delivery:
// due at once, a failed attempt postpones it, it is not due before the
// postponed time and is due at it, and once sent it is never due again.
func testOutboxLifecycle(t *testing.T, s store.Store) {
	want := notification("A1", "T1", 0, hook)
	before := time.Now()
	mustEnqueue(t, s, want)

	n := only(t, s, store.NotificationQuery{AlertID: "A1"})
	if n.ID == 0 || n.AlertID != "A1" || n.TrialID != "T1" || n.Tier != 0 ||
		n.Status != store.NotifyPending || n.Attempts != 0 || n.LastError != "" || n.SentAt != nil {
		t.Fatalf("enqueued = %s, want a pending notification of A1/T1 tier 0, no attempts", brief(n))
	}
	if !reflect.DeepEqual(n.Channel, hook) {
		t.Errorf("channel = %+v, want %+v", n.Channel, hook)
	}
	sameJSON(t, "payload", n.Payload, want.Payload)
	if n.CreatedAt.Before(before.Add(-time.Minute)) || n.CreatedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("CreatedAt = %v, want about now (%v)", n.CreatedAt, before)
	}
	if !n.NextAttemptAt.Equal(n.CreatedAt) {
		t.Errorf("NextAttemptAt = %v, want CreatedAt %v (due at once)", n.NextAttemptAt, n.CreatedAt)
	}

	created := n.CreatedAt
	if due := mustDue(t, s, created.Add(-time.Second), 10); len(due) != 0 {
		t.Errorf("due before it was enqueued: %v", notificationIDs(due))
	}
	due := mustDue(t, s, created, 10)
	if !slices.Equal(notificationIDs(due), []int64{n.ID}) {
		t.Fatalf("due at CreatedAt = %v, want [%d] (at or before now)", notificationIDs(due), n.ID)
	}
	if !reflect.DeepEqual(due[0], n) {
		t.Errorf("DueNotifications row = %s\nwant Notifications row %s", brief(due[0]), brief(n))
	}

	next := created.Add(time.Hour).Truncate(time.Second)
	mustRecord(t, s, n.ID, store.NotifyPending, next, "HTTP 503")
	got := only(t, s, store.NotificationQuery{AlertID: "A1"})
	if got.Status != store.NotifyPending || got.Attempts != 1 || !got.NextAttemptAt.Equal(next) ||
		got.LastError != "HTTP 503" || got.SentAt != nil {
		t.Fatalf("after a failed attempt = %s, want pending, 1 attempt, next %v, error HTTP 503", brief(got), next)
	}
	if due := mustDue(t, s, next.Add(-time.Second), 10); len(due) != 0 {
		t.Errorf("due before its next attempt: %v", notificationIDs(due))
	}
	if due := mustDue(t, s, next, 10); !slices.Equal(notificationIDs(due), []int64{n.ID}) {
		t.Errorf("due at its next attempt = %v, want [%d]", notificationIDs(due), n.ID)
	}

	mustRecord(t, s, n.ID, store.NotifySent, time.Time{}, "")
	got = only(t, s, store.NotificationQuery{AlertID: "A1"})
	if got.Status != store.NotifySent || got.Attempts != 2 || got.SentAt == nil {
		t.Fatalf("after delivery = %s, want sent, 2 attempts, SentAt set", brief(got))
	}
	if got.LastError != "HTTP 503" {
		t.Errorf("LastError = %q, want the earlier failure kept (HTTP 503)", got.LastError)
	}
	if got.SentAt.Before(created.Add(-time.Minute)) {
		t.Errorf("SentAt = %v, before CreatedAt %v", *got.SentAt, created)
	}
	if due := mustDue(t, s, next.Add(24*time.Hour), 10); len(due) != 0 {
		t.Errorf("a sent notification is due: %v", notificationIDs(due))
	}
}

// testOutboxDead: giving up is final and visible as a dead letter.
func testOutboxDead(t *testing.T, s store.Store) {
	mustEnqueue(t, s, notification("A1", "T1", 0, hook), notification("A1", "T1", 0, mail))
	ns := mustNotifications(t, s, store.NotificationQuery{AlertID: "A1"})
	if len(ns) != 2 {
		t.Fatalf("%d notifications, want 2", len(ns))
	}
	deadID, liveID := ns[0].ID, ns[1].ID
	mustRecord(t, s, deadID, store.NotifyDead, time.Time{}, "HTTP 400 (permanent)")

	dead := mustNotifications(t, s, store.NotificationQuery{Status: store.NotifyDead})
	if len(dead) != 1 || dead[0].ID != deadID || dead[0].Attempts != 1 ||
		dead[0].LastError != "HTTP 400 (permanent)" || dead[0].SentAt != nil {
		t.Fatalf("dead letters = %v, want only %d, 1 attempt, its error, never sent", briefs(dead), deadID)
	}
	due := mustDue(t, s, time.Now().Add(time.Hour), 10)
	if !slices.Equal(notificationIDs(due), []int64{liveID}) {
		t.Errorf("due = %v, want only the live one [%d]", notificationIDs(due), liveID)
	}

	// A huge error (a receiver's whole page, say) may be cut short, but
	// what is kept is its start and still valid text.
	huge := "HTTP 500: " + strings.Repeat("é", 20000)
	mustRecord(t, s, liveID, store.NotifyDead, time.Time{}, huge)
	var got store.Notification
	for _, n := range mustNotifications(t, s, store.NotificationQuery{AlertID: "A1"}) {
		if n.ID == liveID {
			got = n
		}
	}
	if got.Status != store.NotifyDead || got.LastError == "" || !strings.HasPrefix(huge, got.LastError) || !utf8.ValidString(got.LastError) {
		t.Errorf("stored error of %d bytes: %d bytes kept, prefix %v, valid %v", len(huge), len(got.LastError),
			strings.HasPrefix(huge, got.LastError), utf8.ValidString(got.LastError))
	}
}

// testOutboxFinal: sent and dead never change again, whatever is reported
// later, and bad reports are refused.
func testOutboxFinal(t *testing.T, s store.Store) {
	mustEnqueue(t, s, notification("A1", "T1", 0, hook), notification("A2", "T1", 0, hook))
	sent := only(t, s, store.NotificationQuery{AlertID: "A1"})
	dead := only(t, s, store.NotificationQuery{AlertID: "A2"})
	mustRecord(t, s, sent.ID, store.NotifySent, time.Time{}, "")
	mustRecord(t, s, dead.ID, store.NotifyDead, time.Time{}, "gave up")

	later := time.Now().Add(time.Minute).Truncate(time.Second)
	for _, id := range []int64{sent.ID, dead.ID} {
		for _, st := range []string{store.NotifyPending, store.NotifySent, store.NotifyDead} {
			if err := s.RecordAttempt(t.Context(), id, st, later, "late report"); err != nil {
				t.Errorf("RecordAttempt(%d, %s) on a final notification: %v, want no error", id, st, err)
			}
		}
	}
	gotSent := only(t, s, store.NotificationQuery{AlertID: "A1"})
	gotDead := only(t, s, store.NotificationQuery{AlertID: "A2"})
	if gotSent.Status != store.NotifySent || gotSent.Attempts != 1 || gotSent.LastError != "" {
		t.Errorf("sent after late reports = %s, want unchanged", brief(gotSent))
	}
	if gotDead.Status != store.NotifyDead || gotDead.Attempts != 1 || gotDead.LastError != "gave up" {
		t.Errorf("dead after late reports = %s, want unchanged", brief(gotDead))
	}

	if err := s.RecordAttempt(t.Context(), 1<<40, store.NotifySent, time.Time{}, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordAttempt(unknown id) = %v, want ErrNotFound", err)
	}

	mustEnqueue(t, s, notification("A3", "T1", 0, hook))
	live := only(t, s, store.NotificationQuery{AlertID: "A3"})
	bad := []struct {
		name   string
		status string
		next   time.Time
	}{
		{"unknown status", "delivered", later},
		{"empty status", "", later},
		{"pending without a next time", store.NotifyPending, time.Time{}},
	}
	for _, tc := range bad {
		if err := s.RecordAttempt(t.Context(), live.ID, tc.status, tc.next, "x"); err == nil {
			t.Errorf("RecordAttempt with %s: no error", tc.name)
		}
	}
	if got := only(t, s, store.NotificationQuery{AlertID: "A3"}); got.Attempts != 0 || got.Status != store.NotifyPending {
		t.Errorf("after refused reports = %s, want untouched", brief(got))
	}
}

// testOutboxQuery: Notifications filters by status, alert and trial, newest
// first, and honours Limit.
func testOutboxQuery(t *testing.T, s store.Store) {
	mustEnqueue(t, s,
		notification("A1", "T1", 0, hook),
		notification("A1", "T1", 0, mail),
	)
	mustEnqueue(t, s, notification("A2", "T1", 1, pager))
	mustEnqueue(t, s, notification("A3", "T2", 0, hook))

	all := mustNotifications(t, s, store.NotificationQuery{})
	if len(all) != 4 {
		t.Fatalf("all = %d notifications, want 4", len(all))
	}
	ids := notificationIDs(all)
	if !slices.IsSortedFunc(ids, func(a, b int64) int { return int(b - a) }) {
		t.Errorf("ids = %v, want newest (highest id) first", ids)
	}
	byAlert := map[string][]int64{}
	for _, n := range all {
		byAlert[n.AlertID] = append(byAlert[n.AlertID], n.ID)
	}
	// The last enqueued is newest; within one call, later elements are newer.
	if all[0].AlertID != "A3" || all[3].AlertID != "A1" || all[3].Channel.Kind != "webhook" {
		t.Errorf("order = %v, want A3 first and A1's webhook last", ids)
	}
	mustRecord(t, s, byAlert["A2"][0], store.NotifyDead, time.Time{}, "no route")
	mustRecord(t, s, byAlert["A3"][0], store.NotifySent, time.Time{}, "")

	tests := []struct {
		name string
		q    store.NotificationQuery
		want []int64
	}{
		{"alert", store.NotificationQuery{AlertID: "A1"}, byAlert["A1"]},
		{"trial", store.NotificationQuery{TrialID: "T1"}, append(slices.Clone(byAlert["A2"]), byAlert["A1"]...)},
		{"status pending", store.NotificationQuery{Status: store.NotifyPending}, byAlert["A1"]},
		{"status dead", store.NotificationQuery{Status: store.NotifyDead}, byAlert["A2"]},
		{"status sent", store.NotificationQuery{Status: store.NotifySent}, byAlert["A3"]},
		{"trial and status", store.NotificationQuery{TrialID: "T1", Status: store.NotifyDead}, byAlert["A2"]},
		{"nothing matches", store.NotificationQuery{TrialID: "T2", Status: store.NotifyDead}, []int64{}},
		{"unknown alert", store.NotificationQuery{AlertID: "nope"}, []int64{}},
		{"limit", store.NotificationQuery{Limit: 2}, ids[:2]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := notificationIDs(mustNotifications(t, s, tc.q))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Notifications(%+v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

// testOutboxDueOrder: due notifications come in the order they fell due,
// not the order they were made, and limit caps them.
func testOutboxDueOrder(t *testing.T, s store.Store) {
	mustEnqueue(t, s, notification("A1", "T1", 0, hook))
	mustEnqueue(t, s, notification("A2", "T1", 0, hook))
	mustEnqueue(t, s, notification("A3", "T1", 0, hook))
	a1 := only(t, s, store.NotificationQuery{AlertID: "A1"})
	a2 := only(t, s, store.NotificationQuery{AlertID: "A2"})
	a3 := only(t, s, store.NotificationQuery{AlertID: "A3"})

	// A1 is retried last, A2 first; A3 has not been tried and is due now.
	t0 := a3.CreatedAt.Truncate(time.Second)
	mustRecord(t, s, a1.ID, store.NotifyPending, t0.Add(2*time.Hour), "timeout")
	mustRecord(t, s, a2.ID, store.NotifyPending, t0.Add(time.Hour), "timeout")

	tests := []struct {
		name  string
		now   time.Time
		limit int
		want  []int64
	}{
		{"only the untried one", t0.Add(30 * time.Minute), 10, []int64{a3.ID}},
		{"in due order", t0.Add(3 * time.Hour), 10, []int64{a3.ID, a2.ID, a1.ID}},
		{"limit keeps the oldest due", t0.Add(3 * time.Hour), 2, []int64{a3.ID, a2.ID}},
		{"exactly at A2's time", t0.Add(time.Hour), 10, []int64{a3.ID, a2.ID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := notificationIDs(mustDue(t, s, tc.now, tc.limit)); !slices.Equal(got, tc.want) {
				t.Errorf("DueNotifications(%v, %d) = %v, want %v", tc.now, tc.limit, got, tc.want)
			}
		})
	}
}

// testOutboxAllOrNothing: an invalid notification fails the whole call.
func testOutboxAllOrNothing(t *testing.T, s store.Store) {
	good := notification("A1", "T1", 0, hook)
	tests := []struct {
		name string
		bad  func(n store.Notification) store.Notification
	}{
		{"payload not JSON", func(n store.Notification) store.Notification { n.Payload = json.RawMessage("{"); return n }},
		{"no payload", func(n store.Notification) store.Notification { n.Payload = nil; return n }},
		{"no alert id", func(n store.Notification) store.Notification { n.AlertID = ""; return n }},
		{"no channel kind", func(n store.Notification) store.Notification { n.Channel = trial.Channel{}; return n }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.EnqueueNotifications(t.Context(), []store.Notification{good, tc.bad(good)}); err == nil {
				t.Fatal("EnqueueNotifications with an invalid notification: no error")
			}
			if ns := mustNotifications(t, s, store.NotificationQuery{}); len(ns) != 0 {
				t.Errorf("stored %d notifications of a failed call, want 0", len(ns))
			}
		})
	}
	if err := s.EnqueueNotifications(t.Context(), nil); err != nil {
		t.Errorf("EnqueueNotifications(nil) = %v, want nil", err)
	}
}

// testOutboxWithUpdateAlert: notifications returned by UpdateAlert's fn
// commit with the alert change, and nothing is enqueued when the change is
// not stored.
func testOutboxWithUpdateAlert(t *testing.T, s store.Store) {
	a := mustApply(t, s, candidate("P1", "T1", "S1", "high", 1), raise)
	change := store.Change{Actor: store.System, Action: "escalated", Reason: "tier 0 due", At: at(2)}
	escalate := func(notify ...store.Notification) func(cur scoring.Alert) (store.AlertChange, error) {
		return func(cur scoring.Alert) (store.AlertChange, error) {
			next := cur
			next.Status = scoring.StatusEscalated
			next.Tier = 0
			next.UpdatedAt = at(2)
			return store.AlertChange{Alert: next, Notify: notify}, nil
		}
	}

	// fn fails: nothing is written.
	boom := errors.New("boom")
	_, err := s.UpdateAlert(t.Context(), a.AlertID, func(scoring.Alert) (store.AlertChange, error) {
		return store.AlertChange{Notify: []store.Notification{notification(a.AlertID, "T1", 0, hook)}}, boom
	}, change)
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateAlert with failing fn = %v, want boom", err)
	}
	if ns := mustNotifications(t, s, store.NotificationQuery{AlertID: a.AlertID}); len(ns) != 0 {
		t.Fatalf("fn failed but %d notifications were enqueued", len(ns))
	}

	// An invalid notification rolls the alert change back with it.
	bad := notification(a.AlertID, "T1", 0, hook)
	bad.Payload = json.RawMessage("not json")
	if _, err := s.UpdateAlert(t.Context(), a.AlertID, escalate(notification(a.AlertID, "T1", 0, mail), bad), change); err == nil {
		t.Fatal("UpdateAlert with an invalid notification: no error")
	}
	if cur, err := s.Alert(t.Context(), a.AlertID); err != nil || cur.Status != scoring.StatusOpen {
		t.Fatalf("after a failed enqueue the alert is %+v (err %v), want it still open", cur, err)
	}
	if ns := mustNotifications(t, s, store.NotificationQuery{AlertID: a.AlertID}); len(ns) != 0 {
		t.Fatalf("failed update enqueued %d notifications", len(ns))
	}

	// A good change stores the alert and its notifications together.
	got, err := s.UpdateAlert(t.Context(), a.AlertID,
		escalate(notification(a.AlertID, "T1", 0, hook), notification(a.AlertID, "T1", 0, mail)), change)
	if err != nil {
		t.Fatalf("UpdateAlert: %v", err)
	}
	if got.Status != scoring.StatusEscalated {
		t.Errorf("alert status = %s, want escalated", got.Status)
	}
	ns := mustNotifications(t, s, store.NotificationQuery{AlertID: a.AlertID})
	if len(ns) != 2 {
		t.Fatalf("%d notifications, want 2", len(ns))
	}
	for _, n := range ns {
		if n.Status != store.NotifyPending || n.Attempts != 0 || n.TrialID != "T1" {
			t.Errorf("notification = %s, want pending, untried, trial T1", brief(n))
		}
	}
	due := mustDue(t, s, ns[0].CreatedAt, 10)
	if len(due) != 2 {
		t.Errorf("due at enqueue time = %v, want both", notificationIDs(due))
	}
}

// testOutboxClosed: a closed store refuses outbox calls.
func testOutboxClosed(t *testing.T, s store.Store) {
	mustEnqueue(t, s, notification("A1", "T1", 0, hook))
	n := only(t, s, store.NotificationQuery{})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.EnqueueNotifications(t.Context(), []store.Notification{notification("A2", "T1", 0, hook)}); err == nil {
		t.Error("EnqueueNotifications after Close: no error")
	}
	if err := s.RecordAttempt(t.Context(), n.ID, store.NotifySent, time.Time{}, ""); err == nil {
		t.Error("RecordAttempt after Close: no error")
	}
	if _, err := s.DueNotifications(t.Context(), time.Now(), 10); err == nil {
		t.Error("DueNotifications after Close: no error")
	}
}
