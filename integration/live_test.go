package integration

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigil/auth"
)

// eventFor waits for an event frame whose data has the given reading id and kind.
func (c *wsClient) eventFor(kind, readingID string, within time.Duration) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		m, err := c.read(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("no %s event for %s within %s: %v", kind, readingID, within, err)
		}
		if m["type"] != "event" {
			continue
		}
		d := m["data"].(map[string]any)
		if d["kind"] == kind && d["reading_id"] == readingID {
			return m
		}
	}
}

func TestReadingReachesOnlyItsSite(t *testing.T) {
	n := start(t, tempDB(t))
	pi1 := connect(t, n, staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01"))
	pi1.subscribe("site:T008:S01", nil)
	pi2 := connect(t, n, staffToken(t, auth.RolePI, []string{"T008"}, "T008/S02"))
	pi2.subscribe("site:T008:S02", nil)
	safety := connect(t, n, staffToken(t, auth.RoleSafety, []string{"T008"}))
	safety.subscribe("trial:T008", nil)

	r := newReading("P1001", "T008", "S01", vitalsHigh())
	sent := time.Now()
	if rep := do(t, "POST", n.base+"/v1/readings", patientToken(t, "P1001", "T008", "S01"), r); rep.Status != 202 {
		t.Fatalf("post: %d %s", rep.Status, rep.Body)
	}
	// The site room gets the score and the alert it raised, nothing else,
	// as offsets 1 and 2 (the order between them is the pipeline's).
	byKind := map[string]map[string]any{}
	for len(byKind) < 2 {
		m, err := pi1.read(time.Second)
		if err != nil {
			t.Fatalf("site room events so far %v: %v", byKind, err)
		}
		if m["type"] != "event" {
			t.Fatalf("unexpected frame %v", m)
		}
		kind := m["data"].(map[string]any)["kind"].(string)
		if byKind[kind] != nil {
			t.Fatalf("second %s event: %v", kind, m)
		}
		byKind[kind] = m
	}
	t.Logf("post to board: %s", time.Since(sent))
	ev, alert := byKind["score"], byKind["alert"]
	if ev == nil || alert == nil {
		t.Fatalf("site room events %v, want a score and an alert", byKind)
	}
	if ev["room"] != "site:T008:S01" || ev["offset"].(float64)+alert["offset"].(float64) != 3 {
		t.Fatalf("offsets %v and %v, want 1 and 2", ev["offset"], alert["offset"])
	}
	data := ev["data"].(map[string]any)
	news2 := data["news2"].(map[string]any)
	// RR 26 (3), SpO2 90 (3), air (0), SBP 88 (3), HR 135 (3), voice (3), 39.5 (2).
	if news2["total"] != float64(17) || news2["band"] != "high" || data["risk"] != "critical" || data["model"] != nil {
		t.Fatalf("score %v", data)
	}
	if v, _ := data["vitals"].(map[string]any); v == nil || v["heart_rate"] != float64(135) {
		t.Fatalf("score event vitals %v", data["vitals"])
	}
	if a := alert["data"].(map[string]any); a["severity"] != "critical" || a["status"] != "open" || a["reading_id"] != r["reading_id"] {
		t.Fatalf("alert %v", a)
	}
	// The trial room carries alerts, not scores.
	tev := safety.eventFor("alert", r["reading_id"].(string), time.Second)
	if tev["room"] != "trial:T008" {
		t.Fatalf("trial event room %v", tev["room"])
	}
	if m, err := pi2.read(300 * time.Millisecond); err == nil {
		t.Fatalf("the PI of S02 received %v", m)
	}
}

func TestForbiddenRoomsKeepSessionOpen(t *testing.T) {
	n := start(t, tempDB(t))
	pi := connect(t, n, staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01"))
	for _, room := range []string{"site:T008:S02", "trial:T008", "site:T009:S01", "nonsense"} {
		pi.send(map[string]any{"type": "subscribe", "room": room})
		m := pi.next()
		if m["type"] != "error" || m["code"] != "forbidden" || m["room"] != room {
			t.Fatalf("subscribe %s: %v", room, m)
		}
	}
	pi.subscribe("site:T008:S01", nil) // still open and usable
}

func TestRecoveryAfterReconnect(t *testing.T) {
	n := start(t, tempDB(t))
	tok := staffToken(t, auth.RoleCRA, []string{"T008"}, "T008/S01")
	ptok := patientToken(t, "P1001", "T008", "S01")
	post := func() string {
		r := newReading("P1001", "T008", "S01", vitalsOK())
		if rep := do(t, "POST", n.base+"/v1/readings", ptok, r); rep.Status != 202 {
			t.Fatalf("post: %d %s", rep.Status, rep.Body)
		}
		return r["reading_id"].(string)
	}
	c := connect(t, n, tok)
	c.subscribe("site:T008:S01", nil)
	watcher := connect(t, n, tok)
	watcher.subscribe("site:T008:S01", nil)

	id := post()
	ev := c.eventFor("score", id, 2*time.Second)
	watcher.eventFor("score", id, 2*time.Second)
	if ev["offset"] != float64(1) {
		t.Fatalf("first event offset %v", ev["offset"])
	}
	c.conn.CloseNow()

	// Missed while away, in the order the room published them.
	var missed []string
	for range 3 {
		id := post()
		ev := watcher.eventFor("score", id, 2*time.Second)
		missed = append(missed, id)
		_ = ev
	}
	c = connect(t, n, tok)
	since := uint64(1)
	sub := c.subscribe("site:T008:S01", &since)
	if sub["recovered"] != true || sub["offset"] != float64(4) {
		t.Fatalf("subscribed %v, want recovered at offset 4", sub)
	}
	var got []string
	for want := 2; want <= 4; want++ {
		m := c.next()
		if m["type"] != "event" || m["offset"] != float64(want) {
			t.Fatalf("recovered frame %v, want event at offset %d", m, want)
		}
		got = append(got, m["data"].(map[string]any)["reading_id"].(string))
	}
	for _, id := range missed {
		if !contains(got, id) {
			t.Fatalf("recovered %v, missed %v", got, missed)
		}
	}
	id = post()
	if ev := c.eventFor("score", id, 2*time.Second); ev["offset"] != float64(5) {
		t.Fatalf("live after recovery at offset %v, want 5", ev["offset"])
	}

	// An offset the room never reached (another epoch) cannot be recovered.
	late := connect(t, n, tok)
	far := uint64(999)
	if sub := late.subscribe("site:T008:S01", &far); sub["recovered"] != false {
		t.Fatalf("since beyond the room: %v", sub)
	}
}

// forged returns tokens that must all be refused.
func forged(t *testing.T, claims auth.Claims) map[string]string {
	t.Helper()
	claims.Subject = "u-x"
	now := time.Now()
	sign := func(c auth.Claims, key []byte) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := claims
	good.Issuer, good.Audience = "vigil", jwt.ClaimStrings{"vigil"}
	good.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))

	expired := good
	expired.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
	wrongAud := good
	wrongAud.Audience = jwt.ClaimStrings{"someone-else"}
	noExp := good
	noExp.ExpiresAt = nil

	payload, _ := json.Marshal(good)
	enc := base64.RawURLEncoding.EncodeToString
	none := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
	return map[string]string{
		"alg none":       none,
		"wrong key":      sign(good, []byte("not-the-secret-not-the-secret-xx")),
		"expired":        sign(expired, []byte(secret)),
		"wrong audience": sign(wrongAud, []byte(secret)),
		"no exp":         sign(noExp, []byte(secret)),
	}
}

