package trial

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"vigil/reading"
)

// MaxDocument is the largest protocol or trials file accepted, in bytes. A
// protocol is a few kilobytes; the bound keeps a hostile document from
// costing much memory before it is refused.
const MaxDocument = 1 << 20

// DecodeError reports a document that is not a well-formed protocol, patient
// record or trials file: bad syntax, an unknown or duplicated field, or a
// value of the wrong type. Each entry's Field is the path of the value at
// fault ("escalation.tiers[0].after"); it is empty for the syntax of the
// document as a whole.
type DecodeError struct {
	Errors []reading.FieldError
}

func (e *DecodeError) Error() string { return joinErrors("trial: malformed", e.Errors) }

// ValidationError reports a well-formed document that breaks a rule. Errors
// lists every problem, so that an admin fixes them all in one pass.
type ValidationError struct {
	Errors []reading.FieldError
}

func (e *ValidationError) Error() string { return joinErrors("trial: invalid", e.Errors) }

func joinErrors(prefix string, errs []reading.FieldError) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i, fe := range errs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if fe.Field != "" {
			b.WriteString(fe.Field)
			b.WriteString(": ")
		}
		b.WriteString(fe.Message)
	}
	return b.String()
}

// File is a trials file for `vigil trials apply`: a protocol and, optionally,
// registry records of its patients. In the file a patient is written
// {site, id, status, spo2_scale, age_band, baseline}; decoded records carry the
// protocol's trial id.
type File struct {
	Protocol
	Patients []PatientRecord
}

// fileDoc is File's wire shape: the protocol's fields at the top level.
type fileDoc struct {
	Protocol
	Patients []filePatient `json:"patients"`
}

type filePatient struct {
	Site      string          `json:"site"`
	ID        string          `json:"id"`
	Status    string          `json:"status"`
	SpO2Scale int             `json:"spo2_scale"`
	AgeBand   string          `json:"age_band"`
	Baseline  *reading.Vitals `json:"baseline"`
}

// DecodeProtocol parses a protocol from JSON or YAML, strictly: unknown and
// duplicated fields and values of the wrong type are errors (a *DecodeError
// listing each). version and updated_at are accepted, so that a protocol read
// back from the API can be edited and sent again, but ignored: the store
// assigns them. It does not validate; call Validate.
func DecodeProtocol(data []byte) (Protocol, error) {
	var p Protocol
	if err := decode(data, &p); err != nil {
		return Protocol{}, err
	}
	p.Version, p.UpdatedAt = 0, time.Time{}
	return p, nil
}

// DecodePatient parses a registry record from JSON or YAML, strictly, with
// the API's field names (trial_id, site_id, patient_id, status, spo2_scale,
// age_band, baseline). Store-assigned fields are accepted and ignored.
func DecodePatient(data []byte) (PatientRecord, error) {
	var r PatientRecord
	if err := decode(data, &r); err != nil {
		return PatientRecord{}, err
	}
	r.Version, r.CreatedAt, r.UpdatedAt = 0, time.Time{}, time.Time{}
	return r, nil
}

// DecodeFile parses a trials file from YAML or JSON, strictly. It does not
// validate; call File.Validate.
func DecodeFile(data []byte) (File, error) {
	var doc fileDoc
	if err := decode(data, &doc); err != nil {
		return File{}, err
	}
	doc.Version, doc.UpdatedAt = 0, time.Time{}
	f := File{Protocol: doc.Protocol}
	for _, fp := range doc.Patients {
		f.Patients = append(f.Patients, PatientRecord{
			TrialID: doc.TrialID, SiteID: fp.Site, PatientID: fp.ID,
			Status: fp.Status, SpO2Scale: fp.SpO2Scale, AgeBand: fp.AgeBand, Baseline: fp.Baseline,
		})
	}
	return f, nil
}

