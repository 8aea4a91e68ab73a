package notify_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/notify"
	"vigil/scoring"
	"vigil/store"
	"vigil/trial"
)

// smtpServer is a small SMTP server speaking enough of RFC 5321 for net/smtp:
// greeting, EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
type smtpServer struct {
	ln net.Listener
	// tls, when set, is offered with STARTTLS.
	tls *tls.Config
	// user and pass, when set, are offered (AUTH PLAIN) and required.
	user, pass string
	// rcptReply answers RCPT TO for an address instead of 250.
	rcptReply map[string]string

	mu       sync.Mutex
	msgs     []smtpMessage
	sessions int
	wg       sync.WaitGroup
}

type smtpMessage struct {
	from   string
	to     []string
	data   string
	tls    bool
	authed string
}

func newSMTPServer(t *testing.T, configure func(*smtpServer)) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln}
	if configure != nil {
		configure(s)
	}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(t, conn) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *smtpServer) addr() string { return s.ln.Addr().String() }

func (s *smtpServer) messages() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

func (s *smtpServer) serve(t *testing.T, conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	tp := textproto.NewConn(conn)
	reply := func(lines ...string) {
		for _, l := range lines {
			if err := tp.PrintfLine("%s", l); err != nil {
				return
			}
		}
	}
	reply("220 mx.test ESMTP ready")
	var (
		cur     smtpMessage
		secured bool
		authed  string
	)
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			ext := []string{"mx.test greets " + arg, "8BITMIME", "SIZE 1048576"}
			if s.tls != nil && !secured {
				ext = append(ext, "STARTTLS")
			}
			if s.user != "" {
				ext = append(ext, "AUTH PLAIN")
			}
			for i, e := range ext {
				sep := "-"
				if i == len(ext)-1 {
					sep = " "
				}
				reply("250" + sep + e)
			}
		case "HELO":
			reply("250 mx.test")
		case "STARTTLS":
			if s.tls == nil || secured {
				reply("502 5.5.1 not offered")
				continue
			}
			reply("220 2.0.0 go ahead")
			tc := tls.Server(conn, s.tls)
			if err := tc.Handshake(); err != nil {
				t.Errorf("smtp server: TLS handshake: %v", err)
				return
			}
			conn, tp, secured = tc, textproto.NewConn(tc), true
			defer tc.Close()
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			raw, err := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(raw), "\x00")
			if !strings.EqualFold(mech, "PLAIN") || err != nil || len(parts) != 3 ||
				parts[1] != s.user || parts[2] != s.pass {
				reply("535 5.7.8 authentication failed")
				continue
			}
			authed = parts[1]
			reply("235 2.7.0 authenticated")
		case "MAIL":
			if s.user != "" && authed == "" {
				reply("530 5.7.0 authentication required")
				continue
			}
			cur = smtpMessage{from: addrArg(arg), tls: secured, authed: authed}
			reply("250 2.1.0 ok")
		case "RCPT":
			to := addrArg(arg)
			if r, ok := s.rcptReply[to]; ok {
				reply(r)
				continue
			}
			cur.to = append(cur.to, to)
			reply("250 2.1.5 ok")
		case "DATA":
			if len(cur.to) == 0 {
				reply("554 5.5.1 no valid recipients")
				continue
			}
			reply("354 end with <CRLF>.<CRLF>")
			lines, err := tp.ReadDotLines()
			if err != nil {
				return
			}
			cur.data = strings.Join(lines, "\n")
			s.mu.Lock()
			s.msgs = append(s.msgs, cur)
			s.mu.Unlock()
			cur = smtpMessage{}
			reply("250 2.0.0 queued")
		case "RSET":
			cur = smtpMessage{}
			reply("250 2.0.0 ok")
		case "NOOP":
			reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("502 5.5.2 command not recognised")
		}
	}
}

