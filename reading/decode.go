package reading

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxBatch is the most readings one batch request may carry.
const MaxBatch = 500

// DecodeError reports a body that is not a well-formed reading: bad JSON, an
// unknown or duplicated field, a value of the wrong JSON type, or a reading_id
// or measured_at in the wrong format. Field is the JSON path of the value at
// fault (for example "vitals.heart_rate" or "symptoms[1].grade"); it is empty
// when the fault is the syntax of the body as a whole.
type DecodeError struct {
	Field   string
	Message string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return "reading: " + e.Message
	}
	return "reading: " + e.Field + ": " + e.Message
}

// ValidationError reports a well-formed reading that cannot be true. Errors
// lists every field at fault, in the order of the wire format.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("reading: invalid")
	for i, fe := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(fe.Field)
		b.WriteString(": ")
		b.WriteString(fe.Message)
	}
	return b.String()
}

// Decode parses one reading strictly. It walks the JSON token stream itself,
// rather than using json.Unmarshal, because encoding/json matches keys
// case-insensitively, silently keeps the last of duplicated keys and names
// array elements without their index; each of those would let a malformed
// submission through, or blame the wrong field, in clinical data.
//
// A JSON null is taken as an absent value. reading_id is normalised to lower
// case and measured_at to UTC.
func Decode(data []byte) (Reading, error) {
	d := newDecoder(data)
	var r Reading
	if err := d.reading(&r); err != nil {
		return Reading{}, err
	}
	if err := d.end(); err != nil {
		return Reading{}, err
	}
	return r, nil
}

// DecodeBatch parses the envelope of a batch, {"readings": [...]}, and returns
// each element undecoded so that the caller can decode and judge every reading
// on its own: one bad reading must not sink the readings sent with it.
func DecodeBatch(data []byte) ([]json.RawMessage, error) {
	d := newDecoder(data)
	if err := d.beginObject(""); err != nil {
		return nil, err
	}
	var (
		items []json.RawMessage
		seen  bool
	)
	for d.dec.More() {
		key, err := d.key()
		if err != nil {
			return nil, err
		}
		if key != "readings" {
			return nil, &DecodeError{Field: key, Message: "unknown field"}
		}
		if seen {
			return nil, &DecodeError{Field: key, Message: "duplicate field"}
		}
		seen = true
		tok, err := d.token()
		if err != nil {
			return nil, err
		}
		if tok == nil {
			continue
		}
		if tok != json.Delim('[') {
			return nil, typeError(key, "an array", tok)
		}
		for d.dec.More() {
			if len(items) == MaxBatch {
				// Stop reading: the answer cannot change and the rest may be large.
				return nil, &ValidationError{Errors: []FieldError{{
					Field:   "readings",
					Message: fmt.Sprintf("at most %d readings per batch", MaxBatch),
				}}}
			}
			var raw json.RawMessage
			if err := d.dec.Decode(&raw); err != nil {
				return nil, syntaxError(err)
			}
			items = append(items, raw)
		}
		if _, err := d.token(); err != nil { // the closing ']'
			return nil, err
		}
	}
	if _, err := d.token(); err != nil { // the closing '}'
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, &ValidationError{Errors: []FieldError{{Field: "readings", Message: "no readings"}}}
	}
	return items, nil
}

type decoder struct {
	dec *json.Decoder
}

func newDecoder(data []byte) *decoder {
	dec := json.NewDecoder(bytes.NewReader(data))
	// Numbers stay as their literal text so that integers are parsed exactly
	// and out-of-range numbers are reported rather than turned into ±Inf.
	dec.UseNumber()
	return &decoder{dec: dec}
}

// syntaxError turns an error of the token stream into a *DecodeError with no field.
func syntaxError(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return &DecodeError{Message: "empty body"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &DecodeError{Message: "unexpected end of JSON input"}
	case errors.As(err, &se):
		return &DecodeError{Message: fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)}
	}
	return &DecodeError{Message: err.Error()}
}

