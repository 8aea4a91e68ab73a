package trial

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string ("8h", "90m",
// "1h30m") in JSON and YAML. Numbers are refused: a bare 3600 could mean
// seconds or nanoseconds, and a wrong guess would move an escalation by
// orders of magnitude. Negative durations are refused too.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d without the zero units time.Duration prints: "8h" rather
// than "8h0m0s", so that a protocol reads back as it was written.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

const durationHint = `must be a duration such as "8h", "90m" or "1h30m"`

// parseDuration parses a Go duration string and refuses negatives. Its errors
// are messages for a FieldError.
func parseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if strings.HasSuffix(strings.TrimSpace(s), "d") {
			// The mistake people make most: Go has no day unit.
			return 0, errors.New(durationHint + ` (there is no day unit: write "168h" for 7 days)`)
		}
		return 0, errors.New(durationHint)
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	return Duration(d), nil
}

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string; null leaves d unchanged.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("trial: duration " + durationHint)
	}
	v, err := parseDuration(s)
	if err != nil {
		return errors.New("trial: duration " + err.Error())
	}
	*d = v
	return nil
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string. A plain 0 is accepted, as Go's
// parser accepts "0"; any other number fails for want of a unit.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("trial: duration " + durationHint)
	}
	if n.ShortTag() == "!!null" {
		return nil
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return errors.New("trial: duration " + err.Error())
	}
	*d = v
	return nil
}
