//go:build linux

package bench

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// vitals is one set of observations as the load generator sends them.
// Temperature is in tenths of a degree, so that encoding it needs no float
// formatting.
type vitals struct {
	rr, spo2, sbp, dbp, hr int
	temp10                 int // 0: not measured (a partial reading)
	consciousness          string
	symptom                string // "" for none
	symptomGrade           int
}

// baseline is a patient's usual vitals: every value in the range NEWS2 scores
// 0, so that ordinary readings raise no alert and every alert in a run comes
// from a reading the bench chose to make critical.
type baseline struct {
	rr, spo2, sbp, dbp, hr, temp10 int
}

func newBaseline(rng *rand.Rand) baseline {
	return baseline{
		rr:     13 + rng.IntN(5),   // 13–17 (NEWS2 0: 12–20)
		spo2:   96 + rng.IntN(3),   // 96–98 (0: ≥ 96)
		sbp:    115 + rng.IntN(25), // 115–139 (0: 111–219)
		dbp:    66 + rng.IntN(16),  // 66–81
		hr:     60 + rng.IntN(24),  // 60–83 (0: 51–90)
		temp10: 364 + rng.IntN(10), // 36.4–37.3 °C (0: 36.1–38.0)
	}
}

// normal returns an ordinary reading: the baseline with the small noise of a
// home device, still scoring NEWS2 0, with the temperature missing now and
// then as home devices do (a partial NEWS2).
func (b baseline) normal(rng *rand.Rand) vitals {
	jitter := func(v, d, lo, hi int) int { return min(hi, max(lo, v+rng.IntN(2*d+1)-d)) }
	v := vitals{
		rr:            jitter(b.rr, 1, 12, 20),
		spo2:          jitter(b.spo2, 1, 96, 100),
		sbp:           jitter(b.sbp, 4, 111, 219),
		hr:            jitter(b.hr, 3, 51, 90),
		temp10:        jitter(b.temp10, 1, 361, 380),
		consciousness: "alert",
	}
	v.dbp = min(jitter(b.dbp, 3, 50, 100), v.sbp-20)
	if rng.IntN(20) == 0 {
		v.temp10 = 0
	}
	return v
}

// critical is a deteriorating patient: every NEWS2 parameter red (NEWS2 high,
// a critical alert) and a severe symptom.
func critical() vitals {
	return vitals{rr: 30, spo2: 85, sbp: 85, dbp: 55, hr: 135, temp10: 394,
		consciousness: "new_confusion", symptom: "shortness of breath", symptomGrade: 3}
}

// appendReading appends the JSON body of one reading to dst, by appending
// bytes: the load generator must cost less than the server it measures, and
// reflection-based encoding would cost about as much as the server's decoding.
// The strings are ids of the bench's own making ([A-Za-z0-9._-]) and need no
// escaping.
func appendReading(dst []byte, ids *idCodec, seq uint64, patient, trial, site string, at time.Time, v vitals) []byte {
	dst = append(dst, `{"reading_id":"`...)
	dst = ids.appendID(dst, seq)
	dst = append(dst, `","patient_id":"`...)
	dst = append(dst, patient...)
	dst = append(dst, `","trial_id":"`...)
	dst = append(dst, trial...)
	dst = append(dst, `","site_id":"`...)
	dst = append(dst, site...)
	dst = append(dst, `","measured_at":"`...)
	dst = at.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	dst = append(dst, `","vitals":{"respiratory_rate":`...)
	dst = strconv.AppendInt(dst, int64(v.rr), 10)
	dst = append(dst, `,"spo2":`...)
	dst = strconv.AppendInt(dst, int64(v.spo2), 10)
	dst = append(dst, `,"spo2_scale":1,"on_oxygen":false,"systolic_bp":`...)
	dst = strconv.AppendInt(dst, int64(v.sbp), 10)
	dst = append(dst, `,"diastolic_bp":`...)
	dst = strconv.AppendInt(dst, int64(v.dbp), 10)
	dst = append(dst, `,"heart_rate":`...)
	dst = strconv.AppendInt(dst, int64(v.hr), 10)
	dst = append(dst, `,"consciousness":"`...)
	dst = append(dst, v.consciousness...)
	dst = append(dst, '"')
	if v.temp10 > 0 {
		dst = append(dst, `,"temperature":`...)
		dst = strconv.AppendInt(dst, int64(v.temp10/10), 10)
		dst = append(dst, '.')
		dst = strconv.AppendInt(dst, int64(v.temp10%10), 10)
	}
	dst = append(dst, '}')
	if v.symptom != "" {
		dst = append(dst, `,"symptoms":[{"term":"`...)
		dst = append(dst, v.symptom...)
		dst = append(dst, `","grade":`...)
		dst = strconv.AppendInt(dst, int64(v.symptomGrade), 10)
		dst = append(dst, `}]`...)
	}
	return append(dst, '}')
}
