package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"vigil/reading"
)

// trendValues are the values one reading gives its trend's series.
type trendValues struct {
	v   [NumTrendSeries]float64
	has [NumTrendSeries]bool
}

// decode takes the trend's values out of a stored reading and score (nil:
// unscored).
//
// A trend reads tens of thousands of documents, and decoding each into its
// whole type cost more than the query (and taking the values out in SQL
// cost the database as much), so the documents the stores write
// (encoding/json of reading.Reading and scoring.Score: compact, keys in
// field order) are read by a direct scan of the few fields a trend needs.
// Any document that is not in that form is decoded with encoding/json.
func (tv *trendValues) decode(readingDoc, scoreDoc []byte) error {
	*tv = trendValues{}
	if !tv.scanVitals(readingDoc) {
		tv.v, tv.has = [NumTrendSeries]float64{}, [NumTrendSeries]bool{}
		var r struct {
			Vitals reading.Vitals `json:"vitals"`
		}
		if err := json.Unmarshal(readingDoc, &r); err != nil {
			return fmt.Errorf("decode reading: %w", err)
		}
		for i, p := range [...]*float64{r.Vitals.RespiratoryRate, r.Vitals.SpO2, r.Vitals.SystolicBP,
			r.Vitals.HeartRate, r.Vitals.Temperature} {
			if p != nil {
				tv.v[i], tv.has[i] = *p, true
			}
		}
	}
	if scoreDoc == nil {
		return nil
	}
	if total, ok := scanNEWS2Total(scoreDoc); ok {
		tv.v[TrendNEWS2], tv.has[TrendNEWS2] = total, true
		return nil
	}
	var sc struct {
		NEWS2 struct {
			Total *float64 `json:"total"`
		} `json:"news2"`
	}
	if err := json.Unmarshal(scoreDoc, &sc); err != nil {
		return fmt.Errorf("decode score: %w", err)
	}
	if sc.NEWS2.Total != nil {
		tv.v[TrendNEWS2], tv.has[TrendNEWS2] = *sc.NEWS2.Total, true
	}
	return nil
}

// In encoding/json's output a quote inside a string is always escaped, so
// these can only be the keys themselves: "vitals" appears once, at the top
// of a reading; "news2" is a score's before anything that could nest one.
var (
	vitalsKey = []byte(`"vitals":{`)
	news2Key  = []byte(`"news2":{"total":`)
)

// scanVitals reads the vitals object of a compact reading document. It
// reports false, having set nothing it could not stand by, for anything it
// does not expect; the caller then decodes the document properly.
func (tv *trendValues) scanVitals(doc []byte) bool {
	i := bytes.Index(doc, vitalsKey)
	if i < 0 {
		return false
	}
	j := i + len(vitalsKey)
	if j < len(doc) && doc[j] == '}' {
		return true // no vitals
	}
	for j < len(doc) {
		// "key":
		if doc[j] != '"' {
			return false
		}
		k := bytes.IndexByte(doc[j+1:], '"')
		if k < 0 {
			return false
		}
		key := doc[j+1 : j+1+k]
		if bytes.IndexByte(key, '\\') >= 0 {
			return false
		}
		j += k + 2
		if j >= len(doc) || doc[j] != ':' {
			return false
		}
		j++
		if j >= len(doc) {
			return false
		}
		// value
		var end int
		if doc[j] == '"' {
			if trendSeriesOf(key) >= 0 {
				return false // a vital is a number
			}
			end = skipString(doc, j)
			if end < 0 {
				return false
			}
		} else {
			if doc[j] == '{' || doc[j] == '[' {
				return false // nothing nests in vitals
			}
			end = j
			for end < len(doc) && doc[end] != ',' && doc[end] != '}' {
				end++
			}
			if end == j || end == len(doc) {
				return false
			}
			if s := trendSeriesOf(key); s >= 0 {
				v, err := strconv.ParseFloat(string(doc[j:end]), 64)
				if err != nil {
					// null (never written: vitals omit what is missing) or
					// something unexpected.
					return false
				}
				tv.v[s], tv.has[s] = v, true
			}
		}
		j = end
		if j >= len(doc) {
			return false
		}
		switch doc[j] {
		case '}':
			return true
		case ',':
			j++
		default:
			return false
		}
	}
	return false
}

// skipString returns the index just past the string starting at doc[i]
// (a quote), or -1.
func skipString(doc []byte, i int) int {
	for j := i + 1; j < len(doc); j++ {
		switch doc[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// trendSeriesOf returns the series a vitals key feeds, or -1.
func trendSeriesOf(key []byte) int {
	switch string(key) {
	case "respiratory_rate":
		return TrendRespiratoryRate
	case "spo2":
		return TrendSpO2
	case "systolic_bp":
		return TrendSystolicBP
	case "heart_rate":
		return TrendHeartRate
	case "temperature":
		return TrendTemperature
	}
	return -1
}

// scanNEWS2Total reads news2.total of a compact score document.
func scanNEWS2Total(doc []byte) (float64, bool) {
	i := bytes.Index(doc, news2Key)
	if i < 0 {
		return 0, false
	}
	j := i + len(news2Key)
	end := j
	for end < len(doc) && doc[end] != ',' && doc[end] != '}' {
		end++
	}
	if end == j || end == len(doc) {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(doc[j:end]), 64)
	if err != nil {
		return 0, false
	}
	return v, true
}
