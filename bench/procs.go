//go:build linux

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a server process the bench started: `vigil serve` or the echo
// server. It is started in its own process group, so that a Ctrl-C in the
// terminal reaches the bench, which stops it in order, and with a parent-death
// signal, so that it cannot outlive a bench that was killed.
type child struct {
	name      string
	cmd       *exec.Cmd
	addr      string // host:port of its public listener
	pprofAddr string // host:port of its pprof listener, if any
	logs      *logTail
	done      chan struct{}
}

// startChild runs exe args with env added to the bench's environment, and
// waits for the JSON log line {"msg": listenMsg, "addr": …} on its standard
// error (the same line `vigil serve` writes), so that the server can listen
// on 127.0.0.1:0 and no port is chosen in advance and raced for.
func startChild(ctx context.Context, name, exe string, args, env []string, listenMsg string, timeout time.Duration) (*child, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cmd.Stdout = io.Discard
	c := &child{name: name, cmd: cmd, logs: newLogTail(), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	addrs := make(chan [2]string, 4)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if msg, addr := c.logs.add(sc.Bytes()); addr != "" {
				select {
				case addrs <- [2]string{msg, addr}:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { _ = cmd.Wait(); close(c.done) }()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for c.addr == "" {
		select {
		case a := <-addrs:
			switch a[0] {
			case listenMsg:
				c.addr = a[1]
			case "pprof listening":
				c.pprofAddr = a[1]
			}
		case <-c.done:
			return nil, fmt.Errorf("%s exited before listening (%s):\n%s", name, cmd.ProcessState, c.logs.tail(20))
		case <-deadline.C:
			c.stop()
			return nil, fmt.Errorf("%s did not listen within %s:\n%s", name, timeout, c.logs.tail(20))
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		}
	}
	return c, nil
}

// stop ends the process: SIGTERM (a clean shutdown), then SIGKILL if it has
// not exited within 20 s.
func (c *child) stop() {
	if c == nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// waitReady polls GET base/readyz until it answers 200.
func waitReady(ctx context.Context, client *http.Client, base string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status + " " + strings.TrimSpace(string(b))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s/readyz not ready within %s: %s", base, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTail keeps what the bench reports of a server's log: the number of
// warnings and errors by message, and the last lines.
type logTail struct {
	mu     sync.Mutex
	lines  []string
	counts map[string]int // "WARN closing slow session" → n
}

const tailLines = 40

func newLogTail() *logTail { return &logTail{counts: map[string]int{}} }

// add records one log line and returns its msg and addr fields when it has
// an addr (a "listening" line).
func (l *logTail) add(line []byte) (msg, addr string) {
	var rec struct {
		Level string `json:"level"`
		Msg   string `json:"msg"`
		Addr  string `json:"addr"`
	}
	parsed := json.Unmarshal(line, &rec) == nil
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == tailLines {
		copy(l.lines, l.lines[1:])
		l.lines = l.lines[:tailLines-1]
	}
	l.lines = append(l.lines, string(line))
	if parsed && (rec.Level == "WARN" || rec.Level == "ERROR") {
		l.counts[rec.Level+" "+rec.Msg]++
	}
	if parsed && rec.Addr != "" && strings.HasSuffix(rec.Msg, "listening") {
		return rec.Msg, rec.Addr
	}
	return "", ""
}

func (l *logTail) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := max(0, len(l.lines)-n)
	return strings.Join(l.lines[from:], "\n")
}

// summary renders warnings and errors by message, most frequent first.
func (l *logTail) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range l.counts {
		all = append(all, kv{k, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n || all[i].n == all[j].n && all[i].k < all[j].k })
	parts := make([]string, 0, len(all))
	for _, e := range all {
		parts = append(parts, fmt.Sprintf("%s ×%d", e.k, e.n))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}
