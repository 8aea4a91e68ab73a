package reading

import (
	"encoding/json"
	"errors"
	"testing"
)

func FuzzDecodeValidate(f *testing.F) {
	seeds := []string{
		validJSON,
		`{}`,
		`{"vitals": {}}`,
		`{"vitals": null, "symptoms": null}`,
		`{"reading_id": "6f1c2b1e-0a4b-4c5d-8e9f-0123456789ab", "patient_id": "P1", "trial_id": "T1",
		  "site_id": "S1", "measured_at": "2026-11-26T08:00:05Z", "vitals": {"heart_rate": 300}}`,
		`{"measured_at": "2026-11-26t08:00:05.123456789+14:00", "vitals": {"temperature": 38.05}}`,
		`{"measured_at": "0000-01-01T00:30:00+01:00"}`,
		`{"measured_at": "9999-12-31T23:59:59.999999999-00:00"}`,
		`{"vitals": {"respiratory_rate": 18.5, "spo2": 1e2, "spo2_scale": 2, "on_oxygen": true}}`,
		`{"vitals": {"temperature": 1e400}}`,
		`{"vitals": {"temperature": -0}}`,
		`{"vitals": {"spo2_scale": 99999999999999999999}}`,
		`{"vitals": {"consciousness": "sleepy", "diastolic_bp": 120, "systolic_bp": 90}}`,
		`{"symptoms": [{"term": "nausea", "grade": 2}, {"term": "", "grade": 9}]}`,
		`{"symptoms": [{"term": "\ud800\u0000\t", "grade": -1}]}`,
		"{\"patient_id\": \"\xff\xfe\"}",
		`{"patient_id": "P1", "patient_id": "P2"}`,
		`{"Patient_ID": "P1"}`,
		`{"vitals": {"heart_rate": "88"}}`,
		`{"symptoms": [1, 2]}`,
		`{} {}`,
		`{}x`,
		`[]`,
		`null`,
		`"x"`,
		``,
		`{"reading_id": "{6f1c2b1e-0a4b-4c5d-8e9f-0123456789ab}"}`,
		`{"readings": [{}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error %v is %T, want *DecodeError", err, err)
			}
			return
		}
		if err := r.Validate(now); err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 {
				t.Fatalf("Validate error %v is %T or empty, want *ValidationError", err, err)
			}
		}
		h := ContentHash(r)

		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("decoded reading does not encode: %v", err)
		}
		r2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-encoded reading %s does not decode: %v", b, err)
		}
		if h2 := ContentHash(r2); h2 != h {
			t.Fatalf("hash changed after re-encoding %s", b)
		}
		// Validity must not depend on the encoding either.
		if (r.Validate(now) == nil) != (r2.Validate(now) == nil) {
			t.Fatalf("validity changed after re-encoding %s", b)
		}

		// Batches return each element as it came; none is lost or invented.
		if items, err := DecodeBatch(append(append([]byte(`{"readings":[`), data...), ']', '}')); err == nil {
			if len(items) != 1 {
				t.Fatalf("batch of one decoded to %d items", len(items))
			}
			if _, err := Decode(items[0]); err != nil {
				t.Fatalf("batch element does not decode: %v", err)
			}
		}
	})
}

// FuzzDecodeBatch feeds arbitrary bytes to the batch envelope parser: it must
// never panic, and whatever it accepts is a list of 1..MaxBatch JSON values.
func FuzzDecodeBatch(f *testing.F) {
	for _, s := range []string{
		`{"readings": [` + validJSON + `]}`,
		`{"readings": []}`,
		`{"readings": null}`,
		`{"readings": 5}`,
		`{"readings": [{}, [], null, 1, "x"]}`,
		`{"readings": [{}], "extra": 1}`,
		`{"readings": [{}], "readings": [{}]}`,
		`{"READINGS": [{}]}`,
		`{"readings": [{}]} {}`,
		``, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := DecodeBatch(data)
		if err != nil {
			var de *DecodeError
			var ve *ValidationError
			if !errors.As(err, &de) && !errors.As(err, &ve) {
				t.Fatalf("DecodeBatch error %v is %T", err, err)
			}
			return
		}
		if len(items) == 0 || len(items) > MaxBatch {
			t.Fatalf("accepted a batch of %d", len(items))
		}
		for i, it := range items {
			if !json.Valid(it) {
				t.Fatalf("item %d is not JSON: %q", i, it)
			}
		}
	})
}
