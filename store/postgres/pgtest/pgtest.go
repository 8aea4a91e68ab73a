// Package pgtest owns the PostgreSQL server of tests: it starts a throwaway
// PostgreSQL (Debian's binaries, /usr/lib/postgresql/<version>/bin, found
// through pg_config) in a temporary directory on a free loopback port, once
// per test binary, and hands out fresh empty databases on it. With
// VIGIL_TEST_POSTGRES_URL set (a postgres:// URL of a superuser on a
// maintenance database) it uses that server instead. Without binaries the
// tests that ask for a server are skipped, unless VIGIL_REQUIRE_SERVICES is
// set, when they fail. It imports pgx and the standard library, nothing of
// Vigil's.
//
// Typical use:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		url := pgtest.NewDatabase(t, pgtest.Start(t))
//		…
//	}
//
// The server runs with fsync off (set VIGIL_TEST_POSTGRES_FSYNC=on to keep
// it, for benchmarks that should pay for durability), listens only on
// 127.0.0.1 and keeps its socket in its own directory. Running as root, it
// runs initdb and pg_ctl as the postgres system user (PostgreSQL refuses
// root), through runuser.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables.
const (
	// EnvURL names an existing server to use instead of starting one.
	EnvURL = "VIGIL_TEST_POSTGRES_URL"
	// EnvRequire turns a missing PostgreSQL from a skip into a failure.
	EnvRequire = "VIGIL_REQUIRE_SERVICES"
	// EnvFsync=on keeps fsync (and synchronous commit) on in the started server.
	EnvFsync = "VIGIL_TEST_POSTGRES_FSYNC"
)

// ErrUnavailable is returned (wrapped) by StartServer when the PostgreSQL
// binaries, or the user to run them as, are missing.
var ErrUnavailable = errors.New("pgtest: PostgreSQL is not installed")

// The server started by Main, shared by the whole test binary.
var shared struct {
	mu      sync.Mutex
	started bool // Main ran
	url     string
	err     error
}

