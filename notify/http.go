package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// httpTimeout bounds one HTTP delivery, connection included: a receiver
// that hangs must not hold a dispatcher slot for long.
const httpTimeout = 10 * time.Second

// newHTTPClient is the client senders use unless given one: a bounded
// timeout, and redirects not followed (see IsPermanentStatus).
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: httpTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// checkURL accepts https, and plain http only to a loopback host (a sidecar,
// a test) or when allowHTTP says so: a PagerDuty routing key or a signed
// alert should not cross a network in clear text.
func checkURL(kind, raw string, allowHTTP bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		// The URL itself is not repeated: it may embed a token.
		return nil, Permanent(fmt.Errorf("%s: channel URL is not an absolute URL", kind))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP && !isLoopback(u.Hostname()) {
			return nil, Permanent(fmt.Errorf("%s: refusing plain http to a non-loopback host", kind))
		}
	default:
		return nil, Permanent(fmt.Errorf("%s: channel URL scheme %q is not http(s)", kind, u.Scheme))
	}
	return u, nil
}

// isLoopback reports whether host is this machine: localhost or a loopback
// address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// post sends body to u and classifies the outcome: any 2xx is delivered;
// see IsPermanentStatus for the rest.
func post(ctx context.Context, client *http.Client, kind string, u *url.URL, body []byte, header http.Header) error {
	if client == nil {
		client = newHTTPClient()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("%s: build request: %w", kind, err))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Vigil-Notify/1")
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which may hold a token: keep only
		// what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &Error{Err: fmt.Errorf("%s: POST: %w", kind, err)}
	}
	defer resp.Body.Close()
	// Drained (within reason) so the connection can be reused; what the
	// receiver said is not kept, only its status.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &Error{
		Permanent:  IsPermanentStatus(resp.StatusCode),
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Err:        fmt.Errorf("%s: HTTP %d", kind, resp.StatusCode),
	}
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date (RFC 9110
// 10.2.3); anything else, or a time already past, is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
