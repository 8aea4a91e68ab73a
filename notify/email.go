package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"vigil/store"
)

// SMTPConfig is the mail relay that email notifications go through.
type SMTPConfig struct {
	// Addr is the relay's host:port (587 for submission with STARTTLS).
	Addr string
	// From is the sender address, e.g. "Vigil <vigil@example.org>".
	From string
	// Username and Password, when Username is set, authenticate with AUTH
	// PLAIN, which is only ever sent over TLS (or to a loopback relay).
	Username string
	Password string
	// TLSConfig is used for STARTTLS (a private CA, say); ServerName
	// defaults to Addr's host.
	TLSConfig *tls.Config
	// Hello is the name given in EHLO; default "localhost".
	Hello string
	// Timeout bounds one delivery, from dialling to QUIT; default 30 s.
	Timeout time.Duration
}

// Email sends a Message as a plain-text email to the channel's To addresses,
// one message to all of them, through an SMTP relay. It upgrades the
// connection with STARTTLS whenever the relay offers it and refuses to send
// without TLS except to a relay on a loopback address (a local MTA, tests).
//
// The Message-ID is derived from the notification id, so a retry after a
// lost reply repeats the same Message-ID and mail systems can drop the
// duplicate. A 5xx reply (an unknown mailbox, a rejected sender) is
// permanent; 4xx replies and network failures are retried.
type Email struct {
	cfg  SMTPConfig
	from *mail.Address
	host string
	// Now defaults to time.Now; it dates the message.
	Now func() time.Time
}

const defaultSMTPTimeout = 30 * time.Second

// NewEmail checks cfg and returns an email sender.
func NewEmail(cfg SMTPConfig) (*Email, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("notify: SMTP address %q is not host:port", cfg.Addr)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("notify: SMTP from %q: %w", cfg.From, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultSMTPTimeout
	}
	if cfg.Hello == "" {
		cfg.Hello = "localhost"
	}
	return &Email{cfg: cfg, from: from, host: host}, nil
}

