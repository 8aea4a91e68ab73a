package integration

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// webhookReceiver is an on-call system's endpoint: it verifies Vigil's HMAC
// signature and timestamp, and fails the first failFirst attempts of each
// delivery on purpose so that retries are exercised.
type webhookReceiver struct {
	srv       *httptest.Server
	secret    string
	failFirst int

	mu         sync.Mutex
	attempts   map[string]int // delivery id → attempts
	badSigs    int
	bodies     []string
	deliveries chan string // delivery ids that succeeded
}

func newWebhookReceiver(t *testing.T, secret string, failFirst int) *webhookReceiver {
	w := &webhookReceiver{secret: secret, failFirst: failFirst, attempts: map[string]int{},
		deliveries: make(chan string, 100)}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhookReceiver) serve(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts := r.Header.Get("X-Vigil-Timestamp")
	sig := r.Header.Get("X-Vigil-Signature")
	id := r.Header.Get("X-Vigil-Delivery")
	mac := hmac.New(sha256.New, []byte(w.secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := "v1=" + hex.EncodeToString(mac.Sum(nil))
	sec, err := strconv.ParseInt(ts, 10, 64)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil || !hmac.Equal([]byte(sig), []byte(want)) || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute || id == "" {
		w.badSigs++
		rw.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.attempts[id]++
	if w.attempts[id] <= w.failFirst {
		rw.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.bodies = append(w.bodies, string(body))
	rw.WriteHeader(http.StatusOK)
	w.deliveries <- id
}

// smtpReceiver is a minimal SMTP server speaking enough of RFC 5321 for Go's
// net/smtp client: greeting, EHLO, MAIL, RCPT, DATA, QUIT.
type smtpReceiver struct {
	ln       net.Listener
	messages chan smtpMessage
}

type smtpMessage struct {
	From string
	To   []string
	Data string
}

func newSMTPReceiver(t *testing.T) *smtpReceiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpReceiver{ln: ln, messages: make(chan smtpMessage, 100)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.session(c)
		}
	}()
	return s
}

func (s *smtpReceiver) addr() string { return s.ln.Addr().String() }

func (s *smtpReceiver) session(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	reply := func(line string) { _, _ = io.WriteString(c, line+"\r\n") }
	reply("220 receiver.test ESMTP")
	var msg smtpMessage
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			reply("250-receiver.test")
			reply("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			msg = smtpMessage{From: strings.Trim(strings.TrimSpace(line)[10:], "<> ")}
			reply("250 OK")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			msg.To = append(msg.To, strings.Trim(strings.TrimSpace(line)[8:], "<> "))
			reply("250 OK")
		case cmd == "DATA":
			reply("354 end with <CRLF>.<CRLF>")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			msg.Data = b.String()
			s.messages <- msg
			reply("250 OK queued")
		case cmd == "QUIT":
			reply("221 bye")
			return
		case cmd == "RSET", cmd == "NOOP":
			reply("250 OK")
		default:
			reply("502 not implemented")
		}
	}
}
