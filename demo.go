package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"vigil/auth"
	"vigil/trial"
)

// demoProtocol is the demo trial's protocol: readings every 2 minutes (the
// simulator reports far more often, so only a real silence trips it), the
// CTCAE-style limits of docs/examples/trial-T008.yaml, and escalation
// through the board alone, since a demo has no mail relay or pager.
func demoProtocol(sites []string) trial.Protocol {
	d := func(s string) trial.Duration { v, _ := time.ParseDuration(s); return trial.Duration(v) }
	return trial.Protocol{
		TrialID:  demoTrial,
		Title:    "T008 — demo cohort (simulated)",
		Sites:    sites,
		Schedule: trial.Schedule{Every: d("2m"), Grace: d("1m")},
		// Signing (acknowledge, resolve, possible SAE) needs a sign-in
		// within 12 hours: the board asks for a fresh token after that.
		RequireAuthWithin: d("12h"),
		Thresholds: trial.Thresholds{Vitals: []trial.VitalLimit{
			{Vital: "systolic_bp", Op: ">=", Value: 160, Grade: 3, Term: "hypertension"},
			{Vital: "temperature", Op: ">=", Value: 39.0, Grade: 2, Term: "fever"},
			{Vital: "heart_rate", Op: ">=", Value: 131, Grade: 3, Term: "tachycardia"},
		}},
		Escalation: trial.Escalation{
			Tiers: []trial.Tier{
				{Name: "site", After: d("10m"), Channels: []trial.Channel{{Kind: trial.ChannelBoard}}},
				{Name: "safety", After: d("10m"), Channels: []trial.Channel{{Kind: trial.ChannelBoard}}},
			},
			Repeat: d("15m"),
		},
	}
}

// applyDemoTrial loads the demo protocol and a few registry records through
// the admin API, as a trial's admin would: audited, cached, validated.
func applyDemoTrial(ctx context.Context, base string, iss auth.Issuer, sites []string) error {
	tok, err := iss.Mint(auth.Claims{Role: auth.RoleAdmin, Name: "Demo Admin", Trials: []string{demoTrial},
		RegisteredClaims: subject("u-admin-demo")}, time.Hour)
	if err != nil {
		return err
	}
	put := func(path string, v any) error {
		body, err := json.Marshal(v)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Vigil-Reason", "demo set-up")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return fmt.Errorf("demo: PUT %s: %s: %s", path, resp.Status, msg)
		}
		return nil
	}
	if err := put("/v1/trials/"+demoTrial, demoProtocol(sites)); err != nil {
		return err
	}
	// A registered cohort, one on SpO2 scale 2 (hypercapnic respiratory
	// failure, prescribed); the rest report unregistered, as when the
	// registry lags the identity provider.
	for i := range 12 {
		id := fmt.Sprintf("P%04d", 1001+i)
		rec := map[string]any{"status": trial.Enrolled, "age_band": trial.AgeBands()[i%4]}
		if i == 2 {
			rec["spo2_scale"] = 2
		}
		if err := put(fmt.Sprintf("/v1/trials/%s/sites/%s/patients/%s", demoTrial, sites[i%len(sites)], id), rec); err != nil {
			return err
		}
	}
	return nil
}

// demoHasHistory reports whether the demo trial already has readings (a
// database kept from an earlier demo), asking the trial overview as the
// safety physician would.
func demoHasHistory(ctx context.Context, base, token string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/trials/"+demoTrial+"/overview", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var o struct {
		Sites []struct {
			LastReadingAt *time.Time `json:"last_reading_at"`
		} `json:"sites"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&o) != nil {
		return false
	}
	for _, s := range o.Sites {
		if s.LastReadingAt != nil {
			return true
		}
	}
	return false
}
