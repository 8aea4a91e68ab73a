package reading

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// ContentHash returns the hex SHA-256 of a canonical encoding of r, so that a
// retried reading compares equal to the stored one however its JSON was laid
// out (white space, key order, number spelling such as 37 or 37.0, time zone
// of measured_at), while any change of value compares different. The
// idempotency check (200 for a retry, 409 for a different reading under the
// same reading_id) depends on both.
func ContentHash(r Reading) string {
	r.ReadingID = strings.ToLower(r.ReadingID)
	r.MeasuredAt = r.MeasuredAt.UTC()
	if len(r.Symptoms) == 0 {
		r.Symptoms = nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		// Only NaN, ±Inf or a year outside 0–9999 get here, and Decode
		// admits none of them; hashing a lossless rendering still keeps
		// different readings apart rather than colliding on one error.
		symptoms, _ := json.Marshal(r.Symptoms)
		b = fmt.Appendf([]byte("unencodable\x00"), "%q|%q|%q|%q|%d.%09d|%s|%s",
			r.ReadingID, r.PatientID, r.TrialID, r.SiteID,
			r.MeasuredAt.Unix(), r.MeasuredAt.Nanosecond(),
			vitalsString(r.Vitals), symptoms)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func vitalsString(v Vitals) string {
	f := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprint(*p)
	}
	s := "-"
	if v.SpO2Scale != nil {
		s = fmt.Sprint(*v.SpO2Scale)
	}
	o := "-"
	if v.OnOxygen != nil {
		o = fmt.Sprint(*v.OnOxygen)
	}
	c := "-"
	if v.Consciousness != nil {
		c = fmt.Sprintf("%q", *v.Consciousness)
	}
	return strings.Join([]string{
		f(v.RespiratoryRate), f(v.SpO2), s, o, f(v.SystolicBP),
		f(v.DiastolicBP), f(v.HeartRate), c, f(v.Temperature),
	}, ",")
}