// Send implements Sender.
func (e *Email) Send(ctx context.Context, n store.Notification, msg Message) error {
	if len(n.Channel.To) == 0 {
		return Permanent(errors.New("email: channel has no recipients"))
	}
	to := make([]*mail.Address, 0, len(n.Channel.To))
	for i, raw := range n.Channel.To {
		a, err := mail.ParseAddress(raw)
		if err != nil {
			return Permanent(fmt.Errorf("email: recipient %d is not an address", i))
		}
		to = append(to, a)
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	data, err := e.compose(n, msg, to, now())
	if err != nil {
		return Permanent(fmt.Errorf("email: compose: %w", err))
	}
	if err := e.deliver(ctx, to, data); err != nil {
		return classifySMTP(err)
	}
	return nil
}

// deliver runs one SMTP session: EHLO, STARTTLS, AUTH, MAIL, RCPT…, DATA,
// QUIT. net/smtp.SendMail would do most of it, but it has no deadline and
// would send mail in clear text to any relay that does not offer STARTTLS.
func (e *Email) deliver(ctx context.Context, to []*mail.Address, data []byte) error {
	deadline := time.Now().Add(e.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dialer := net.Dialer{Deadline: deadline}
	conn, err := dialer.DialContext(ctx, "tcp", e.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	// Every read and write of the session fails once the deadline passes or
	// ctx ends, so a stalled relay cannot hold a dispatcher slot.
	if err := conn.SetDeadline(deadline); err != nil {
		_ = conn.Close()
		return fmt.Errorf("set deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, e.host)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(e.cfg.Hello); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if e.cfg.TLSConfig != nil {
			tc = e.cfg.TLSConfig.Clone()
		}
		if tc.ServerName == "" {
			tc.ServerName = e.host
		}
		if err := c.StartTLS(tc); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	} else if !isLoopback(e.host) {
		return errors.New("relay does not offer STARTTLS; refusing to send in clear text")
	}
	if e.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return &Error{Permanent: true, Err: errors.New("relay does not offer AUTH but a username is configured")}
		}
		// PlainAuth itself refuses to send the password without TLS unless
		// the relay is on localhost.
		if err := c.Auth(smtp.PlainAuth("", e.cfg.Username, e.cfg.Password, e.host)); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(e.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	// One rejected recipient fails the whole message before DATA, so nobody
	// gets it twice when it is retried.
	for i, a := range to {
		if err := c.Rcpt(a.Address); err != nil {
			return fmt.Errorf("RCPT TO (recipient %d): %w", i, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	// The relay has the message once DATA's reply is 250; a failed QUIT
	// changes nothing about that.
	_ = c.Quit()
	return nil
}

// classifySMTP marks 5xx replies permanent (RFC 5321 4.2.1); 4xx replies
// and network errors stay temporary.
func classifySMTP(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return &Error{Permanent: e.Permanent, Err: fmt.Errorf("email: %w", err)}
	}
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return Permanent(fmt.Errorf("email: %w", err))
	}
	return &Error{Err: fmt.Errorf("email: %w", err)}
}

// Subject returns the email subject for msg.
func Subject(msg Message) string {
	return fmt.Sprintf("[Vigil] %s alert %s — trial %s site %s",
		strings.ToUpper(msg.Severity), msg.AlertID, msg.TrialID, msg.SiteID)
}

// Body returns the plain-text email body for msg: the Message's fields and
// nothing else.
func Body(msg Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Vigil safety alert\n\n")
	// Values are kept to one line each, whatever an id holds.
	row := func(k, v string) { fmt.Fprintf(&b, "%-10s %s\n", k+":", headerSafe(v)) }
	row("Alert", msg.AlertID)
	row("Severity", strings.ToUpper(msg.Severity))
	row("Status", msg.Status)
	row("Trial", msg.TrialID)
	row("Site", msg.SiteID)
	row("Patient", msg.PatientID+" (pseudonymous id)")
	reasons := strings.Join(msg.Reasons, ", ")
	if reasons == "" {
		reasons = "-"
	}
	row("Reasons", reasons)
	row("Tier", strconv.Itoa(msg.Tier))
	if !msg.OpenedAt.IsZero() {
		row("Opened", msg.OpenedAt.UTC().Format(time.RFC3339)+" (UTC)")
	}
	if msg.Link != "" {
		row("Open", msg.Link)
	}
	b.WriteString("\nThis message carries no clinical values. Review the patient in Vigil.\n")
	return b.String()
}

// compose builds the RFC 5322 message. Header values are stripped of
// control characters so that nothing in an alert can add a header.
func (e *Email) compose(n store.Notification, msg Message, to []*mail.Address, now time.Time) ([]byte, error) {
	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	rcpts := make([]string, len(to))
	for i, a := range to {
		rcpts[i] = a.String()
	}
	domain := "vigil.invalid"
	if _, d, ok := strings.Cut(e.from.Address, "@"); ok && d != "" {
		domain = d
	}
	header("From", e.from.String())
	header("To", strings.Join(rcpts, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", headerSafe(Subject(msg))))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<vigil-notification-"+strconv.FormatInt(n.ID, 10)+"@"+headerSafe(domain)+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	body := Body(msg)
	// Plain ASCII goes as is, legible in any mail tool and to a grep; only a
	// body with other characters (an id outside ASCII) needs encoding.
	plain := isASCII(body)
	if plain {
		header("Content-Transfer-Encoding", "7bit")
	} else {
		header("Content-Transfer-Encoding", "quoted-printable")
	}
	// RFC 3834: no vacation replies or bounces-to-humans loops.
	header("Auto-Submitted", "auto-generated")
	header(HeaderDelivery, strconv.FormatInt(n.ID, 10))
	b.WriteString("\r\n")
	body = strings.ReplaceAll(body, "\n", "\r\n")
	if plain {
		b.WriteString(body)
		return b.Bytes(), nil
	}
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// isASCII reports whether s can go as 7bit: ASCII, and no line over RFC
// 5322's 998 characters.
func isASCII(s string) bool {
	line := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x80:
			return false
		case c == '\n':
			line = 0
		default:
			line++
			if line > 998 {
				return false
			}
		}
	}
	return true
}

func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
