package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestIndexAtRoot(t *testing.T) {
	res := get(t, Handler(), "GET", "/", nil)
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	body, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(body), `<script type="module" src="js/main.js">`) {
		t.Fatalf("index.html not served at /")
	}
	if got := res.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control %q", got)
	}
	if res.Header.Get("ETag") == "" {
		t.Error("no ETag")
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	res := get(t, Handler(), "GET", "/", nil)
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "connect-src 'self'", "object-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	// The import map is the only inline script, allowed by its hash.
	index, _ := fs.ReadFile(Static(), "index.html")
	m := regexp.MustCompile(`(?s)<script type="importmap">(.*?)</script>`).FindSubmatch(index)
	if m == nil {
		t.Fatal("no import map in index.html")
	}
	sum := sha256.Sum256(m[1])
	if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
		t.Errorf("CSP %q lacks the import map hash %s", csp, want)
	}
	inline := regexp.MustCompile(`<script(?:\s+type="module")?>`).FindAll(index, -1)
	if len(inline) > 0 {
		t.Errorf("index.html has inline scripts: %q", inline)
	}
	if res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
}

func TestAssets(t *testing.T) {
	h := Handler()
	for path, ctype := range map[string]string{
		"/app.css":                 "text/css; charset=utf-8",
		"/js/main.js":              "text/javascript; charset=utf-8",
		"/vendor/preact.module.js": "text/javascript; charset=utf-8",
		"/vendor/hooks.module.js":  "text/javascript; charset=utf-8",
		"/vendor/htm.module.js":    "text/javascript; charset=utf-8",
		"/favicon.svg":             "image/svg+xml",
		"/vendor/LICENSE.preact":   "text/plain; charset=utf-8",
	} {
		res := get(t, h, "GET", path, nil)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != ctype {
			t.Errorf("%s: %d %q", path, res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
	if res := get(t, h, "GET", "/nope.js", nil); res.StatusCode != 404 {
		t.Errorf("missing file: %d", res.StatusCode)
	}
	if res := get(t, h, "GET", "/js/", nil); res.StatusCode != 404 {
		t.Errorf("directory: %d", res.StatusCode)
	}
	if res := get(t, h, "GET", "/../ui.go", nil); res.StatusCode != 404 {
		t.Errorf("escape: %d", res.StatusCode)
	}
	if res := get(t, h, "POST", "/", nil); res.StatusCode != 405 {
		t.Errorf("POST: %d", res.StatusCode)
	}
}

func TestRevalidation(t *testing.T) {
	h := Handler()
	etag := get(t, h, "GET", "/js/main.js", nil).Header.Get("ETag")
	res := get(t, h, "GET", "/js/main.js", map[string]string{"If-None-Match": etag})
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", res.StatusCode)
	}
}

// Every module the board imports must be embedded, and every bare import must
// be in the import map.
func TestImportsResolve(t *testing.T) {
	static := Static()
	index, _ := fs.ReadFile(static, "index.html")
	mapped := map[string]bool{}
	for _, m := range regexp.MustCompile(`"([a-z/]+)":\s*"\./([^"]+)"`).FindAllSubmatch(index, -1) {
		mapped[string(m[1])] = true
		if _, err := fs.Stat(static, string(m[2])); err != nil {
			t.Errorf("import map entry %s: %v", m[1], err)
		}
	}
	imp := regexp.MustCompile(`(?m)(?:^import|\bfrom)\s*['"]([^'"]+)['"]`)
	_ = fs.WalkDir(static, "js", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, _ := fs.ReadFile(static, name)
		for _, m := range imp.FindAllSubmatch(src, -1) {
			spec := string(m[1])
			if strings.HasPrefix(spec, "./") || strings.HasPrefix(spec, "../") {
				if _, err := fs.Stat(static, path.Join(path.Dir(name), spec)); err != nil {
					t.Errorf("%s imports %s: %v", name, spec, err)
				}
			} else if !mapped[spec] {
				t.Errorf("%s imports %s, which the import map lacks", name, spec)
			}
		}
		return nil
	})
}

// Scripts go out gzipped to a browser that accepts it, with their own
// validator, and as they are to one that does not.
func TestGzip(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		accept string
		gzip   bool
	}{
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{"gzip;q=0", false},
		{"", false},
		{"identity", false},
	} {
		req := httptest.NewRequest(http.MethodGet, "/vendor/uPlot.esm.js", nil)
		if tc.accept != "" {
			req.Header.Set("Accept-Encoding", tc.accept)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%q: status %d", tc.accept, rec.Code)
		}
		if got := rec.Header().Get("Content-Encoding") == "gzip"; got != tc.gzip {
			t.Fatalf("%q: gzip %v, want %v", tc.accept, got, tc.gzip)
		}
		if rec.Header().Get("Vary") != "Accept-Encoding" {
			t.Errorf("%q: no Vary", tc.accept)
		}
		body := rec.Body.Bytes()
		if tc.gzip {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(rec.Header().Get("ETag"), `-gz"`) {
				t.Errorf("%q: ETag %s", tc.accept, rec.Header().Get("ETag"))
			}
		}
		want, _ := fs.ReadFile(Static(), "vendor/uPlot.esm.js")
		if !bytes.Equal(body, want) {
			t.Fatalf("%q: body differs from the file", tc.accept)
		}
	}
}
