// Package redistest runs a throwaway redis-server for tests: on a free
// loopback port, in a temporary directory, without persistence, so that
// Restart loses every key like a production Redis restarted without RDB or
// AOF. It also offers a TCP proxy that can make connections silently dead.
//
// If VIGIL_TEST_REDIS_URL is set, Start uses that server instead (Restart and
// Stop then skip the test). If redis-server is not installed, Start skips the
// test, or fails it when VIGIL_REQUIRE_SERVICES is set.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server is a redis-server for one test.
type Server struct {
	// Addr is host:port; URL is redis://Addr/0.
	Addr string
	URL  string

	tb       testing.TB
	external bool
	bin      string
	dir      string
	port     int

	mu     sync.Mutex
	cmd    *exec.Cmd
	out    *os.File
	exited chan struct{}
}

// Start starts a redis-server and stops it when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if u := os.Getenv("VIGIL_TEST_REDIS_URL"); u != "" {
		pu, err := url.Parse(u)
		if err != nil {
			tb.Fatalf("redistest: VIGIL_TEST_REDIS_URL: %v", err)
		}
		return &Server{Addr: pu.Host, URL: u, tb: tb, external: true}
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, statErr := os.Stat("/usr/bin/redis-server"); statErr == nil {
			bin = "/usr/bin/redis-server"
		} else if os.Getenv("VIGIL_REQUIRE_SERVICES") != "" {
			tb.Fatal("redistest: redis-server not found and VIGIL_REQUIRE_SERVICES is set")
		} else {
			tb.Skip("redistest: redis-server not found (apt-get install redis-server)")
		}
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir()}
	var lastErr error
	for range 5 {
		if s.port, lastErr = freePort(); lastErr != nil {
			continue
		}
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		tb.Fatalf("redistest: %v", lastErr)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.URL = "redis://" + s.Addr + "/0"
	tb.Cleanup(s.Stop)
	return s
}

// External reports whether the server is one given by VIGIL_TEST_REDIS_URL.
func (s *Server) External() bool { return s.external }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(addr) == nil {
			break
		}
		select {
		case <-exited:
			out.Close()
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("redis-server exited at start: %s", lastLines(log, 5))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			out.Close()
			return fmt.Errorf("redis-server on %s did not answer PING", addr)
		}
	}
	s.cmd, s.out, s.exited = cmd, out, exited
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// Stop stops the server (its data is lost). It is idempotent; Restart starts
// it again on the same port.
func (s *Server) Stop() {
	if s.external {
		s.tb.Skip("redistest: cannot stop the server of VIGIL_TEST_REDIS_URL")
	}
	s.mu.Lock()
	cmd, out, exited := s.cmd, s.out, s.exited
	s.cmd, s.out, s.exited = nil, nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
	out.Close()
}

// Restart stops the server if it runs and starts an empty one on the same
// port. Tests needing it are skipped with VIGIL_TEST_REDIS_URL.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	var err error
	for range 50 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the port may linger
	}
	s.tb.Fatalf("redistest: restart: %v", err)
}

// Proxy forwards TCP connections to a server. Blackhole makes the current
// subscriber connections silently dead: they stay open, but nothing is
// forwarded any more in either direction, like a connection behind a
// crashed NAT or a partitioned network.
type Proxy struct {
	Addr string
	URL  string

	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[*proxyConn]struct{}
}

type proxyConn struct {
	client, server net.Conn
	subscriber     atomic.Bool // sent a SUBSCRIBE
	dead           atomic.Bool
}

// NewProxy listens on a free loopback port and forwards to target (host:port)
// until the test ends.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: proxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln, target: target, conns: make(map[*proxyConn]struct{})}
	p.URL = "redis://" + p.Addr + "/0"
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxyConn{client: c, server: s}
		p.mu.Lock()
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pc, c, s, true)
		go p.pipe(pc, s, c, false)
	}
}

func (p *Proxy) pipe(pc *proxyConn, from, to net.Conn, upstream bool) {
	defer p.wg.Done()
	defer func() {
		pc.client.Close()
		pc.server.Close()
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if upstream && bytes.Contains(bytes.ToLower(buf[:n]), []byte("subscribe")) {
				pc.subscriber.Store(true)
			}
			if !pc.dead.Load() {
				if _, werr := to.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// BlackholeSubscribers silently kills the subscriber connections open now;
// later connections work. It returns how many it killed.
func (p *Proxy) BlackholeSubscribers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for pc := range p.conns {
		if pc.subscriber.Load() {
			pc.dead.Store(true)
			n++
		}
	}
	return n
}

// Close stops the proxy and its connections.
func (p *Proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for pc := range p.conns {
		pc.client.Close()
		pc.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
