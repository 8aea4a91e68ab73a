// Package predictortest runs the real predictor-py model server for tests
// and benchmarks, from the virtual environment `make test` prepares
// (scripts/setup-predictor.sh). It imports nothing of Vigil's.
package predictortest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Server is a running predictor-py.
type Server struct {
	Addr string
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{}
}

// Dir is predictor-py's directory in this repository.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "predictor-py")
}

// Start runs `python -m predictor` on addr ("" for a free port) with extra
// flags and waits until it accepts connections; it is killed when the test
// ends. Without the virtual environment or the model the test is skipped,
// unless VIGIL_REQUIRE_PREDICTOR is set (make test sets it), so CI can never
// pass by skipping.
func Start(tb testing.TB, addr string, flags ...string) *Server {
	tb.Helper()
	dir := Dir()
	python := filepath.Join(dir, ".venv", "bin", "python")
	model := filepath.Join(dir, "model", "model.json")
	for _, f := range []string{python, model} {
		if _, err := os.Stat(f); err != nil {
			if os.Getenv("VIGIL_REQUIRE_PREDICTOR") != "" {
				tb.Fatalf("predictor-py is not set up (%v): run make setup-test", err)
			}
			tb.Skipf("predictor-py is not set up (%v): run make setup-test", err)
		}
	}
	if addr == "" {
		addr = FreeAddr(tb)
	}
	args := append([]string{"-m", "predictor", "--addr", addr, "--metrics-addr", "", "--model", model}, flags...)
	cmd := exec.Command(python, args...)
	cmd.Dir = dir
	s := &Server{Addr: addr, cmd: cmd, logs: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	tb.Cleanup(s.Kill)
	for deadline := time.Now().Add(60 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return s
		}
		select {
		case <-s.done:
			tb.Fatalf("predictor-py exited before serving:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("predictor-py did not serve within 60s:\n%s", s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill ends the server with SIGKILL, as a crash or an OOM kill would.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Logs is what the server printed.
func (s *Server) Logs() string { return s.logs.String() }

// FreeAddr is a loopback address with a port free at the time of the call.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
