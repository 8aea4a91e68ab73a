package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/auth"
	"vigil/predictor/predictortest"
)

// boardEvents collects a board session's score and alert events by reading
// and patient, in a goroutine, until the test ends.
type boardEvents struct {
	mu     sync.Mutex
	scores map[string]map[string]any // reading id → score event data
	alerts []map[string]any
	seen   map[string]time.Time // reading id → when its score arrived
	err    error
}

func watch(t *testing.T, c *wsClient) *boardEvents {
	b := &boardEvents{scores: map[string]map[string]any{}, seen: map[string]time.Time{}}
	go func() {
		for {
			m, err := c.read(time.Hour)
			if err != nil {
				b.mu.Lock()
				b.err = err
				b.mu.Unlock()
				return
			}
			data, _ := m["data"].(map[string]any)
			if m["type"] != "event" || data == nil {
				continue
			}
			b.mu.Lock()
			switch data["kind"] {
			case "score":
				id := data["reading_id"].(string)
				if _, dup := b.scores[id]; dup {
					b.err = fmt.Errorf("reading %s scored twice on the board", id)
				}
				b.scores[id] = data
				b.seen[id] = time.Now()
			case "alert":
				b.alerts = append(b.alerts, data)
			}
			b.mu.Unlock()
		}
	}()
	return b
}