func TestForgedTokensRefused(t *testing.T) {
	n := start(t, tempDB(t))
	patient := auth.Claims{Role: auth.RolePatient, Trial: "T008", Site: "S01"}
	for name, tok := range forged(t, patient) {
		t.Run("ingest "+name, func(t *testing.T) {
			r := newReading("u-x", "T008", "S01", vitalsOK())
			if rep := do(t, "POST", n.base+"/v1/readings", tok, r); rep.Status != 401 {
				t.Fatalf("status %d: %s", rep.Status, rep.Body)
			}
		})
	}
	staff := auth.Claims{Role: auth.RolePI, Trials: []string{"T008"}, Sites: []string{"T008/S01"}}
	for name, tok := range forged(t, staff) {
		t.Run("board "+name, func(t *testing.T) {
			if rep := do(t, "GET", n.base+"/v1/trials/T008/sites/S01/patients", tok, nil); rep.Status != 401 {
				t.Fatalf("status %d: %s", rep.Status, rep.Body)
			}
		})
		t.Run("hub frame "+name, func(t *testing.T) {
			c, _, err := dialWS(t, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.send(map[string]any{"type": "auth", "token": tok})
			if _, err := c.read(5 * time.Second); closeCode(err) != 4001 {
				t.Fatalf("want close 4001, got %v", err)
			}
		})
		t.Run("hub header "+name, func(t *testing.T) {
			c, resp, err := dialWS(t, n, http.Header{"Authorization": {"Bearer " + tok}})
			if err != nil {
				if resp != nil && resp.StatusCode == http.StatusUnauthorized {
					return
				}
				t.Fatalf("dial: %v", err)
			}
			if _, err := c.read(5 * time.Second); closeCode(err) != 4001 {
				t.Fatalf("want close 4001, got %v", err)
			}
		})
	}
}

func TestOriginAllowList(t *testing.T) {
	n := start(t, tempDB(t), "VIGIL_ALLOWED_ORIGINS=board.example.org")
	if _, resp, err := dialWS(t, n, http.Header{"Origin": {"https://evil.example.com"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err %v, resp %v", err, resp)
	}
	c, _, err := dialWS(t, n, http.Header{"Origin": {"https://board.example.org"}})
	if err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
	c.send(map[string]any{"type": "auth", "token": staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01")})
	if m := c.next(); m["type"] != "ready" {
		t.Fatalf("want ready, got %v", m)
	}
}

// TestOffsetsContinueAcrossRestarts: a client that knows nothing of epochs
// (DESIGN.md's protocol) must never be told it recovered when the events it
// missed were published by an earlier process.
func TestOffsetsContinueAcrossRestarts(t *testing.T) {
	db := tempDB(t)
	tok := staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01")
	ptok := patientToken(t, "P1001", "T008", "S01")
	postAndSee := func(n *node, c *wsClient) uint64 {
		r := newReading("P1001", "T008", "S01", vitalsOK())
		if rep := do(t, "POST", n.base+"/v1/readings", ptok, r); rep.Status != 202 {
			t.Fatalf("post: %d %s", rep.Status, rep.Body)
		}
		return uint64(c.eventFor("score", r["reading_id"].(string), 2*time.Second)["offset"].(float64))
	}
	subscribeSince := func(n *node, since uint64) map[string]any {
		c := connect(t, n, tok)
		return c.subscribe("site:T008:S01", &since)
	}

	n := start(t, db)
	c := connect(t, n, tok)
	c.subscribe("site:T008:S01", nil)
	var last uint64
	for range 3 {
		last = postAndSee(n, c)
	}
	if last != 3 {
		t.Fatalf("third event at offset %d", last)
	}
	n.stop() // graceful: offsets saved exactly

	n = start(t, db)
	if sub := subscribeSince(n, 3); sub["recovered"] != true || sub["offset"] != float64(3) {
		t.Fatalf("after a clean restart, since=3: %v", sub)
	}
	if sub := subscribeSince(n, 2); sub["recovered"] != false {
		t.Fatalf("after a clean restart, since=2 (event 3 is gone with the old process): %v", sub)
	}
	c = connect(t, n, tok)
	c.subscribe("site:T008:S01", nil)
	if off := postAndSee(n, c); off != 4 {
		t.Fatalf("first event after a clean restart at offset %d, want 4", off)
	}
	n.kill() // a crash may lose the record of the latest offsets

	n = start(t, db)
	if sub := subscribeSince(n, 4); sub["recovered"] != false {
		t.Fatalf("after a crash, since=4: %v", sub)
	}
	c = connect(t, n, tok)
	c.subscribe("site:T008:S01", nil)
	if off := postAndSee(n, c); off <= 4 {
		t.Fatalf("after a crash an offset was reused: %d", off)
	}
}