// addrArg extracts the address from "FROM:<a@b>" or "TO:<a@b> PARAMS".
func addrArg(arg string) string {
	_, rest, _ := strings.Cut(arg, "<")
	addr, _, _ := strings.Cut(rest, ">")
	return addr
}

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mx.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// TestEmail delivers through the test SMTP server and checks what arrived.
func TestEmail(t *testing.T) {
	cert, pool := selfSigned(t)
	recipients := []string{"On Call <oncall@site.example>", "pi@site.example"}
	tests := []struct {
		name      string
		configure func(*smtpServer)
		cfg       func(addr string) notify.SMTPConfig
		to        []string
		max       int
		// wantStatus and wantAttempts are the notification's end state.
		wantStatus   string
		wantAttempts int
		wantErr      string
		wantTLS      bool
		wantAuthed   string
	}{
		{
			name: "plain on loopback",
			cfg: func(addr string) notify.SMTPConfig {
				return notify.SMTPConfig{Addr: addr, From: "Vigil <vigil@sponsor.example>"}
			},
			to:         recipients,
			wantStatus: store.NotifySent, wantAttempts: 1,
		},
		{
			name: "STARTTLS and AUTH PLAIN",
			configure: func(s *smtpServer) {
				s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
				s.user, s.pass = "vigil", "relay-password"
			},
			cfg: func(addr string) notify.SMTPConfig {
				return notify.SMTPConfig{Addr: addr, From: "Vigil <vigil@sponsor.example>",
					Username: "vigil", Password: "relay-password", TLSConfig: &tls.Config{RootCAs: pool}}
			},
			to:         recipients,
			wantStatus: store.NotifySent, wantAttempts: 1, wantTLS: true, wantAuthed: "vigil",
		},
		{
			name: "wrong password is dead",
			configure: func(s *smtpServer) {
				s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
				s.user, s.pass = "vigil", "relay-password"
			},
			cfg: func(addr string) notify.SMTPConfig {
				return notify.SMTPConfig{Addr: addr, From: "vigil@sponsor.example",
					Username: "vigil", Password: "wrong", TLSConfig: &tls.Config{RootCAs: pool}}
			},
			to:         recipients,
			wantStatus: store.NotifyDead, wantAttempts: 1, wantErr: "535",
		},
		{
			name: "unknown mailbox (550) is dead at once",
			configure: func(s *smtpServer) {
				s.rcptReply = map[string]string{"gone@site.example": "550 5.1.1 no such user"}
			},
			cfg: func(addr string) notify.SMTPConfig {
				return notify.SMTPConfig{Addr: addr, From: "vigil@sponsor.example"}
			},
			to:         []string{"pi@site.example", "gone@site.example"},
			wantStatus: store.NotifyDead, wantAttempts: 1, wantErr: "550",
		},
		{
			name: "busy mailbox (451) is retried",
			configure: func(s *smtpServer) {
				s.rcptReply = map[string]string{"busy@site.example": "451 4.3.0 try later"}
			},
			cfg: func(addr string) notify.SMTPConfig {
				return notify.SMTPConfig{Addr: addr, From: "vigil@sponsor.example"}
			},
			to:         []string{"busy@site.example"},
			max:        3,
			wantStatus: store.NotifyDead, wantAttempts: 3, wantErr: "451",
		},
		{
			name: "no recipients is dead",
			cfg: func(addr string) notify.SMTPConfig {
				return notify.SMTPConfig{Addr: addr, From: "vigil@sponsor.example"}
			},
			wantStatus: store.NotifyDead, wantAttempts: 1, wantErr: "no recipients",
		},
		{
			name: "bad recipient address is dead",
			cfg: func(addr string) notify.SMTPConfig {
				return notify.SMTPConfig{Addr: addr, From: "vigil@sponsor.example"}
			},
			to:         []string{"pi@site.example\r\nBcc: evil@x.example"},
			wantStatus: store.NotifyDead, wantAttempts: 1, wantErr: "not an address",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newSMTPServer(t, tc.configure)
			sender, err := notify.NewEmail(tc.cfg(srv.addr()))
			if err != nil {
				t.Fatalf("NewEmail: %v", err)
			}
			s := openOutbox(t)
			a := testAlert("A-mail", scoring.RiskCritical)
			enqueue(t, s, notificationFor(t, a, 0, trial.Channel{Kind: "email", To: tc.to}))
			cfg := fastConfig()
			cfg.MaxAttempts = tc.max
			start(t, notify.NewDispatcher(s, map[string]notify.Sender{"email": sender}, cfg))

			n := settled(t, s, a.AlertID, 1)[0]
			if n.Status != tc.wantStatus || n.Attempts != tc.wantAttempts {
				t.Fatalf("notification %s after %d attempts (%q), want %s after %d",
					n.Status, n.Attempts, n.LastError, tc.wantStatus, tc.wantAttempts)
			}
			if !strings.Contains(n.LastError, tc.wantErr) {
				t.Errorf("LastError = %q, want it to say %q", n.LastError, tc.wantErr)
			}
			if strings.Contains(n.LastError, "relay-password") || strings.Contains(n.LastError, "wrong") {
				t.Errorf("LastError = %q holds the password", n.LastError)
			}
			msgs := srv.messages()
			if tc.wantStatus != store.NotifySent {
				if len(msgs) != 0 {
					t.Errorf("%d messages delivered, want none", len(msgs))
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("%d messages delivered, want 1", len(msgs))
			}
			checkEmail(t, msgs[0], n, tc.wantTLS, tc.wantAuthed)
		})
	}
}

