// Package ui owns the board's static files: the HTML, CSS and JavaScript of the
// live safety board, with the vendored Preact and htm modules it loads through
// an import map, embedded in the binary. It serves them with strict security
// headers and has no build step. It imports nothing of Vigil's; the server
// mounts Handler at "/".
package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"
)

//go:embed static
var files embed.FS

// Static returns the board's files, rooted at the board's top folder
// (index.html, app.css, js/, vendor/).
func Static() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // cannot happen: "static" is embedded
	}
	return sub
}

// asset is one file ready to serve, and its gzip form when that is smaller.
type asset struct {
	body        []byte
	gz          []byte
	etag        string
	contentType string
}

var (
	loadOnce sync.Once
	assets   map[string]asset
	csp      string
)

// importMapRE finds the inline import map of index.html, the one inline script
// the policy allows, by its hash.
var importMapRE = regexp.MustCompile(`(?s)<script type="importmap">(.*?)</script>`)

func load() {
	assets = map[string]asset{}
	static := Static()
	err := fs.WalkDir(static, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(static, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		assets[name] = asset{
			body:        body,
			gz:          compress(body),
			etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
			contentType: contentType(name),
		}
		return nil
	})
	if err != nil {
		panic(err) // cannot happen: an embedded FS reads
	}
	csp = policy(assets["index.html"].body)
}

// ContentSecurityPolicy returns the policy the board is served with: only the
// board's own origin for scripts, styles, images, fetches and WebSockets, no
// inline script except the import map, allowed by its hash.
func ContentSecurityPolicy() string {
	loadOnce.Do(load)
	return csp
}

func policy(index []byte) string {
	scripts := "'self'"
	for _, m := range importMapRE.FindAllSubmatch(index, -1) {
		sum := sha256.Sum256(m[1])
		scripts += " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src " + scripts,
		"style-src 'self'",
		"img-src 'self' data:",
		// 'self' covers the board's own ws: and wss: (CSP Level 3).
		"connect-src 'self'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
}

// compress gzips an asset once, at start-up: the board's scripts shrink to
// about a quarter, which is most of a first paint on a slow link. Nil when
// it would not be smaller (images).
func compress(body []byte) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	_, _ = w.Write(body)
	_ = w.Close()
	if b.Len() >= len(body)*9/10 {
		return nil
	}
	return b.Bytes()
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".json":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	default:
		return "text/plain; charset=utf-8"
	}
}

// Handler serves the board: index.html at "/", every other file at its path
// under static/. Responses carry a strict Content-Security-Policy and
// "Cache-Control: no-cache" with a content ETag, so a browser revalidates
// cheaply (304) and never runs a stale board after an upgrade. Only GET and
// HEAD are served.
func Handler() http.Handler {
	loadOnce.Do(load)
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	a, ok := assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	body, etag := a.body, a.etag
	if a.gz != nil {
		h.Set("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			// Its own ETag: a cache must not answer a gzip request with the
			// identity body's validator, or the other way round.
			body, etag = a.gz, strings.TrimSuffix(a.etag, `"`)+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	// ServeContent answers If-None-Match with 304, and Range and HEAD.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}
