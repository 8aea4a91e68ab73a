package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"vigil/auth"
)

// TestAcknowledgedReadingsSurviveSIGKILL posts readings from several clients,
// kills the server mid-stream, restarts it on the same file, and checks that
// every reading that got a 2xx is stored and scored.
func TestAcknowledgedReadingsSurviveSIGKILL(t *testing.T) {
	db := tempDB(t)
	n := start(t, db)
	const patients = 12
	var (
		mu    sync.Mutex
		acked = map[string]string{} // reading id → patient
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for p := range patients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pid := fmt.Sprintf("P%04d", 2001+p)
			tok := patientToken(t, pid, "T008", "S01")
			for {
				select {
				case <-stop:
					return
				default:
				}
				vit := vitalsOK()
				if p%3 == 0 {
					vit = vitalsHigh() // alerts in flight too
				}
				r := newReading(pid, "T008", "S01", vit)
				body, _ := json.Marshal(r)
				req, _ := http.NewRequest("POST", n.base+"/v1/readings", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					continue // the server is gone; nothing was acknowledged
				}
				resp.Body.Close()
				if resp.StatusCode == 202 || resp.StatusCode == 200 {
					mu.Lock()
					acked[r["reading_id"].(string)] = pid
					mu.Unlock()
				}
			}
		}()
	}
	// Let a few hundred readings through, then crash.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		k := len(acked)
		mu.Unlock()
		if k >= 300 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.kill()
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no reading was acknowledged before the kill")
	}
	t.Logf("%d readings acknowledged before SIGKILL", len(acked))

	n2 := start(t, db)
	staff := staffToken(t, auth.RolePI, []string{"T008"}, "T008/S01")
	byPatient := map[string][]string{}
	for id, pid := range acked {
		byPatient[pid] = append(byPatient[pid], id)
	}
	waitUntil := time.Now().Add(15 * time.Second)
	for pid, ids := range byPatient {
		for {
			stored, unscored := patientReadings(t, n2, staff, pid)
			missing := 0
			for _, id := range ids {
				if _, ok := stored[id]; !ok {
					missing++
				}
			}
			if missing > 0 {
				t.Fatalf("%s: %d acknowledged readings missing after restart", pid, missing)
			}
			if unscored == 0 {
				break
			}
			if time.Now().After(waitUntil) {
				t.Fatalf("%s: %d readings still unscored after restart", pid, unscored)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Every patient with an acknowledged deteriorating reading has its one
	// open alert after the restart.
	rep := do(t, "GET", n2.base+"/v1/alerts?trial=T008&site=S01&status=open&limit=1000", staff, nil)
	var body struct {
		Alerts []struct {
			PatientID string `json:"patient_id"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal(rep.Body, &body); err != nil {
		t.Fatal(err)
	}
	perPatient := map[string]int{}
	for _, a := range body.Alerts {
		perPatient[a.PatientID]++
	}
	for p := 0; p < patients; p += 3 {
		pid := fmt.Sprintf("P%04d", 2001+p)
		if len(byPatient[pid]) > 0 && perPatient[pid] != 1 {
			t.Fatalf("%s: %d open alerts after restart, want 1", pid, perPatient[pid])
		}
	}
}

// patientReadings returns the patient's stored reading ids and how many lack a score.
func patientReadings(t *testing.T, n *node, token, pid string) (map[string]bool, int) {
	t.Helper()
	stored := map[string]bool{}
	unscored := 0
	cursor := ""
	for {
		url := n.base + "/v1/trials/T008/sites/S01/patients/" + pid + "/readings?limit=1000"
		if cursor != "" {
			url += "&since=" + cursor
		}
		rep := do(t, "GET", url, token, nil)
		if rep.Status != 200 {
			t.Fatalf("readings: %d %s", rep.Status, rep.Body)
		}
		var body struct {
			Readings []struct {
				ReadingID string          `json:"reading_id"`
				Score     json.RawMessage `json:"score"`
			} `json:"readings"`
			Next string `json:"next"`
		}
		if err := json.Unmarshal(rep.Body, &body); err != nil {
			t.Fatal(err)
		}
		for _, r := range body.Readings {
			stored[r.ReadingID] = true
			if string(r.Score) == "null" || len(r.Score) == 0 {
				unscored++
			}
		}
		if body.Next == "" {
			return stored, unscored
		}
		cursor = body.Next
	}
}