func checkEmail(t *testing.T, got smtpMessage, n store.Notification, wantTLS bool, wantAuthed string) {
	t.Helper()
	if got.from != "vigil@sponsor.example" {
		t.Errorf("MAIL FROM = %q", got.from)
	}
	if want := []string{"oncall@site.example", "pi@site.example"}; !slices.Equal(got.to, want) {
		t.Errorf("RCPT TO = %v, want %v", got.to, want)
	}
	if got.tls != wantTLS || got.authed != wantAuthed {
		t.Errorf("tls %v authed %q, want %v %q", got.tls, got.authed, wantTLS, wantAuthed)
	}
	m, err := mail.ReadMessage(bufio.NewReader(strings.NewReader(got.data)))
	if err != nil {
		t.Fatalf("delivered message does not parse: %v\n%s", err, got.data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "[Vigil] CRITICAL alert A-mail — trial T008 site S01"; subject != want {
		t.Errorf("Subject = %q, want %q", subject, want)
	}
	to, err := m.Header.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Name != "On Call" || to[1].Address != "pi@site.example" {
		t.Errorf("To = %v (err %v)", to, err)
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if id := m.Header.Get("Message-ID"); !strings.HasPrefix(id, "<vigil-notification-") || !strings.HasSuffix(id, "@sponsor.example>") {
		t.Errorf("Message-ID = %q", id)
	}
	if m.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("Auto-Submitted = %q", m.Header.Get("Auto-Submitted"))
	}
	if m.Header.Get("Bcc") != "" {
		t.Errorf("unexpected Bcc header")
	}
	var r io.Reader = m.Body
	switch cte := m.Header.Get("Content-Transfer-Encoding"); cte {
	case "7bit":
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	default:
		t.Errorf("Content-Transfer-Encoding = %q", cte)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	body := string(raw)
	assertNoPHI(t, "email body", body)
	assertNoPHI(t, "email", got.data)
	for _, want := range []string{"A-mail", "CRITICAL", "T008", "S01", "P-0042", "news2_high, symptom_severe",
		"https://vigil.example.org/#alert=A-mail", "2026-11-26T08:00:00Z"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
}

// TestEmailRefusesClearTextOffLoopback: a relay that is not on loopback and
// does not offer STARTTLS gets no message (and no password); the failure is
// temporary, since the relay may be fixed.
func TestEmailRefusesClearTextOffLoopback(t *testing.T) {
	ip := nonLoopbackIP(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	srv := &smtpServer{ln: ln}
	srv.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			srv.wg.Go(func() { srv.serve(t, conn) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		srv.wg.Wait()
	})

	sender, err := notify.NewEmail(notify.SMTPConfig{Addr: srv.addr(), From: "vigil@sponsor.example"})
	if err != nil {
		t.Fatal(err)
	}
	a := testAlert("A-clear", scoring.RiskCritical)
	n := notificationFor(t, a, 0, trial.Channel{Kind: "email", To: []string{"pi@site.example"}})
	msg, err := notify.NewMessage(n, "")
	if err != nil {
		t.Fatal(err)
	}
	err = sender.Send(t.Context(), n, msg)
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") || notify.IsPermanent(err) {
		t.Errorf("Send to a clear-text relay on %s = %v, want a temporary STARTTLS error", ip, err)
	}
	if got := srv.messages(); len(got) != 0 {
		t.Errorf("%d messages delivered in clear text", len(got))
	}
}

// nonLoopbackIP returns an address of this machine that is not loopback, or
// skips the test.
func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("interface addresses: %v", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address")
	return ""
}

func TestNewEmailConfig(t *testing.T) {
	for _, cfg := range []notify.SMTPConfig{
		{Addr: "mail.example", From: "vigil@example.org"},
		{Addr: "mail.example:587", From: "not an address"},
		{Addr: ":587", From: "vigil@example.org"},
	} {
		if _, err := notify.NewEmail(cfg); err == nil {
			t.Errorf("NewEmail(%+v): no error", cfg)
		}
	}
	if _, err := notify.NewEmail(notify.SMTPConfig{Addr: "mail.example:587", From: "Vigil <vigil@example.org>"}); err != nil {
		t.Errorf("NewEmail(valid): %v", err)
	}
}