func (d *decoder) token() (json.Token, error) {
	tok, err := d.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &DecodeError{Message: "unexpected end of JSON input"}
		}
		return nil, syntaxError(err)
	}
	return tok, nil
}

// end insists that nothing but white space follows the value just read.
func (d *decoder) end() error {
	_, err := d.dec.Token()
	if errors.Is(err, io.EOF) {
		return nil
	}
	return &DecodeError{Message: "unexpected data after the JSON object"}
}

func (d *decoder) beginObject(path string) error {
	if path != "" {
		tok, err := d.token()
		if err != nil {
			return err
		}
		if tok != json.Delim('{') {
			return typeError(path, "an object", tok)
		}
		return nil
	}
	tok, err := d.dec.Token()
	if err != nil {
		return syntaxError(err) // io.EOF here means an empty body
	}
	if tok != json.Delim('{') {
		return &DecodeError{Message: "must be a JSON object"}
	}
	return nil
}

func (d *decoder) key() (string, error) {
	tok, err := d.token()
	if err != nil {
		return "", err
	}
	// The tokenizer guarantees a string in key position.
	k, _ := tok.(string)
	return k, nil
}

// object reads the members of an object whose '{' is already consumed,
// rejecting duplicated keys and handing each value to field, which must
// consume it whole. field reports unknown keys itself.
func (d *decoder) object(path string, field func(key, path string) error) error {
	seen := make(map[string]bool)
	for d.dec.More() {
		k, err := d.key()
		if err != nil {
			return err
		}
		p := join(path, k)
		if seen[k] {
			return &DecodeError{Field: p, Message: "duplicate field"}
		}
		seen[k] = true
		if err := field(k, p); err != nil {
			return err
		}
	}
	_, err := d.token() // the closing '}'
	return err
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) reading(r *Reading) error {
	if err := d.beginObject(""); err != nil {
		return err
	}
	return d.object("", func(key, path string) error {
		switch key {
		case "reading_id":
			s, err := d.str(path)
			if err != nil || s == "" {
				return err
			}
			if !IsUUID(s) {
				return &DecodeError{Field: path, Message: "must be a UUID (8-4-4-4-12 hexadecimal digits)"}
			}
			r.ReadingID = strings.ToLower(s)
		case "patient_id":
			return d.strInto(path, &r.PatientID)
		case "trial_id":
			return d.strInto(path, &r.TrialID)
		case "site_id":
			return d.strInto(path, &r.SiteID)
		case "measured_at":
			s, err := d.str(path)
			if err != nil || s == "" {
				return err
			}
			t, err := parseTime(s)
			if err != nil {
				return &DecodeError{Field: path, Message: err.Error()}
			}
			r.MeasuredAt = t
		case "vitals":
			return d.vitals(path, &r.Vitals)
		case "symptoms":
			return d.symptoms(path, &r.Symptoms)
		default:
			return &DecodeError{Field: path, Message: "unknown field"}
		}
		return nil
	})
}

// parseTime accepts RFC 3339 with a mandatory zone; RFC 3339 allows the "T"
// and "Z" in lower case, which time.Parse does not, hence the upper-casing.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	if err != nil {
		return time.Time{}, errors.New("must be an RFC 3339 time with a zone, such as 2026-11-26T08:00:05Z")
	}
	t = t.UTC()
	// A time that moves out of years 0000-9999 in UTC cannot be written back
	// as RFC 3339 (json.Marshal fails), so it could be neither stored nor hashed.
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, errors.New("out of range")
	}
	return t, nil
}

func (d *decoder) vitals(path string, v *Vitals) error {
	tok, err := d.token()
	if err != nil || tok == nil {
		return err
	}
	if tok != json.Delim('{') {
		return typeError(path, "an object", tok)
	}
	return d.object(path, func(key, path string) error {
		switch key {
		case "respiratory_rate":
			return d.float(path, &v.RespiratoryRate)
		case "spo2":
			return d.float(path, &v.SpO2)
		case "spo2_scale":
			return d.intPtr(path, &v.SpO2Scale)
		case "on_oxygen":
			return d.boolPtr(path, &v.OnOxygen)
		case "systolic_bp":
			return d.float(path, &v.SystolicBP)
		case "diastolic_bp":
			return d.float(path, &v.DiastolicBP)
		case "heart_rate":
			return d.float(path, &v.HeartRate)
		case "consciousness":
			tok, err := d.token()
			if err != nil || tok == nil {
				return err
			}
			s, ok := tok.(string)
			if !ok {
				return typeError(path, "a string", tok)
			}
			v.Consciousness = &s
			return nil
		case "temperature":
			return d.float(path, &v.Temperature)
		}
		return &DecodeError{Field: path, Message: "unknown field"}
	})
}

