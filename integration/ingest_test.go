package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"vigil/auth"
)

func TestReadingRepliesAndIdempotency(t *testing.T) {
	n := start(t, tempDB(t))
	tok := patientToken(t, "P1001", "T008", "S01")
	r := newReading("P1001", "T008", "S01", vitalsOK())

	first := do(t, "POST", n.base+"/v1/readings", tok, r)
	if first.Status != 202 {
		t.Fatalf("first post: %d %s", first.Status, first.Body)
	}
	want := map[string]any{"reading_id": r["reading_id"], "status": "accepted"}
	if got := first.json(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("first body %v, want %v", got, want)
	}
	again := do(t, "POST", n.base+"/v1/readings", tok, r)
	if again.Status != 200 || string(again.Body) != string(first.Body) {
		t.Fatalf("retry: %d %s, want 200 with the same body %s", again.Status, again.Body, first.Body)
	}
	changed := newReading("P1001", "T008", "S01", vitalsHigh())
	changed["reading_id"] = r["reading_id"]
	conflict := do(t, "POST", n.base+"/v1/readings", tok, changed)
	if conflict.Status != 409 || conflict.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("different content: %d %s %s", conflict.Status, conflict.Header.Get("Content-Type"), conflict.Body)
	}
}

func TestBadInputGetsProblem(t *testing.T) {
	n := start(t, tempDB(t))
	tok := patientToken(t, "P1001", "T008", "S01")
	with := func(edit func(m map[string]any)) map[string]any {
		r := newReading("P1001", "T008", "S01", vitalsOK())
		edit(r)
		return r
	}
	vital := func(k string, v any) map[string]any {
		return with(func(m map[string]any) { m["vitals"].(map[string]any)[k] = v })
	}
	cases := []struct {
		name   string
		token  string
		body   any
		status int
		field  string // a field the problem must name, if any
	}{
		{"not json", tok, "{not json", 400, ""},
		{"array", tok, "[]", 400, ""},
		{"unknown field", tok, with(func(m map[string]any) { m["colour"] = "blue" }), 400, "colour"},
		{"unknown vital", tok, vital("glucose", 5), 400, "vitals.glucose"},
		{"wrong type", tok, vital("heart_rate", "fast"), 400, "vitals.heart_rate"},
		{"bad uuid", tok, with(func(m map[string]any) { m["reading_id"] = "not-a-uuid" }), 400, "reading_id"},
		{"bad time", tok, with(func(m map[string]any) { m["measured_at"] = "yesterday" }), 400, "measured_at"},
		{"heart rate 0", tok, vital("heart_rate", 0), 422, "vitals.heart_rate"},
		{"heart rate 400", tok, vital("heart_rate", 400), 422, "vitals.heart_rate"},
		{"spo2 over 100", tok, vital("spo2", 101), 422, "vitals.spo2"},
		{"temperature 20", tok, vital("temperature", 20), 422, "vitals.temperature"},
		{"non-integer rate", tok, vital("respiratory_rate", 18.5), 422, "vitals.respiratory_rate"},
		{"sleepy", tok, vital("consciousness", "sleepy"), 422, "vitals.consciousness"},
		{"no vitals", tok, with(func(m map[string]any) { m["vitals"] = map[string]any{} }), 422, "vitals"},
		{"future", tok, with(func(m map[string]any) {
			m["measured_at"] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		}), 422, "measured_at"},
		{"no token", "", newReading("P1001", "T008", "S01", vitalsOK()), 401, ""},
		{"garbage token", "abc.def.ghi", newReading("P1001", "T008", "S01", vitalsOK()), 401, ""},
		{"other patient", tok, newReading("P1002", "T008", "S01", vitalsOK()), 403, ""},
		{"other site", tok, newReading("P1001", "T008", "S02", vitalsOK()), 403, ""},
		{"staff token", staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01"), newReading("P1001", "T008", "S01", vitalsOK()), 403, ""},
		{"too large", tok, `{"reading_id":"` + strings.Repeat("x", 70<<10) + `"}`, 413, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := do(t, "POST", n.base+"/v1/readings", tc.token, tc.body)
			if rep.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", rep.Status, tc.status, rep.Body)
			}
			if ct := rep.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q, want application/problem+json", ct)
			}
			p := rep.json(t)
			for _, k := range []string{"type", "title", "status", "detail"} {
				if _, ok := p[k]; !ok {
					t.Errorf("problem lacks %q: %s", k, rep.Body)
				}
			}
			if p["status"] != float64(tc.status) {
				t.Errorf("problem status %v, want %d", p["status"], tc.status)
			}
			if tc.field != "" {
				var fields []string
				errs, _ := p["errors"].([]any)
				for _, e := range errs {
					fields = append(fields, e.(map[string]any)["field"].(string))
				}
				if !contains(fields, tc.field) {
					t.Errorf("errors %v do not name %q", fields, tc.field)
				}
			}
		})
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func TestRateLimits(t *testing.T) {
	n := start(t, tempDB(t), "VIGIL_RATE_PER_PATIENT=3")
	tok := patientToken(t, "P1001", "T008", "S01")
	for i := range 3 {
		if rep := do(t, "POST", n.base+"/v1/readings", tok, newReading("P1001", "T008", "S01", vitalsOK())); rep.Status != 202 {
			t.Fatalf("post %d: %d %s", i, rep.Status, rep.Body)
		}
	}
	rep := do(t, "POST", n.base+"/v1/readings", tok, newReading("P1001", "T008", "S01", vitalsOK()))
	if rep.Status != 429 || rep.Header.Get("Retry-After") == "" || rep.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("over the limit: %d Retry-After=%q %s", rep.Status, rep.Header.Get("Retry-After"), rep.Body)
	}
	// Another patient has a bucket of its own.
	other := patientToken(t, "P1002", "T008", "S01")
	if rep := do(t, "POST", n.base+"/v1/readings", other, newReading("P1002", "T008", "S01", vitalsOK())); rep.Status != 202 {
		t.Fatalf("other patient: %d %s", rep.Status, rep.Body)
	}

	// Behind a trusted proxy, each client address has a bucket of its own.
	proxied := start(t, tempDB(t), "VIGIL_RATE_PER_IP=1", "VIGIL_TRUST_PROXY=true")
	postFrom := func(addr string) int {
		r := newReading("P1001", "T008", "S01", vitalsOK())
		body, _ := json.Marshal(r)
		req, _ := http.NewRequest("POST", proxied.base+"/v1/readings", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Forwarded-For", addr+", 10.9.9.9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if a, b, c := postFrom("192.0.2.1"), postFrom("192.0.2.2"), postFrom("192.0.2.1"); a != 202 || b != 202 || c != 429 {
		t.Fatalf("per forwarded address: %d %d %d, want 202 202 429", a, b, c)
	}

	ipNode := start(t, tempDB(t), "VIGIL_RATE_PER_IP=2")
	for i := range 2 {
		if rep := do(t, "POST", ipNode.base+"/v1/readings", tok, newReading("P1001", "T008", "S01", vitalsOK())); rep.Status != 202 {
			t.Fatalf("ip post %d: %d %s", i, rep.Status, rep.Body)
		}
	}
	if rep := do(t, "POST", ipNode.base+"/v1/readings", other, newReading("P1002", "T008", "S01", vitalsOK())); rep.Status != 429 || rep.Header.Get("Retry-After") == "" {
		t.Fatalf("over the IP limit: %d %s", rep.Status, rep.Body)
	}
}

func TestBatch(t *testing.T) {
	n := start(t, tempDB(t))
	tok := patientToken(t, "P1001", "T008", "S01")
	good := newReading("P1001", "T008", "S01", vitalsOK())
	bad := newReading("P1001", "T008", "S01", vitalsOK())
	bad["vitals"].(map[string]any)["spo2"] = 140
	other := newReading("P1002", "T008", "S01", vitalsOK())
	rep := do(t, "POST", n.base+"/v1/readings/batch", tok, map[string]any{"readings": []any{good, bad, other, good}})
	if rep.Status != 200 {
		t.Fatalf("batch: %d %s", rep.Status, rep.Body)
	}
	var body struct {
		Results []struct {
			Index     int    `json:"index"`
			ReadingID string `json:"reading_id"`
			Status    int    `json:"status"`
		} `json:"results"`
	}
	if err := json.Unmarshal(rep.Body, &body); err != nil {
		t.Fatal(err)
	}
	// The same reading twice in one batch: one insert, one idempotent retry,
	// in either order.
	got := []int{body.Results[0].Status, body.Results[1].Status, body.Results[2].Status, body.Results[3].Status}
	if len(body.Results) != 4 || got[1] != 422 || got[2] != 403 || got[0]+got[3] != 402 {
		t.Fatalf("batch statuses %v: %s", got, rep.Body)
	}
	for i, r := range body.Results {
		if r.Index != i {
			t.Fatalf("result %d has index %d", i, r.Index)
		}
	}
	// A batch takes a token per reading from the patient's bucket.
	limited := start(t, tempDB(t), "VIGIL_RATE_PER_PATIENT=3")
	three := []any{newReading("P1001", "T008", "S01", vitalsOK()), newReading("P1001", "T008", "S01", vitalsOK()),
		newReading("P1001", "T008", "S01", vitalsOK())}
	if rep := do(t, "POST", limited.base+"/v1/readings/batch", tok, map[string]any{"readings": three}); rep.Status != 200 {
		t.Fatalf("batch within the limit: %d %s", rep.Status, rep.Body)
	}
	if rep := do(t, "POST", limited.base+"/v1/readings", tok, newReading("P1001", "T008", "S01", vitalsOK())); rep.Status != 429 {
		t.Fatalf("after a batch that used the bucket: %d, want 429", rep.Status)
	}

	tooMany := make([]any, 501)
	for i := range tooMany {
		tooMany[i] = newReading("P1001", "T008", "S01", vitalsOK())
	}
	if rep := do(t, "POST", n.base+"/v1/readings/batch", tok, map[string]any{"readings": tooMany}); rep.Status != 422 {
		t.Fatalf("501 readings: %d %s", rep.Status, rep.Body)
	}
	if rep := do(t, "POST", n.base+"/v1/readings/batch", tok, `{"readings": 5}`); rep.Status != 400 {
		t.Fatalf("wrong type: %d %s", rep.Status, rep.Body)
	}
	// The server refuses an oversized body from its Content-Length, before
	// reading it; sending the header alone makes the check deterministic (a
	// client still writing 5 MiB may see the connection reset instead).
	if status, ctype := headerOnlyPost(t, n, "/v1/readings/batch", tok, 5<<20); status != 413 || ctype != "application/problem+json" {
		t.Fatalf("5 MiB batch: %d %s", status, ctype)
	}
}

// headerOnlyPost announces a body of size bytes, sends none, and returns the
// reply's status and content type.
func headerOnlyPost(t *testing.T, n *node, path, token string, size int) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, token, size)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Content-Type")
}
