package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The series of a site's trend, in the order of TrendVitals: five vitals of
// the readings and the NEWS2 total of their scores.
const (
	TrendRespiratoryRate = iota
	TrendSpO2
	TrendSystolicBP
	TrendHeartRate
	TrendTemperature
	TrendNEWS2
	NumTrendSeries
)

// TrendVitals names the series, as the trend reply lists them.
var TrendVitals = [NumTrendSeries]string{
	"respiratory_rate", "spo2", "systolic_bp", "heart_rate", "temperature", "news2",
}

// Limits of a trend request.
const (
	MinTrendHours   = 1
	MaxTrendHours   = 168
	MinTrendBuckets = 4
	MaxTrendBuckets = 96
	// MaxTrendRows is how many readings one trend reads at most; the newest
	// are read first, so a trend cut short lacks its oldest buckets.
	MaxTrendRows = 250_000
)

// TrendQuery selects a site's readings measured in [From, From+Buckets×Bucket)
// and the buckets they are averaged in. NewTrendQuery makes one.
type TrendQuery struct {
	TrialID, SiteID string
	From            time.Time
	Bucket          time.Duration
	Buckets         int
	// MaxRows caps the readings read (0: MaxTrendRows).
	MaxRows int
}

// To is the end of the window (excluded).
func (q TrendQuery) To() time.Time { return q.From.Add(time.Duration(q.Buckets) * q.Bucket) }

// Limit is the LIMIT a backend puts on its query: one row more than the cap,
// so CollectTrends can tell that the cap was reached.
func (q TrendQuery) Limit() int { return q.maxRows() + 1 }

func (q TrendQuery) maxRows() int {
	if q.MaxRows <= 0 {
		return MaxTrendRows
	}
	return q.MaxRows
}

// NewTrendQuery returns the query for the last hours before now in buckets:
// a bucket is hours/buckets long, rounded up to a whole second, buckets are
// aligned to multiples of their length since the Unix epoch, and the window
// ends with the bucket that holds now, so From is To minus hours (a little
// more when hours×3600 is not a multiple of buckets).
func NewTrendQuery(trialID, siteID string, now time.Time, hours, buckets int) TrendQuery {
	if buckets < 1 {
		buckets = 1
	}
	width := (int64(hours)*3600 + int64(buckets) - 1) / int64(buckets)
	width = max(width, 1)
	sec := now.Unix()
	end := (sec/width + 1) * width
	if sec < 0 && sec%width != 0 {
		end -= width // floor, not truncation toward zero
	}
	return TrendQuery{
		TrialID: trialID, SiteID: siteID,
		From:    time.Unix(end-int64(buckets)*width, 0).UTC(),
		Bucket:  time.Duration(width) * time.Second,
		Buckets: buckets,
	}
}

// TrendRow is one reading as a backend hands it to CollectTrends: its
// patient, when it was measured, and the stored documents. Every slice may
// point into the backend's buffers: CollectTrends copies what it keeps.
type TrendRow struct {
	PatientID  []byte
	MeasuredAt time.Time
	// Reading is the stored reading (reading.Reading as JSON); Score the
	// stored score (scoring.Score as JSON), or nil when the reading is not
	// scored yet.
	Reading, Score []byte
}

// PatientTrend is one patient's series.
type PatientTrend struct {
	PatientID string
	// Series[i] has one value per bucket, oldest first: the mean of series i
	// over the readings measured in the bucket, rounded to one decimal, or
	// NaN where no reading in the bucket had it.
	Series [NumTrendSeries][]float64
}

// Trends is a site's trend: every patient with a reading in the window.
type Trends struct {
	TrialID, SiteID string
	From, To        time.Time
	Bucket          time.Duration
	Buckets         int
	// Patients is ordered by patient id.
	Patients []PatientTrend
	// Rows is the number of readings read.
	Rows int
	// Truncated is true when the window held more readings than the cap:
	// the oldest were not read, so the oldest buckets may lack readings.
	Truncated bool
}

type trendAcc struct {
	id     string
	sums   []float64 // [series*buckets + bucket]
	counts []uint32
}

