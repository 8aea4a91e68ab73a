package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

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
	for i, id := range missed {
		ev := nextScore(t, moved, 2*time.Second)
		if offsetOf(ev) != since+uint64(i)+1 || ev["data"].(map[string]any)["reading_id"] != id {
			t.Fatalf("recovered event %d: offset %d reading %v, want %d %s", i, offsetOf(ev), ev["data"].(map[string]any)["reading_id"], since+uint64(i)+1, id)
		}
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