// Main starts one server for the test binary, runs m and stops the server:
// call it from TestMain. When no server can be started it still runs m, and
// Start then skips (or fails) each test that asks for one. With EnvURL set it
// starts nothing.
func Main(m *testing.M) int {
	if os.Getenv(EnvURL) != "" {
		return m.Run()
	}
	url, stop, err := StartServer()
	shared.mu.Lock()
	shared.started, shared.url, shared.err = true, url, err
	shared.mu.Unlock()
	if err != nil {
		if !errors.Is(err, ErrUnavailable) {
			fmt.Fprintln(os.Stderr, err)
		}
		return m.Run()
	}
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

// Start returns the URL of the server to test against: EnvURL's, else the
// one Main started, else a server started for this test and stopped when it
// ends. Without PostgreSQL it skips tb (fails it with EnvRequire set).
func Start(tb testing.TB) string {
	tb.Helper()
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	shared.mu.Lock()
	started, u, err := shared.started, shared.url, shared.err
	shared.mu.Unlock()
	if !started {
		var stop func() error
		u, stop, err = StartServer()
		if err == nil {
			tb.Cleanup(func() {
				if err := stop(); err != nil {
					tb.Errorf("pgtest: %v", err)
				}
			})
		}
	}
	if err != nil {
		if errors.Is(err, ErrUnavailable) && os.Getenv(EnvRequire) == "" {
			tb.Skipf("%v (set %s to fail instead)", err, EnvRequire)
		}
		tb.Fatalf("pgtest: %v", err)
	}
	return u
}

// StartServer initialises and starts a new server, for a TestMain or a
// harness that manages its lifetime itself. stop shuts it down (immediate
// mode: nothing of it is kept) and removes its directory. The error wraps
// ErrUnavailable when PostgreSQL is not installed.
func StartServer() (url string, stop func() error, err error) {
	bindir, err := findBindir()
	if err != nil {
		return "", nil, err
	}
	run, uid, gid, err := runner()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "vigil-pg-")
	if err != nil {
		return "", nil, fmt.Errorf("pgtest: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			cleanup()
			return "", nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	logFile := filepath.Join(dir, "postgres.log")
	initdb := run(filepath.Join(bindir, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	fsync := "off"
	if os.Getenv(EnvFsync) == "on" {
		fsync = "on"
	}
	var port int
	for attempt := 0; ; attempt++ {
		if port, err = freePort(); err != nil {
			cleanup()
			return "", nil, fmt.Errorf("pgtest: %w", err)
		}
		opts := strings.Join([]string{
			"-c port=" + strconv.Itoa(port),
			"-c listen_addresses=127.0.0.1",
			"-c unix_socket_directories=" + dir,
			"-c fsync=" + fsync,
			"-c synchronous_commit=" + fsync,
			"-c full_page_writes=" + fsync,
			"-c max_connections=300",
		}, " ")
		start := run(filepath.Join(bindir, "pg_ctl"), "-D", data, "-l", logFile, "-w", "-t", "60", "-o", opts, "start")
		out, err := start.CombinedOutput()
		if err == nil {
			break
		}
		if attempt == 2 {
			log, _ := os.ReadFile(logFile)
			cleanup()
			return "", nil, fmt.Errorf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, log)
		}
	}
	stop = func() error {
		out, err := run(filepath.Join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop").CombinedOutput()
		cleanup()
		if err != nil {
			return fmt.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
		}
		return nil
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), stop, nil
}

// findBindir returns the directory of initdb, pg_ctl and postgres: pg_config's
// answer, else the newest /usr/lib/postgresql/*/bin.
func findBindir() (string, error) {
	var candidates []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	globbed, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(globbed, func(i, j int) bool { return versionOf(globbed[i]) > versionOf(globbed[j]) })
	candidates = append(candidates, globbed...)
	for _, dir := range candidates {
		ok := true
		for _, bin := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
				ok = false
				break
			}
		}
		if ok {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: no initdb, pg_ctl and postgres in pg_config --bindir or /usr/lib/postgresql/*/bin", ErrUnavailable)
}

func versionOf(bindir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return v
}

// runner returns how to run a PostgreSQL binary: directly, or as the postgres
// user when running as root (with that user's uid and gid, else -1).
func runner() (run func(name string, args ...string) *exec.Cmd, uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return exec.Command, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: running as root and there is no postgres user to run it as", ErrUnavailable)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	runuser, err := exec.LookPath("runuser")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: running as root and runuser is missing", ErrUnavailable)
	}
	return func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(runuser, append([]string{"-u", "postgres", "--", name}, args...)...)
		// The postgres user cannot enter root's working directory.
		cmd.Dir = "/"
		return cmd
	}, uid, gid, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var dbCounter atomic.Int64

// NewDatabase creates a fresh, empty database on the server at serverURL and
// returns its URL; the database is dropped when tb ends.
func NewDatabase(tb testing.TB, serverURL string) string {
	tb.Helper()
	return NewDatabaseFrom(tb, serverURL, "")
}

// NewDatabaseFrom is NewDatabase with the new database a copy of template
// (a database nobody is connected to), "" for an empty one.
func NewDatabaseFrom(tb testing.TB, serverURL, template string) string {
	tb.Helper()
	name := fmt.Sprintf("vigil_test_%d_%d", os.Getpid(), dbCounter.Add(1))
	u, err := CreateDatabase(tb.Context(), serverURL, name, template)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := DropDatabase(context.Background(), serverURL, name); err != nil {
			tb.Errorf("%v", err)
		}
	})
	return u
}

// CreateDatabase creates database name on the server at serverURL, a copy of
// template ("" for an empty one), and returns its URL.
func CreateDatabase(ctx context.Context, serverURL, name, template string) (string, error) {
	u, err := DatabaseURL(serverURL, name)
	if err != nil {
		return "", err
	}
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	} else {
		// template0: nothing anyone added to template1 leaks in.
		sql += " TEMPLATE template0"
	}
	if err := adminExec(ctx, serverURL, sql); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return u, nil
}

// DropDatabase drops database name, disconnecting whoever is still on it.
func DropDatabase(ctx context.Context, serverURL, name string) error {
	if err := adminExec(ctx, serverURL, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop database %s: %w", name, err)
	}
	return nil
}

// DatabaseURL returns serverURL with its database replaced by name.
func DatabaseURL(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("pgtest: %q is not a postgres:// URL", redact(serverURL))
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

func adminExec(ctx context.Context, serverURL, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// redact hides a URL's password.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