// gradeMissing marks a decoded symptom that had no grade.
const gradeMissing = math.MinInt32 // in the decoder's int32 range, so a re-encoded reading decodes alike

func (d *decoder) symptoms(path string, out *[]Symptom) error {
	tok, err := d.token()
	if err != nil || tok == nil {
		return err
	}
	if tok != json.Delim('[') {
		return typeError(path, "an array", tok)
	}
	var list []Symptom
	for i := 0; d.dec.More(); i++ {
		p := fmt.Sprintf("%s[%d]", path, i)
		// A symptom without a grade is not "none" (0): it is an incomplete
		// answer, refused by Validate.
		s := Symptom{Grade: gradeMissing}
		if err := d.beginObject(p); err != nil {
			return err
		}
		err := d.object(p, func(key, path string) error {
			switch key {
			case "term":
				return d.strInto(path, &s.Term)
			case "grade":
				var g *int
				if err := d.intPtr(path, &g); err != nil || g == nil {
					return err
				}
				s.Grade = *g
				return nil
			}
			return &DecodeError{Field: path, Message: "unknown field"}
		})
		if err != nil {
			return err
		}
		list = append(list, s)
	}
	if _, err := d.token(); err != nil { // the closing ']'
		return err
	}
	*out = list
	return nil
}

// str reads a string or null (returned as "").
func (d *decoder) str(path string) (string, error) {
	tok, err := d.token()
	if err != nil || tok == nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", typeError(path, "a string", tok)
	}
	return s, nil
}

func (d *decoder) strInto(path string, dst *string) error {
	s, err := d.str(path)
	if err != nil {
		return err
	}
	*dst = s
	return nil
}

func (d *decoder) float(path string, dst **float64) error {
	tok, err := d.token()
	if err != nil || tok == nil {
		return err
	}
	n, ok := tok.(json.Number)
	if !ok {
		return typeError(path, "a number", tok)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		return &DecodeError{Field: path, Message: "number out of range"}
	}
	*dst = &f
	return nil
}

func (d *decoder) intPtr(path string, dst **int) error {
	tok, err := d.token()
	if err != nil || tok == nil {
		return err
	}
	n, ok := tok.(json.Number)
	if !ok {
		return typeError(path, "an integer", tok)
	}
	i, err := strconv.ParseInt(string(n), 10, 32)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return &DecodeError{Field: path, Message: "number out of range"}
		}
		return &DecodeError{Field: path, Message: "must be an integer"}
	}
	v := int(i)
	*dst = &v
	return nil
}

func (d *decoder) boolPtr(path string, dst **bool) error {
	tok, err := d.token()
	if err != nil || tok == nil {
		return err
	}
	b, ok := tok.(bool)
	if !ok {
		return typeError(path, "a boolean", tok)
	}
	*dst = &b
	return nil
}

// typeError describes a value of the wrong JSON type. The value itself is
// not echoed: it may be a patient's data, and error replies end up in logs.
func typeError(path, want string, got json.Token) error {
	return &DecodeError{Field: path, Message: "must be " + want + ", not " + jsonKind(got)}
}

func jsonKind(tok json.Token) string {
	switch tok := tok.(type) {
	case json.Delim:
		if tok == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "a JSON value"
}

// IsUUID reports whether s is a UUID in the canonical 8-4-4-4-12 form of
// hexadecimal digits, in either case. Braces, URN prefixes and the 32-digit
// form are not accepted: one spelling per id keeps idempotency keys unique.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