// waitScore waits up to d for a reading's score event.
func (b *boardEvents) waitScore(t *testing.T, id string, d time.Duration) (map[string]any, time.Time) {
	t.Helper()
	for deadline := time.Now().Add(d); ; {
		b.mu.Lock()
		s, ok := b.scores[id]
		at := b.seen[id]
		err := b.err
		b.mu.Unlock()
		if ok {
			return s, at
		}
		if err != nil {
			t.Fatalf("board session: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no score event for %s within %v", id, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// post sends one reading for patient and returns its id and the status.
func post(t *testing.T, n *node, patient string, vitals map[string]any) (string, int, error) {
	r := newReading(patient, "T008", "S01", vitals)
	body, err := json.Marshal(r)
	if err != nil {
		return "", 0, err
	}
	req, err := http.NewRequest("POST", n.base+"/v1/readings", bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Authorization", "Bearer "+patientToken(t, patient, "T008", "S01"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	resp.Body.Close()
	return r["reading_id"].(string), resp.StatusCode, nil
}

// postReading posts one reading and fails the test unless it is accepted.
func postReading(t *testing.T, n *node, patient string, vitals map[string]any) (string, time.Time) {
	t.Helper()
	sent := time.Now()
	id, status, err := post(t, n, patient, vitals)
	if err != nil || status != 202 {
		t.Fatalf("POST reading: %d %v", status, err)
	}
	return id, sent
}

// TestModelOutageIsDegradedAndRecovers runs the real model server, kills it
// during a stream of readings and starts it again: no acknowledged reading
// is lost, each is scored once (with the model, or degraded without it),
// alerts still fire, and model output returns without restarting Vigil.
func TestModelOutageIsDegradedAndRecovers(t *testing.T) {
	py := predictortest.Start(t, "")
	addr := py.Addr
	n := start(t, tempDB(t), "VIGIL_PREDICTOR_ADDR="+addr, "VIGIL_PREDICTOR_TIMEOUT=250ms", "VIGIL_RATE_PER_PATIENT=0")
	board := connect(t, n, staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01"))
	board.subscribe("site:T008:S01", nil)
	ev := watch(t, board)
	pi := staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01")

	// 1. The model answers: probability, version, contributions.
	id, _ := postReading(t, n, "P3001", vitalsHigh())
	s, _ := ev.waitScore(t, id, 10*time.Second)
	model, _ := s["model"].(map[string]any)
	if model == nil || s["degraded"] != false {
		t.Fatalf("score with the model up: model %v degraded %v", s["model"], s["degraded"])
	}
	if p, _ := model["probability"].(float64); p < 0.5 || p > 1 {
		t.Fatalf("probability %v for a patient with NEWS2 %v", model["probability"], s["news2"])
	}
	if v, _ := model["version"].(string); !strings.HasPrefix(v, "lr-") {
		t.Fatalf("model version %q", model["version"])
	}
	if c, _ := model["contributions"].([]any); len(c) == 0 {
		t.Fatalf("no contributions explain the probability: %v", model)
	}
	alert := openAlert(t, n, pi, "P3001", 5*time.Second)
	if !strings.Contains(fmt.Sprint(alert["reasons"]), "model_sae_risk") {
		t.Fatalf("alert reasons %v lack model_sae_risk", alert["reasons"])
	}
	if rep := do(t, "GET", n.base+"/readyz", "", nil); rep.Status != 200 || !strings.Contains(string(rep.Body), `"predictor":"ok"`) {
		t.Fatalf("readyz with the model up: %d %s", rep.Status, rep.Body)
	}

	// 2. A stream of readings; the model is killed in the middle of it.
	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pid := "P31" + strconv.Itoa(10+p)
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Only what was acknowledged must be scored; a refusal
				// (the node busy) is the client's to retry.
				if id, status, err := post(t, n, pid, vitalsOK()); err == nil && status == 202 {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	py.Kill()
	time.Sleep(time.Second)
	// With the model down, a deteriorating patient still raises an alert,
	// and the board has it within a second of the reading's acknowledgement.
	id, sent := postReading(t, n, "P3002", vitalsHigh())
	s, at := ev.waitScore(t, id, 5*time.Second)
	if s["model"] != nil || s["degraded"] != true {
		t.Fatalf("score with the model down: model %v degraded %v", s["model"], s["degraded"])
	}
	if lat := at.Sub(sent); lat > time.Second {
		t.Fatalf("degraded score reached the board %v after the POST", lat)
	}
	if a := openAlert(t, n, pi, "P3002", time.Second); a["severity"] != "critical" {
		t.Fatalf("degraded alert %v", a)
	}
	if rep := do(t, "GET", n.base+"/readyz", "", nil); rep.Status != 200 || !strings.Contains(string(rep.Body), `"status":"degraded"`) {
		t.Fatalf("readyz with the model down: %d %s (degraded, still ready)", rep.Status, rep.Body)
	}

	// 3. The model comes back on its address: the breaker's probe closes it
	// and model output returns, with no restart of Vigil.
	predictortest.Start(t, addr)
	back := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		id, _ := postReading(t, n, "P3003", vitalsOK())
		if s, _ := ev.waitScore(t, id, 5*time.Second); s["model"] != nil && s["degraded"] == false {
			back = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !back {
		t.Fatalf("model output did not return after predictor-py restarted:\n%s", n.logs.String())
	}
	close(stop)
	wg.Wait()

	// 4. Every acknowledged reading of the stream was scored exactly once,
	// with the model or visibly without it.
	var withModel, degraded int
	for _, id := range acked {
		s, _ := ev.waitScore(t, id, 10*time.Second)
		switch {
		case s["model"] != nil && s["degraded"] == false:
			withModel++
		case s["model"] == nil && s["degraded"] == true:
			degraded++
		default:
			t.Fatalf("reading %s: model %v degraded %v", id, s["model"], s["degraded"])
		}
	}
	ev.mu.Lock()
	err := ev.err
	ev.mu.Unlock()
	if err != nil {
		t.Fatalf("board session: %v", err)
	}
	if withModel == 0 || degraded == 0 {
		t.Fatalf("%d readings scored with the model and %d degraded: the outage was not exercised", withModel, degraded)
	}
	t.Logf("%d readings: %d with the model, %d degraded during the outage", len(acked), withModel, degraded)
	for _, name := range []string{"vigil_predictor_breaker_state 0", `vigil_predictor_calls_total{outcome="rejected"}`, "vigil_scores_degraded_total"} {
		if rep := do(t, "GET", n.base+"/metrics", "", nil); !strings.Contains(string(rep.Body), name) {
			t.Errorf("metrics lack %s", name)
		}
	}
}

// TestSlowPredictorDoesNotSlowTheBoard: a model slower than the deadline
// costs each reading at most the deadline; scores arrive degraded, long
// before the model would have answered.
func TestSlowPredictorDoesNotSlowTheBoard(t *testing.T) {
	const (
		delay    = 2 * time.Second
		deadline = 50 * time.Millisecond
		// margin is what a reading takes to reach the board without any
		// model, with room for a loaded machine and the race detector.
		margin = 450 * time.Millisecond
	)
	addr := predictortest.Start(t, "", "--delay-ms", strconv.Itoa(int(delay/time.Millisecond))).Addr
	n := start(t, tempDB(t), "VIGIL_PREDICTOR_ADDR="+addr, "VIGIL_PREDICTOR_TIMEOUT="+deadline.String(), "VIGIL_RATE_PER_PATIENT=0")
	board := connect(t, n, staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01"))
	board.subscribe("site:T008:S01", nil)
	ev := watch(t, board)
	var worst time.Duration
	for i := range 12 {
		id, sent := postReading(t, n, fmt.Sprintf("P32%02d", i), vitalsOK())
		if took := time.Since(sent); took >= deadline+margin {
			t.Fatalf("POST took %v: ingest waited for the model", took)
		}
		s, at := ev.waitScore(t, id, 5*time.Second)
		if s["degraded"] != true || s["model"] != nil {
			t.Fatalf("score %d: degraded %v model %v, want degraded (the model missed its deadline)", i, s["degraded"], s["model"])
		}
		worst = max(worst, at.Sub(sent))
	}
	if worst >= deadline+margin {
		t.Fatalf("slowest POST-to-board %v with a %v deadline: the board waited for a model that takes %v", worst, deadline, delay)
	}
	t.Logf("slowest POST-to-board with a model %v slower than its %v deadline: %v", delay, deadline, worst)
}