// CollectTrends averages the readings next supplies into q's buckets. next
// fills row with the next reading, newest first, and reports false when
// there are none left (or an error); it is called at most q.Limit() times.
// Readings outside the window are read but not counted in any bucket. This
// is the whole of a trend but the query: backends only supply the rows.
func CollectTrends(q TrendQuery, next func(row *TrendRow) (bool, error)) (Trends, error) {
	if q.Buckets < 1 || q.Bucket <= 0 {
		return Trends{}, errors.New("store: trends: the query needs buckets and a bucket length")
	}
	from := q.From.UTC()
	tr := Trends{TrialID: q.TrialID, SiteID: q.SiteID, From: from, To: q.To().UTC(),
		Bucket: q.Bucket, Buckets: q.Buckets}
	span := tr.To.Sub(from)
	n := q.Buckets
	accs := map[string]*trendAcc{}
	var (
		row   TrendRow
		vals  trendValues
		last  *trendAcc
		limit = q.maxRows()
	)
	for {
		row = TrendRow{}
		ok, err := next(&row)
		if err != nil {
			return Trends{}, err
		}
		if !ok {
			break
		}
		if tr.Rows == limit {
			tr.Truncated = true
			break
		}
		tr.Rows++
		d := row.MeasuredAt.Sub(from)
		if d < 0 || d >= span {
			continue
		}
		b := int(d / q.Bucket)
		acc := last
		if acc == nil || acc.id != string(row.PatientID) {
			acc = accs[string(row.PatientID)]
			if acc == nil {
				acc = &trendAcc{id: string(row.PatientID),
					sums: make([]float64, NumTrendSeries*n), counts: make([]uint32, NumTrendSeries*n)}
				accs[acc.id] = acc
			}
			last = acc
		}
		if err := vals.decode(row.Reading, row.Score); err != nil {
			return Trends{}, fmt.Errorf("patient %s at %s: %w", row.PatientID, row.MeasuredAt.Format(time.RFC3339Nano), err)
		}
		for i := range NumTrendSeries {
			if vals.has[i] {
				acc.sums[i*n+b] += vals.v[i]
				acc.counts[i*n+b]++
			}
		}
	}

	tr.Patients = make([]PatientTrend, 0, len(accs))
	for _, acc := range accs {
		p := PatientTrend{PatientID: acc.id}
		vals := acc.sums // reused: each mean replaces its sum
		for k, c := range acc.counts {
			if c == 0 {
				vals[k] = math.NaN()
			} else {
				vals[k] = math.Round(vals[k]/float64(c)*10) / 10
			}
		}
		for i := range NumTrendSeries {
			p.Series[i] = vals[i*n : (i+1)*n : (i+1)*n]
		}
		tr.Patients = append(tr.Patients, p)
	}
	slices.SortFunc(tr.Patients, func(a, b PatientTrend) int { return strings.Compare(a.PatientID, b.PatientID) })
	return tr, nil
}

// MarshalJSON encodes the trend as the board's trend reply.
func (t Trends) MarshalJSON() ([]byte, error) { return t.AppendJSON(nil), nil }

// AppendJSON appends the trend reply (docs/api.md) to b:
//
//	{"trial_id", "site_id", "from", "to", "bucket_seconds", "vitals": [...],
//	 "patients": {"P1": {"respiratory_rate": [16, null, …], …}}, "truncated"}
//
// Each series has one entry per bucket, oldest first; null where no reading
// of the bucket had the value.
func (t Trends) AppendJSON(b []byte) []byte {
	b = append(b, `{"trial_id":`...)
	b = appendJSONString(b, t.TrialID)
	b = append(b, `,"site_id":`...)
	b = appendJSONString(b, t.SiteID)
	b = append(b, `,"from":"`...)
	b = t.From.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","to":"`...)
	b = t.To.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","bucket_seconds":`...)
	b = strconv.AppendFloat(b, t.Bucket.Seconds(), 'f', -1, 64)
	b = append(b, `,"vitals":[`...)
	for i, v := range TrendVitals {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, v...)
		b = append(b, '"')
	}
	b = append(b, `],"patients":{`...)
	for i, p := range t.Patients {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, p.PatientID)
		b = append(b, ":{"...)
		for j, s := range p.Series {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, TrendVitals[j]...)
			b = append(b, `":[`...)
			for k, v := range s {
				if k > 0 {
					b = append(b, ',')
				}
				b = appendTenths(b, v)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `},"truncated":`...)
	b = strconv.AppendBool(b, t.Truncated)
	return append(b, '}')
}

// appendTenths appends v, a value rounded to one decimal, as a JSON number
// ("16", "37.3"), or null for NaN. Printing tenths as integers is several
// times faster than strconv's shortest-float formatting, and a 500-patient
// site's reply holds over a hundred thousand values.
func appendTenths(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	x := math.Round(v * 10)
	if math.Abs(x) >= 1<<53 {
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	n := int64(x)
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	b = strconv.AppendInt(b, n/10, 10)
	if d := n % 10; d != 0 {
		b = append(b, '.', byte('0'+d))
	}
	return b
}

// appendJSONString appends s as a JSON string: ids are plain ASCII, so the
// fast path copies them; anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, err := json.Marshal(s)
			if err != nil { // a string always encodes
				panic(err)
			}
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
