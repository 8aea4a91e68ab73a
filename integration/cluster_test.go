package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"vigil/auth"
	"vigil/bus/redisbus/redistest"
	"vigil/store/postgres/pgtest"
)

// cluster is a set of real `vigil serve` nodes sharing one PostgreSQL
// database and one Redis, both real servers started for the test.
type cluster struct {
	t        *testing.T
	db       string // postgres:// URL
	redisURL string
	restart  func() // restarts Redis without persistence: all its data lost
	env      []string
}

// newCluster starts a real Redis and creates a fresh database on the test
// binary's PostgreSQL server.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	rs := redistest.Start(t)
	db := pgtest.NewDatabase(t, pgtest.Start(t))
	return &cluster{t: t, db: db, redisURL: rs.URL, restart: rs.Restart}
}

func (c *cluster) node(env ...string) *node {
	return start(c.t, c.db, append(append([]string{"VIGIL_REDIS_URL=" + c.redisURL, "VIGIL_RATE_PER_PATIENT=0"}, c.env...), env...)...)
}

func piToken(t *testing.T) string {
	return staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01")
}

// offsetOf returns an event frame's offset.
func offsetOf(m map[string]any) uint64 {
	f, _ := m["offset"].(float64)
	return uint64(f)
}

// nextScore reads frames until a score event, within d.
func nextScore(t *testing.T, c *wsClient, d time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m, err := c.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("no score event within %v: %v", d, err)
		}
		if data, _ := m["data"].(map[string]any); m["type"] == "event" && data["kind"] == "score" {
			return m
		}
	}
}

// TestBoardOnOneNodeSeesReadingsOfAnother: a board on node A receives the
// readings posted to node B within a second, in order, offsets continuous.
func TestBoardOnOneNodeSeesReadingsOfAnother(t *testing.T) {
	c := newCluster(t)
	a, b := c.node(), c.node()
	board := connect(t, a, piToken(t))
	last := offsetOf(board.subscribe("site:T008:S01", nil))
	for i := range 10 {
		id, _ := postReading(t, b, fmt.Sprintf("P40%02d", i), vitalsOK())
		ev := nextScore(t, board, time.Second)
		if got := ev["data"].(map[string]any)["reading_id"]; got != id {
			t.Fatalf("event %d: reading %v, want %s (order)", i, got, id)
		}
		if off := offsetOf(ev); off != last+1 {
			t.Fatalf("event %d: offset %d after %d: offsets must be continuous", i, off, last)
		}
		last++
	}
}

// TestBoardMovesToAnotherNode: a board that leaves node A and reconnects to
// node B with since recovers exactly the events it missed.
func TestBoardMovesToAnotherNode(t *testing.T) {
	c := newCluster(t)
	a, b := c.node(), c.node()
	board := connect(t, a, piToken(t))
	sub := board.subscribe("site:T008:S01", nil)
	epoch, _ := sub["epoch"].(string)
	since := offsetOf(sub)
	for i := range 3 {
		postReading(t, a, fmt.Sprintf("P41%02d", i), vitalsOK())
		since = offsetOf(nextScore(t, board, time.Second))
	}
	board.conn.CloseNow()
	var missed []string
	for i := range 4 {
		id, _ := postReading(t, b, fmt.Sprintf("P42%02d", i), vitalsOK())
		missed = append(missed, id)
	}
	time.Sleep(300 * time.Millisecond) // let the scores be published
	moved := connect(t, b, piToken(t))
	moved.send(map[string]any{"type": "subscribe", "room": "site:T008:S01", "since": since, "epoch": epoch})
	if m := moved.next(); m["type"] != "subscribed" || m["recovered"] != true {
		t.Fatalf("resubscribe on another node: %v, want recovered: true", m)
	}
	// The four readings are scored concurrently, so their events may be in
	// any order; the replay must hold exactly them, at the next offsets.
	want := map[string]bool{}
	for _, id := range missed {
		want[id] = true
	}
	for i := range missed {
		ev := nextScore(t, moved, 2*time.Second)
		id, _ := ev["data"].(map[string]any)["reading_id"].(string)
		if offsetOf(ev) != since+uint64(i)+1 || !want[id] {
			t.Fatalf("recovered event %d: offset %d reading %s, want offset %d and one of %v", i, offsetOf(ev), id, since+uint64(i)+1, missed)
		}
		delete(want, id)
	}
	if m, err := moved.read(300 * time.Millisecond); err == nil {
		t.Fatalf("more than the missed events: %v", m)
	}
}