// decode fills out (a pointer to struct) from a JSON or YAML document.
//
// Both are parsed by the YAML parser (JSON is YAML's flow style) and then
// walked against out's json tags by hand, rather than with yaml.Unmarshal or
// json.Unmarshal: encoding/json matches keys case-insensitively and keeps the
// last of duplicated keys, yaml.v3 would need a second set of tags (and
// reading.Vitals has none), and neither names the path of a bad value with
// its list index. A document whose first character is '{' is JSON and its
// scalars must have their JSON types; in YAML a plain scalar is taken as
// written where a string is expected, so `id: 0012` stays "0012" rather than
// becoming the octal number 10.
func decode(data []byte, out any) error {
	if len(data) > MaxDocument {
		return decodeErr("", "the document is larger than "+strconv.Itoa(MaxDocument>>10)+" KiB")
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	d := &decoder{json: len(trimmed) > 0 && trimmed[0] == '{'}
	format := "YAML"
	if d.json {
		format = "JSON"
	}
	yd := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := yd.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return decodeErr("", "the document is empty")
		}
		return decodeErr("", "not valid "+format+": "+strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	switch err := yd.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return decodeErr("", "not valid "+format+": "+strings.TrimPrefix(err.Error(), "yaml: "))
	default:
		return decodeErr("", "the file holds more than one document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if isNull(root) {
		return decodeErr("", "the document is empty")
	}
	d.value(root, reflect.ValueOf(out).Elem(), "")
	if len(d.errs) > 0 {
		return &DecodeError{Errors: d.errs}
	}
	return nil
}

func decodeErr(field, msg string) error {
	return &DecodeError{Errors: []reading.FieldError{{Field: field, Message: msg}}}
}

// Limits of one decode. YAML aliases let a small document name the same
// subtree many times over (tiers of aliased channels of aliased addresses),
// so the walk counts the values it visits rather than trusting the size of
// the document.
const (
	maxValues = 100_000
	maxErrors = 100
)

type decoder struct {
	json   bool
	errs   []reading.FieldError
	values int
	// stop ends the walk: the budget is spent or enough errors are listed.
	stop bool
}

func (d *decoder) fail(path, msg string) {
	if d.stop {
		return
	}
	if len(d.errs) == maxErrors {
		d.errs = append(d.errs, reading.FieldError{Message: "too many errors; fix these first"})
		d.stop = true
		return
	}
	d.errs = append(d.errs, reading.FieldError{Field: path, Message: msg})
}

var (
	durationType = reflect.TypeFor[Duration]()
	timeType     = reflect.TypeFor[time.Time]()
)

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// value decodes n into v. A null leaves v as it is (absent), as JSON null
// does for encoding/json.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if d.stop {
		return
	}
	if d.values++; d.values > maxValues {
		d.fail("", fmt.Sprintf("the document expands to more than %d values", maxValues))
		d.stop = true
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if isNull(n) {
		return
	}
	switch v.Type() {
	case durationType:
		s, ok := d.text(n, path, durationHint)
		if !ok {
			return
		}
		dur, err := parseDuration(s)
		if err != nil {
			d.fail(path, err.Error())
			return
		}
		v.Set(reflect.ValueOf(dur))
		return
	case timeType:
		s, ok := d.text(n, path, "must be an RFC 3339 time")
		if !ok {
			return
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			d.fail(path, "must be an RFC 3339 time")
			return
		}
		v.Set(reflect.ValueOf(t))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		d.value(n, e.Elem(), path)
		v.Set(e)
	case reflect.Struct:
		d.object(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, "must be a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.value(c, s.Index(i), path+"["+strconv.Itoa(i)+"]")
		}
		v.Set(s)
	case reflect.String:
		if s, ok := d.text(n, path, "must be a string"); ok {
			v.SetString(s)
		}
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(path, "must be a whole number")
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		var f float64
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil {
			d.fail(path, "must be a number")
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(path, "must be a finite number")
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(path, "must be true or false")
			return
		}
		v.SetBool(b)
	default:
		// Only the types of this package reach here; a new field of another
		// kind needs a case above.
		d.fail(path, "cannot be decoded (unsupported type "+v.Type().String()+")")
	}
}

// text returns a scalar meant as a string. JSON requires a JSON string; YAML
// takes any plain scalar as written (see decode).
func (d *decoder) text(n *yaml.Node, path, msg string) (string, bool) {
	if n.Kind != yaml.ScalarNode || d.json && n.ShortTag() != "!!str" {
		d.fail(path, msg)
		return "", false
	}
	return n.Value, true
}

func (d *decoder) object(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, "must be an object")
		return
	}
	fields := fieldsOf(v.Type())
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			d.fail(path, "keys must be field names")
			continue
		}
		name := k.Value
		p := name
		if path != "" {
			p = path + "." + name
		}
		if seen[name] {
			d.fail(p, "duplicate field")
			continue
		}
		seen[name] = true
		idx, ok := fields[name]
		if !ok {
			d.fail(p, "unknown field")
			continue
		}
		d.value(val, v.FieldByIndex(idx), p)
	}
}

var fieldCache sync.Map // reflect.Type -> map[string][]int

// fieldsOf maps a struct's JSON field names to their indexes, promoting the
// fields of untagged embedded structs as encoding/json does.
func fieldsOf(t reflect.Type) map[string][]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string][]int)
	}
	m := map[string][]int{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			idx := append(append([]int(nil), prefix...), i)
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			// Outer fields win over promoted ones, as in encoding/json.
			if _, dup := m[name]; !dup || len(idx) < len(m[name]) {
				m[name] = idx
			}
		}
	}
	walk(t, nil)
	fieldCache.Store(t, m)
	return m
}
