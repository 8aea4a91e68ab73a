package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"vigil/store"
)

// Webhook delivery headers.
const (
	HeaderTimestamp = "X-Vigil-Timestamp"
	HeaderSignature = "X-Vigil-Signature"
	HeaderDelivery  = "X-Vigil-Delivery"
)

// Webhook sends a Message as a signed JSON POST to the channel's URL.
//
// The request carries:
//
//	Content-Type: application/json
//	X-Vigil-Timestamp: <unix seconds when signed>
//	X-Vigil-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//	X-Vigil-Delivery: <notification id>
//
// The secret is the value of VIGIL_SECRET_<secret_ref> of the channel. A
// receiver verifies a delivery by:
//
//  1. reading the raw body, before any JSON parsing;
//  2. rejecting a timestamp more than a few minutes from its own clock (five
//     is usual): an old, validly signed request is a replay;
//  3. computing HMAC-SHA256 with the shared secret over the timestamp
//     header's exact text, a ".", and the body, hex-encoding it, and
//     comparing it in constant time with each "v1=" value of the signature
//     header (there may be several, comma-separated, while a secret is
//     being rotated); one match is enough;
//  4. treating a repeated X-Vigil-Delivery as the same notification:
//     delivery is at least once, so a retry after a lost response repeats
//     it with the same id.
//
// Verify does exactly this, for receivers written in Go. The receiver
// answers 2xx to accept; 408, 429 and 5xx (or no answer within 10 s) are
// retried with backoff, honouring Retry-After; any other status means the
// request is wrong and the notification is dead-lettered at once.
type Webhook struct {
	// Client defaults to one with a 10 s timeout that does not follow
	// redirects.
	Client *http.Client
	// Secrets defaults to EnvSecrets.
	Secrets SecretLookup
	// AllowHTTP permits plain http to non-loopback hosts.
	AllowHTTP bool
	// Now defaults to time.Now.
	Now func() time.Time
}

// NewWebhook returns a webhook sender that finds secrets with lookup (nil:
// EnvSecrets).
func NewWebhook(lookup SecretLookup) *Webhook {
	return &Webhook{Client: newHTTPClient(), Secrets: lookup}
}

// Send implements Sender.
func (w *Webhook) Send(ctx context.Context, n store.Notification, msg Message) error {
	u, err := checkURL(KindWebhook, n.Channel.URL, w.AllowHTTP)
	if err != nil {
		return err
	}
	key, err := secret(w.Secrets, KindWebhook, n.Channel.SecretRef)
	if err != nil {
		return err
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return Permanent(fmt.Errorf("webhook: encode: %w", err))
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := now().Unix()
	h := http.Header{}
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, Sign([]byte(key), ts, body))
	h.Set(HeaderDelivery, strconv.FormatInt(n.ID, 10))
	return post(ctx, w.Client, KindWebhook, u, body, h)
}

// Sign returns the X-Vigil-Signature value of body signed at ts:
// "v1=" + hex(HMAC-SHA256(secret, "<ts>." + body)).
func Sign(secret []byte, ts int64, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, strconv.FormatInt(ts, 10), body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrStaleTimestamp = errors.New("notify: webhook timestamp missing or outside tolerance")
	ErrBadSignature   = errors.New("notify: webhook signature does not match")
)

// Verify checks a webhook delivery as a receiver should (see Webhook):
// header's timestamp within tolerance of now, and a v1 signature over it and
// body made with secret.
func Verify(secret []byte, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	tsText := header.Get(HeaderTimestamp)
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrStaleTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStaleTimestamp
	}
	want := mac(secret, tsText, body)
	for part := range strings.SplitSeq(header.Get(HeaderSignature), ",") {
		v, ok := strings.CutPrefix(strings.TrimSpace(part), "v1=")
		if !ok {
			continue
		}
		got, err := hex.DecodeString(v)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrBadSignature
}
