package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Watcher is a staff WebSocket session subscribed to every site room of the
// cohort. It records when each reading's score event arrives, so a run can
// report post-to-board latency as a person's browser would see it.
type Watcher struct {
	conn    *websocket.Conn
	mu      sync.Mutex
	arrived map[string]time.Time // reading id → arrival
	done    chan struct{}
}

// Watch connects to base's /ws with token and subscribes to the site rooms.
func Watch(ctx context.Context, base, token, trial string, sites []string) (*Watcher, error) {
	u := strings.Replace(strings.Replace(base, "https://", "wss://", 1), "http://", "ws://", 1) + "/ws"
	conn, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		return nil, fmt.Errorf("sim: dial %s: %w", u, err)
	}
	conn.SetReadLimit(1 << 20)
	w := &Watcher{conn: conn, arrived: map[string]time.Time{}, done: make(chan struct{})}
	send := func(v any) error {
		b, _ := json.Marshal(v)
		return conn.Write(ctx, websocket.MessageText, b)
	}
	if err := send(map[string]any{"type": "auth", "token": token}); err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("sim: auth: %w", err)
	}
	for _, s := range sites {
		if err := send(map[string]any{"type": "subscribe", "room": "site:" + trial + ":" + s}); err != nil {
			conn.CloseNow()
			return nil, fmt.Errorf("sim: subscribe: %w", err)
		}
	}
	go w.read()
	return w, nil
}

func (w *Watcher) read() {
	defer close(w.done)
	for {
		_, data, err := w.conn.Read(context.Background())
		if err != nil {
			return
		}
		now := time.Now()
		var f struct {
			Type string `json:"type"`
			Data struct {
				Kind      string `json:"kind"`
				ReadingID string `json:"reading_id"`
			} `json:"data"`
		}
		if json.Unmarshal(data, &f) != nil || f.Type != "event" || f.Data.Kind != "score" {
			continue
		}
		w.mu.Lock()
		w.arrived[f.Data.ReadingID] = now
		w.mu.Unlock()
	}
}

// Arrival returns when the reading's score reached the watcher.
func (w *Watcher) Arrival(readingID string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.arrived[readingID]
	return t, ok
}

// Close ends the session.
func (w *Watcher) Close() {
	w.conn.Close(websocket.StatusNormalClosure, "done")
	<-w.done
}