// TestSameReadingOnTwoNodes: one reading posted to two nodes at once is
// stored once and scored once.
func TestSameReadingOnTwoNodes(t *testing.T) {
	c := newCluster(t)
	a, b := c.node(), c.node()
	board := connect(t, a, piToken(t))
	board.subscribe("site:T008:S01", nil)
	ev := watch(t, board)
	var ids []string
	for round := range 5 {
		pid := fmt.Sprintf("P43%02d", round)
		r := newReading(pid, "T008", "S01", vitalsOK())
		ids = append(ids, r["reading_id"].(string))
		body, _ := json.Marshal(r)
		tok := patientToken(t, pid, "T008", "S01")
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for i, n := range []*node{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", n.base+"/v1/readings", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					codes[i] = resp.StatusCode
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		accepted := 0
		for _, code := range codes {
			switch code {
			case 202:
				accepted++
			case 200:
			default:
				t.Fatalf("round %d: replies %v, want one 202 and one 200", round, codes)
			}
		}
		if accepted != 1 {
			t.Fatalf("round %d: replies %v: exactly one node stores the reading", round, codes)
		}
		ev.waitScore(t, ids[round], 2*time.Second)
		if stored, unscored := patientReadings(t, b, piToken(t), pid); len(stored) != 1 || unscored != 0 {
			t.Fatalf("round %d: %d readings stored (%d unscored), want 1, scored", round, len(stored), unscored)
		}
	}
	// Any second score event of a reading would have arrived by now; watch
	// records it as an error.
	time.Sleep(500 * time.Millisecond)
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.err != nil || len(ev.scores) != len(ids) {
		t.Fatalf("%d score events for %d readings (%v): each must be scored once", len(ev.scores), len(ids), ev.err)
	}
}

// resilientBoard is a board session that behaves like the real board: on a
// closed connection it reconnects (to the node it is given), subscribes with
// its last offset and epoch, and when told it cannot recover, reloads the
// open alerts over REST. It records every alert it came to know and whether
// it was ever told recovered: false.
type resilientBoard struct {
	t     *testing.T
	n     *node
	token string

	mu          sync.Mutex
	alerts      map[string]bool
	unrecovered int
	since       uint64
	epoch       string
}

func newResilientBoard(t *testing.T, n *node, stop <-chan struct{}) *resilientBoard {
	b := &resilientBoard{t: t, n: n, token: piToken(t), alerts: map[string]bool{}}
	ready := make(chan struct{})
	go b.run(stop, ready)
	<-ready
	return b
}

func (b *resilientBoard) run(stop <-chan struct{}, ready chan struct{}) {
	first := true
	for {
		select {
		case <-stop:
			return
		default:
		}
		c, _, err := dialWS(b.t, b.n, nil)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if b.session(c, stop, first, ready) {
			first = false
		}
		c.conn.CloseNow()
		time.Sleep(100 * time.Millisecond)
	}
}

// session runs one connection; it reports whether it got subscribed.
func (b *resilientBoard) session(c *wsClient, stop <-chan struct{}, first bool, ready chan struct{}) (subscribed bool) {
	auth := map[string]any{"type": "auth", "token": b.token}
	data, _ := json.Marshal(auth)
	if c.conn.Write(b.t.Context(), websocket.MessageText, data) != nil {
		return false
	}
	if m, err := c.read(5 * time.Second); err != nil || m["type"] != "ready" {
		return false
	}
	b.mu.Lock()
	sub := map[string]any{"type": "subscribe", "room": "site:T008:S01"}
	if !first {
		sub["since"], sub["epoch"] = b.since, b.epoch
	}
	b.mu.Unlock()
	data, _ = json.Marshal(sub)
	if c.conn.Write(b.t.Context(), websocket.MessageText, data) != nil {
		return false
	}
	for {
		select {
		case <-stop:
			return subscribed
		default:
		}
		// Reconnect only when the server closes the session, never on
		// silence: a board that reconnected on a timer would hide a broken
		// live path behind its recoveries.
		m, err := c.read(time.Minute)
		if err != nil {
			return subscribed
		}
		b.mu.Lock()
		switch m["type"] {
		case "subscribed":
			subscribed = true
			b.epoch, _ = m["epoch"].(string)
			b.since = offsetOf(m)
			if m["recovered"] != true {
				if !first {
					b.unrecovered++
				}
				b.mu.Unlock()
				b.snapshot()
				b.mu.Lock()
			}
			if first {
				close(ready)
				first = false
			}
		case "event":
			b.since = offsetOf(m)
			if d, _ := m["data"].(map[string]any); d["kind"] == "alert" {
				b.alerts[d["alert_id"].(string)] = true
			}
		}
		b.mu.Unlock()
	}
}

func (b *resilientBoard) snapshot() {
	rep := do(b.t, "GET", b.n.base+"/v1/alerts?trial=T008&site=S01&limit=1000", b.token, nil)
	var body struct {
		Alerts []map[string]any `json:"alerts"`
	}
	_ = json.Unmarshal(rep.Body, &body)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range body.Alerts {
		b.alerts[a["alert_id"].(string)] = true
	}
}

// TestRedisRestartLosesNothing: Redis restarts without persistence during a
// stream of readings posted to two nodes. No acknowledged reading is lost,
// boards on both nodes end with every alert (through recovery or a
// snapshot), and they are told recovered: false where history was lost.
func TestRedisRestartLosesNothing(t *testing.T) {
	c := newCluster(t)
	a, b := c.node(), c.node()
	stop := make(chan struct{})
	boards := []*resilientBoard{newResilientBoard(t, a, stop), newResilientBoard(t, b, stop)}
	var (
		mu    sync.Mutex
		acked = map[string]string{} // reading → patient
		wg    sync.WaitGroup
		done  = make(chan struct{})
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				n, vit, pid := a, vitalsOK(), fmt.Sprintf("P44%d%02d", w, i%20)
				if i%2 == 1 {
					n = b
				}
				if i%5 == 0 {
					vit, pid = vitalsHigh(), fmt.Sprintf("P45%d%02d", w, i) // a new patient, a new alert
				}
				if id, status, err := post(t, n, pid, vit); err == nil && status == 202 {
					mu.Lock()
					acked[id] = pid
					mu.Unlock()
				}
				time.Sleep(30 * time.Millisecond)
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	c.restart()
	time.Sleep(2500 * time.Millisecond)
	close(done)
	wg.Wait()
	time.Sleep(1500 * time.Millisecond) // the last scores and alerts reach the boards

	// Every acknowledged reading is stored and scored.
	byPatient := map[string][]string{}
	for id, pid := range acked {
		byPatient[pid] = append(byPatient[pid], id)
	}
	for pid, ids := range byPatient {
		stored, unscored := patientReadings(t, a, piToken(t), pid)
		for _, id := range ids {
			if !stored[id] {
				t.Fatalf("acknowledged reading %s of %s lost", id, pid)
			}
		}
		if unscored != 0 {
			t.Fatalf("%s: %d readings unscored", pid, unscored)
		}
	}
	// Every alert in the database is on both boards.
	rep := do(t, "GET", a.base+"/v1/alerts?trial=T008&site=S01&limit=1000", piToken(t), nil)
	var body struct {
		Alerts []map[string]any `json:"alerts"`
	}
	if err := json.Unmarshal(rep.Body, &body); err != nil || len(body.Alerts) == 0 {
		t.Fatalf("alerts: %v %s", err, rep.Body)
	}
	close(stop)
	for i, bd := range boards {
		bd.mu.Lock()
		for _, al := range body.Alerts {
			if !bd.alerts[al["alert_id"].(string)] {
				t.Errorf("board %d never learned of alert %v", i, al["alert_id"])
			}
		}
		if bd.unrecovered == 0 {
			t.Errorf("board %d was never told recovered: false, though Redis lost its history", i)
		}
		bd.mu.Unlock()
	}
	t.Logf("%d readings acknowledged, %d alerts, all on both boards", len(acked), len(body.Alerts))
}

// TestLeaseTakeoverAfterSIGKILL: the node running escalations is killed;
// another node takes its escalation timers over and keeps paging.
func TestLeaseTakeoverAfterSIGKILL(t *testing.T) {
	c := newCluster(t)
	smtp := newSMTPReceiver(t)
	hook := newWebhookReceiver(t, hookSecret, 0)
	c.env = []string{"VIGIL_SMTP_ADDR=" + smtp.addr(), "VIGIL_SMTP_FROM=vigil@vigil.test",
		"VIGIL_SECRET_SAFETY_HOOK=" + hookSecret, "VIGIL_ESCALATION_INTERVAL=200ms", "VIGIL_ESCALATION_FLOOR=1s",
		"VIGIL_NOTIFY_BACKOFF=100ms"}
	a := c.node()
	waitLog(t, a, `"lease taken","lease":"escalations"`)
	waitLog(t, a, `"lease taken","lease":"dispatcher"`)
	b := c.node()
	p := protocol(hook.srv.URL, "8h")
	p["escalation"].(map[string]any)["repeat"] = "2s"
	putProtocol(t, b, p)
	postReading(t, b, "P4601", vitalsHigh())
	select {
	case <-hook.deliveries: // the safety tier, paged by node a
	case <-time.After(20 * time.Second):
		t.Fatal("no page before the kill")
	}
	a.kill()
	killed := time.Now()
	// The last tier is paged again every 2 s until acknowledged: node b must
	// take the timers and the outbox over and go on. Pages node a sent
	// before it died are drained; the next one can only be b's.
	waitLog(t, b, `"lease taken","lease":"escalations"`)
	waitLog(t, b, `"lease taken","lease":"dispatcher"`)
	for drained := false; !drained; {
		select {
		case <-hook.deliveries:
		default:
			drained = true
		}
	}
	select {
	case <-hook.deliveries:
		t.Logf("paging resumed from node b %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatalf("no page from node b within 15 s of taking the leases:\n%s", b.logs.String())
	}
}

func waitLog(t *testing.T, n *node, s string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(n.logs.String(), s); {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in the node's log:\n%s", s, n.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRegistryChangeReachesEveryNode: a registry change made through node A
// is applied by node B, whose cache held the old record, within a second.
func TestRegistryChangeReachesEveryNode(t *testing.T) {
	c := newCluster(t)
	a, b := c.node(), c.node()
	safety := staffToken(t, auth.RoleSafety, []string{"T008"})
	// B scores P4701 unregistered, and caches that.
	postReading(t, b, "P4701", vitalsOK())
	if s := latestScore(t, b, safety, "S01", "P4701"); s["registered"] != false {
		t.Fatalf("before registration: %v", s)
	}
	putPatient(t, a, "S01", "P4701", map[string]any{"status": "withdrawn"})
	changed := time.Now()
	// B must refuse the withdrawn patient's readings within a second.
	for {
		id, status, err := post(t, b, "P4701", vitalsOK())
		if err == nil && status == 403 {
			t.Logf("node B applied node A's change after %v", time.Since(changed).Round(time.Millisecond))
			return
		}
		if time.Since(changed) > time.Second {
			t.Fatalf("node B still accepts a withdrawn patient's readings 1 s after the change on A (last: %d %v %s)", status, err, id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
