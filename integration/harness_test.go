// Package integration tests Vigil from the outside: the real binary, started as
// a process on 127.0.0.1:0 with a temporary SQLite file, driven by a real HTTP
// client and real WebSocket clients (coder/websocket).
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"vigil/auth"
	"vigil/store/postgres/pgtest"
)

var vigilBin string

const secret = "integration-test-secret-0123456789abcdef"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vigilBin = filepath.Join(dir, "vigil")
	build := exec.Command("go", "build", "-race", "-o", vigilBin, "..")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build vigil:", err)
		os.Exit(1)
	}
	// One PostgreSQL server for the binary's multi-node tests (each gets a
	// fresh database); tests that need none never touch it.
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one running vigil process.
type node struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string // http://127.0.0.1:PORT
	db   string
	logs *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs `vigil serve` on a free port with the given database (a SQLite
// file or a postgres:// URL) and extra environment, and waits until it
// listens.
func start(t *testing.T, db string, env ...string) *node {
	t.Helper()
	cmd := exec.Command(vigilBin, "serve")
	cmd.Env = append(os.Environ(),
		"VIGIL_ADDR=127.0.0.1:0",
		"VIGIL_DB="+dbURL(db),
		"VIGIL_JWT_SECRET="+secret,
		"VIGIL_SWEEP_INTERVAL=1h",
	)
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, cmd: cmd, db: db, logs: &syncBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			n.logs.Write([]byte(line + "\n"))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "vigil listening" {
				select {
				case addr <- rec.Addr:
				default:
				}
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(n.done) }()
	select {
	case a := <-addr:
		n.base = "http://" + a
	case <-n.done:
		t.Fatalf("vigil exited before listening:\n%s", n.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("vigil did not listen within 30s:\n%s", n.logs.String())
	}
	t.Cleanup(func() { n.stop() })
	return n
}

// stop ends the process gracefully (SIGTERM) and waits for it.
func (n *node) stop() {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

// kill ends the process with SIGKILL, as a crash would.
func (n *node) kill() {
	_ = n.cmd.Process.Kill()
	<-n.done
}

func tempDB(t *testing.T) string { return filepath.Join(t.TempDir(), "vigil.db") }

// dbURL is VIGIL_DB for db: a postgres:// URL as is, else a SQLite file.
func dbURL(db string) string {
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		return db
	}
	return "sqlite://" + db
}

var issuer = auth.Issuer{Secret: []byte(secret), Issuer: "vigil", Audience: "vigil"}

func mint(t *testing.T, c auth.Claims, sub string) string {
	t.Helper()
	c.Subject = sub
	tok, err := issuer.Mint(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func patientToken(t *testing.T, patient, trial, site string) string {
	return mint(t, auth.Claims{Role: auth.RolePatient, Trial: trial, Site: site}, patient)
}

func staffToken(t *testing.T, role string, trials []string, sites ...string) string {
	return mint(t, auth.Claims{Role: role, Trials: trials, Sites: sites}, "u-"+role)
}

// vitalsOK is an unremarkable set of vitals (NEWS2 0).
func vitalsOK() map[string]any {
	return map[string]any{"respiratory_rate": 16, "spo2": 97, "spo2_scale": 1, "on_oxygen": false,
		"systolic_bp": 120, "diastolic_bp": 78, "heart_rate": 72, "consciousness": "alert", "temperature": 36.8}
}

// vitalsHigh is a deteriorating patient (NEWS2 high).
func vitalsHigh() map[string]any {
	return map[string]any{"respiratory_rate": 26, "spo2": 90, "spo2_scale": 1, "on_oxygen": false,
		"systolic_bp": 88, "diastolic_bp": 60, "heart_rate": 135, "consciousness": "voice", "temperature": 39.5}
}

func newReading(patient, trial, site string, vitals map[string]any) map[string]any {
	return map[string]any{
		"reading_id": uuid.NewString(), "patient_id": patient, "trial_id": trial, "site_id": site,
		"measured_at": time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano), "vitals": vitals,
	}
}

type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("reply is not a JSON object: %v: %s", err, r.Body)
	}
	return m
}

func do(t *testing.T, method, url, token string, body any) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// wsClient is a real WebSocket session.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialWS(t *testing.T, n *node, header http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, strings.Replace(n.base, "http://", "ws://", 1)+"/ws",
		&websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	c := &wsClient{t: t, conn: conn}
	t.Cleanup(func() { conn.CloseNow() })
	return c, resp, nil
}

// connect dials and authenticates with an auth frame, returning after ready.
func connect(t *testing.T, n *node, token string) *wsClient {
	t.Helper()
	c, _, err := dialWS(t, n, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.send(map[string]any{"type": "auth", "token": token})
	if m := c.next(); m["type"] != "ready" {
		t.Fatalf("want ready, got %v", m)
	}
	return c
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	data, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, data); err != nil {
		c.t.Fatalf("ws write: %v", err)
	}
}

// read returns the next frame within d, or an error (timeout or close).
func (c *wsClient) read(d time.Duration) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, data, err := c.conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("frame is not JSON: %s", data)
	}
	return m, nil
}

func (c *wsClient) next() map[string]any {
	c.t.Helper()
	m, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("ws read: %v", err)
	}
	return m
}

func (c *wsClient) subscribe(room string, since *uint64) map[string]any {
	c.t.Helper()
	msg := map[string]any{"type": "subscribe", "room": room}
	if since != nil {
		msg["since"] = *since
	}
	c.send(msg)
	m := c.next()
	if m["type"] != "subscribed" || m["room"] != room {
		c.t.Fatalf("want subscribed to %s, got %v", room, m)
	}
	return m
}

// closeCode returns the close status of an error from read.
func closeCode(err error) websocket.StatusCode { return websocket.CloseStatus(err) }

var _ = jwt.SigningMethodHS256
