package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/store"
)

func TestBackoff(t *testing.T) {
	const base, maxWait = 2 * time.Second, 5 * time.Minute
	tests := []struct {
		attempt int
		ceil    time.Duration
	}{
		{0, base}, {1, base}, {2, 4 * time.Second}, {3, 8 * time.Second}, {4, 16 * time.Second},
		{8, 256 * time.Second}, {9, maxWait}, {64, maxWait}, {1 << 20, maxWait},
	}
	for _, tc := range tests {
		var hi time.Duration
		for range 500 {
			d := backoff(tc.attempt, base, maxWait)
			if d < 0 || d > tc.ceil {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", tc.attempt, d, tc.ceil)
			}
			hi = max(hi, d)
		}
		// Full jitter uses the whole window: 500 draws all in its lower
		// half would happen with probability 2^-500.
		if hi < tc.ceil/2 {
			t.Errorf("backoff(%d): largest of 500 draws %v, want some above %v", tc.attempt, hi, tc.ceil/2)
		}
	}
	if d := backoff(3, 0, maxWait); d != 0 {
		t.Errorf("backoff with no base = %v, want 0", d)
	}
}

func TestIsPermanentStatus(t *testing.T) {
	tests := []struct {
		code int
		want bool
	}{
		{200, false}, {202, false}, {301, true}, {302, true}, {307, true}, {400, true}, {401, true},
		{403, true}, {404, true}, {408, false}, {409, true}, {410, true}, {413, true}, {422, true},
		{429, false}, {500, false}, {502, false}, {503, false}, {504, false},
	}
	for _, tc := range tests {
		if got := IsPermanentStatus(tc.code); got != tc.want {
			t.Errorf("IsPermanentStatus(%d) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

func TestErrors(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name      string
		err       error
		permanent bool
		after     time.Duration
	}{
		{"plain error is temporary", base, false, 0},
		{"Permanent", Permanent(base), true, 0},
		{"wrapped Permanent", errors.Join(errors.New("ctx"), Permanent(base)), true, 0},
		{"temporary with Retry-After", &Error{RetryAfter: 7 * time.Second, Err: base}, false, 7 * time.Second},
	}
	for _, tc := range tests {
		if got := IsPermanent(tc.err); got != tc.permanent {
			t.Errorf("%s: IsPermanent = %v, want %v", tc.name, got, tc.permanent)
		}
		if got := retryAfter(tc.err); got != tc.after {
			t.Errorf("%s: retryAfter = %v, want %v", tc.name, got, tc.after)
		}
		if !errors.Is(tc.err, base) {
			t.Errorf("%s: does not unwrap to its cause", tc.name)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-5", 0}, {"30", 30 * time.Second}, {"999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.v, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url       string
		allowHTTP bool
		ok        bool
	}{
		{"https://hooks.example.org/vigil", false, true},
		{"http://127.0.0.1:8080/hook", false, true},
		{"http://[::1]:8080/hook", false, true},
		{"http://localhost/hook", false, true},
		{"http://hooks.example.org/hook", false, false},
		{"http://hooks.example.org/hook", true, true},
		{"ftp://hooks.example.org/hook", true, false},
		{"/relative", false, false},
		{"", false, false},
		{"https://", false, false},
	}
	for _, tc := range tests {
		_, err := checkURL("webhook", tc.url, tc.allowHTTP)
		if (err == nil) != tc.ok {
			t.Errorf("checkURL(%q, allowHTTP=%v) = %v, want ok=%v", tc.url, tc.allowHTTP, err, tc.ok)
		}
		if err != nil && !IsPermanent(err) {
			t.Errorf("checkURL(%q): %v is not permanent", tc.url, err)
		}
	}
}

func TestNewMessage(t *testing.T) {
	payload := `{"kind":"alert","alert_id":"A 1","patient_id":"P-7","trial_id":"T1","site_id":"S1",
		"severity":"critical","status":"open","reasons":["news2_high","Vital_limit","temp 41.2","x;y",""],
		"reading_id":"R9","opened_at":"2026-11-26T09:00:00+01:00","updated_at":"2026-11-26T08:01:00Z",
		"findings":[{"reason":"vital_limit","parameter":"temperature","value":41.2,"grade":3}],
		"acknowledged":{"sub":"u","name":"Dr Who","role":"r","at":"2026-11-26T08:02:00Z","meaning":"m","reason":"r"},
		"tier":0,"future_field":"chest pain"}`
	n := store.Notification{ID: 9, AlertID: "A 1", TrialID: "T1", Tier: 2, Payload: json.RawMessage(payload)}

	tests := []struct {
		base, link string
	}{
		{"", ""},
		{"https://vigil.example.org", "https://vigil.example.org/#alert=A+1"},
		{"https://vigil.example.org/", "https://vigil.example.org/#alert=A+1"},
		{"https://example.org/vigil/", "https://example.org/vigil/#alert=A+1"},
	}
	for _, tc := range tests {
		m, err := NewMessage(n, tc.base)
		if err != nil {
			t.Fatalf("NewMessage: %v", err)
		}
		if m.Link != tc.link {
			t.Errorf("base %q: link %q, want %q", tc.base, m.Link, tc.link)
		}
		b, _ := json.Marshal(m)
		for _, leak := range []string{"41.2", "temperature", "Dr Who", "chest", "R9", "findings", "temp"} {
			if strings.Contains(string(b), leak) {
				t.Errorf("message %s contains %q", b, leak)
			}
		}
		if m.Tier != 2 || m.Severity != "critical" || m.PatientID != "P-7" || m.SiteID != "S1" ||
			!m.OpenedAt.Equal(time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)) || m.OpenedAt.Location() != time.UTC {
			t.Errorf("message = %+v", m)
		}
		if strings.Join(m.Reasons, ",") != "news2_high" {
			t.Errorf("reasons = %q, want only the rule code", m.Reasons)
		}
	}

	bad := []struct {
		name string
		n    store.Notification
	}{
		{"payload not an alert", store.Notification{AlertID: "A", Payload: json.RawMessage(`[1]`)}},
		{"payload of another alert", store.Notification{AlertID: "B", Payload: json.RawMessage(`{"alert_id":"A"}`)}},
	}
	for _, tc := range bad {
		if _, err := NewMessage(tc.n, ""); err == nil || !IsPermanent(err) {
			t.Errorf("%s: err = %v, want permanent", tc.name, err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"alert_id":"A1"}`)
	now := time.Unix(1_790_000_000, 0)
	signed := func(ts int64, sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	good := Sign(secret, now.Unix(), body)
	if !strings.HasPrefix(good, "v1=") || len(good) != 3+64 {
		t.Fatalf("Sign = %q, want v1= and 64 hex digits", good)
	}
	tests := []struct {
		name   string
		header http.Header
		body   []byte
		want   error
	}{
		{"valid", signed(now.Unix(), good), body, nil},
		{"valid with a rotated secret's signature first", signed(now.Unix(), Sign([]byte("old"), now.Unix(), body)+", "+good), body, nil},
		{"tampered body", signed(now.Unix(), good), []byte(`{"alert_id":"A2"}`), ErrBadSignature},
		{"wrong secret", signed(now.Unix(), Sign([]byte("other"), now.Unix(), body)), body, ErrBadSignature},
		{"timestamp changed", signed(now.Unix()+1, good), body, ErrBadSignature},
		{"old timestamp", signed(now.Unix()-600, Sign(secret, now.Unix()-600, body)), body, ErrStaleTimestamp},
		{"future timestamp", signed(now.Unix()+600, Sign(secret, now.Unix()+600, body)), body, ErrStaleTimestamp},
		{"no timestamp", http.Header{HeaderSignature: {good}}, body, ErrStaleTimestamp},
		{"no signature", signed(now.Unix(), ""), body, ErrBadSignature},
		{"other version", signed(now.Unix(), "v0="+good[3:]), body, ErrBadSignature},
	}
	for _, tc := range tests {
		if err := Verify(secret, tc.header, tc.body, now, 5*time.Minute); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestPagerDutyEventFor(t *testing.T) {
	msg := Message{AlertID: "A1", TrialID: "T1", SiteID: "S1", PatientID: "P1", Severity: "weird",
		Status: "escalated", Reasons: []string{"news2_high"}, Tier: 1, Link: "https://v/#alert=A1"}
	tests := []struct {
		status, action string
		payload        bool
	}{
		{"open", "trigger", true},
		{"escalated", "trigger", true},
		{"acknowledged", "acknowledge", false},
		{"resolved", "resolve", false},
	}
	for _, tc := range tests {
		m := msg
		m.Status = tc.status
		ev := PagerDutyEventFor("key", m)
		if ev.EventAction != tc.action || (ev.Payload != nil) != tc.payload || ev.DedupKey != "vigil-A1" || ev.RoutingKey != "key" {
			t.Errorf("status %s: %+v, want action %s, payload %v", tc.status, ev, tc.action, tc.payload)
		}
	}
	if ev := PagerDutyEventFor("key", msg); ev.Payload.Severity != "error" {
		t.Errorf("unknown severity maps to %q, want error (too loud beats missed)", ev.Payload.Severity)
	}
	long := msg
	long.Reasons = []string{strings.Repeat("a", 2000)}
	if ev := PagerDutyEventFor("key", long); len(ev.Payload.Summary) > pagerDutySummaryMax {
		t.Errorf("summary is %d bytes, over the API's %d", len(ev.Payload.Summary), pagerDutySummaryMax)
	}
}

func TestSecret(t *testing.T) {
	lookup := func(ref string) (string, bool) {
		if ref == "SET" {
			return "v", true
		}
		if ref == "EMPTY" {
			return "", true
		}
		return "", false
	}
	tests := []struct {
		ref string
		ok  bool
	}{
		{"SET", true}, {"EMPTY", false}, {"UNSET", false}, {"", false}, {"A-B", false}, {"../x", false},
	}
	for _, tc := range tests {
		v, err := secret(lookup, "webhook", tc.ref)
		if (err == nil) != tc.ok || (err != nil && !IsPermanent(err)) {
			t.Errorf("secret(%q) = %q, %v; want ok=%v, errors permanent", tc.ref, v, err, tc.ok)
		}
	}
	t.Setenv("VIGIL_SECRET_NOTIFY_TEST", "from-env")
	if v, ok := EnvSecrets("NOTIFY_TEST"); !ok || v != "from-env" {
		t.Errorf("EnvSecrets = %q, %v", v, ok)
	}
}

func TestSubject(t *testing.T) {
	msg := Message{AlertID: "A1", TrialID: "T1", SiteID: "S2", Severity: "high"}
	if got, want := Subject(msg), "[Vigil] HIGH alert A1 — trial T1 site S2"; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
}

func TestComposeEncoding(t *testing.T) {
	e, err := NewEmail(SMTPConfig{Addr: "127.0.0.1:25", From: "Vigil <vigil@sponsor.example>"})
	if err != nil {
		t.Fatal(err)
	}
	to := []*mail.Address{{Address: "pi@site.example"}}
	tests := []struct {
		name, site, cte, want string
	}{
		{"ASCII goes as 7bit", "S01", "7bit", "Site:      S01"},
		{"other characters are quoted-printable", "Zürich", "quoted-printable", "Site:      Zürich"},
		{"no header or line injection", "S01\r\nBcc: evil@x.example", "7bit", "Site:      S01Bcc: evil@x.example\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := Message{AlertID: "A1", TrialID: "T1", SiteID: tc.site, PatientID: "P1", Severity: "high", Status: "open"}
			data, err := e.compose(store.Notification{ID: 7}, msg, to, time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			m, err := mail.ReadMessage(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			if got := m.Header.Get("Content-Transfer-Encoding"); got != tc.cte {
				t.Errorf("Content-Transfer-Encoding = %q, want %q", got, tc.cte)
			}
			if m.Header.Get("Bcc") != "" || m.Header.Get("Message-ID") != "<vigil-notification-7@sponsor.example>" {
				t.Errorf("headers = %v", m.Header)
			}
			var r io.Reader = m.Body
			if tc.cte == "quoted-printable" {
				r = quotedprintable.NewReader(r)
			}
			body, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(body), tc.want) {
				t.Errorf("body lacks %q:\n%s", tc.want, body)
			}
		})
	}
}
