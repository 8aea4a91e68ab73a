package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestDrainMovesBoardsWithoutLoss: SIGTERM, as Kubernetes sends it, turns a
// node's /readyz to 503 at once while it keeps serving (readings too) for
// its drain delay; then it scores what it admitted, closes its sessions 1001
// and exits 0 within its shutdown timeout.
// A board on it that reconnects to another node with since and epoch ends
// with every reading's score exactly once, in offset order, while readings
// keep arriving the whole time.
func TestDrainMovesBoardsWithoutLoss(t *testing.T) {
	c := newCluster(t)
	a := c.node("VIGIL_DRAIN_DELAY=1s", "VIGIL_SHUTDOWN_TIMEOUT=10s")
	b := c.node()
	board := connect(t, a, piToken(t))
	sub := board.subscribe("site:T008:S01", nil)
	epoch, _ := sub["epoch"].(string)

	var (
		mu       sync.Mutex
		accepted []string
		refused  int
	)
	stop, posted := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(posted)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
			id, status, err := post(t, b, fmt.Sprintf("P45%02d", i%50), vitalsOK())
			mu.Lock()
			if err == nil && status == http.StatusAccepted {
				accepted = append(accepted, id)
			} else {
				refused++
			}
			mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-posted
	}()

	got := map[string]bool{}
	last := offsetOf(sub)
	record := func(m map[string]any) {
		t.Helper()
		data, _ := m["data"].(map[string]any)
		if m["type"] != "event" || data["kind"] != "score" {
			return
		}
		if off := offsetOf(m); off != last+1 {
			t.Fatalf("event at offset %d after %d: a gap or a repeat", off, last)
		}
		last = offsetOf(m)
		id, _ := data["reading_id"].(string)
		if got[id] {
			t.Fatalf("reading %s twice", id)
		}
		got[id] = true
	}
	for len(got) < 5 {
		m, err := board.read(5 * time.Second)
		if err != nil {
			t.Fatalf("events before the drain: %v", err)
		}
		record(m)
	}

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	term := time.Now()
	// Not ready as soon as the signal is handled (polled: delivery is
	// asynchronous), while still serving.
	for {
		resp, err := http.Get(a.base + "/readyz")
		if err != nil {
			t.Fatalf("/readyz after SIGTERM: %v (the node must keep serving during its drain delay)", err)
		}
		var ready map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&ready)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && ready["status"] == "draining" {
			break
		}
		if time.Since(term) > 300*time.Millisecond {
			t.Fatalf("/readyz %v after SIGTERM: %d %v, want 503 draining", time.Since(term), resp.StatusCode, ready)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The draining node still takes readings during its delay (the load
	// balancer may not have taken it out yet); each must be stored and
	// scored, and reach the board on one node or the other.
	for i := range 5 {
		id, status, err := post(t, a, fmt.Sprintf("P46%02d", i), vitalsOK())
		if err != nil || status != http.StatusAccepted {
			t.Fatalf("POST to the draining node during its delay: %d %v", status, err)
		}
		mu.Lock()
		accepted = append(accepted, id)
		mu.Unlock()
	}

	// The board keeps getting events on the draining node until it is closed.
	var closed error
	for {
		m, err := board.read(10 * time.Second)
		if err != nil {
			closed = err
			break
		}
		record(m)
	}
	if code := closeCode(closed); code != websocket.StatusGoingAway {
		t.Fatalf("session on the draining node ended with %v (%v), want 1001", code, closed)
	}
	if d := time.Since(term); d < 900*time.Millisecond {
		t.Errorf("sessions closed %v after SIGTERM, before the 1 s drain delay", d)
	}

	moved := connect(t, b, piToken(t))
	moved.send(map[string]any{"type": "subscribe", "room": "site:T008:S01", "since": last, "epoch": epoch})
	if m := moved.next(); m["type"] != "subscribed" || m["recovered"] != true {
		t.Fatalf("resubscribe on the other node: %v, want recovered: true", m)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-posted

	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the draining node did not exit within its shutdown timeout")
	}
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("draining node exited %d, want 0", code)
	}

	mu.Lock()
	want := append([]string(nil), accepted...)
	nrefused := refused
	mu.Unlock()
	if nrefused > 0 {
		t.Errorf("%d readings refused by the node that stayed up", nrefused)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		m, err := moved.read(time.Until(deadline))
		if err != nil {
			break
		}
		record(m)
	}
	missing := 0
	for _, id := range want {
		if !got[id] {
			missing++
		}
	}
	if missing > 0 || len(got) != len(want) {
		t.Fatalf("board has %d scores of %d accepted readings (%d missing)", len(got), len(want), missing)
	}
	t.Logf("%d readings, every score once and in order across the drain", len(want))
}
