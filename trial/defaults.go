package trial

import (
	"slices"
	"time"
)

// Defaults for what a protocol leaves unset.
const (
	DefaultBand             = BandMedium
	DefaultSymptomThreshold = 3   // PRO-CTCAE "severe"
	DefaultModelThreshold   = 0.5 // predictor SAE probability
	// DefaultEscalationAfter and DefaultRepeat time the one board tier of a
	// trial without a protocol: re-notify in minutes, not hours.
	DefaultEscalationAfter = 15 * time.Minute
	DefaultRepeat          = 15 * time.Minute
)

// Band returns the lowest NEWS2 band that raises an alert.
func (t Thresholds) Band() string {
	if t.NEWS2Band == "" {
		return DefaultBand
	}
	return t.NEWS2Band
}

// SymptomThreshold returns the lowest PRO-CTCAE grade that raises an alert.
func (t Thresholds) SymptomThreshold() int {
	if t.SymptomGrade <= 0 {
		return DefaultSymptomThreshold
	}
	return t.SymptomGrade
}

// ModelThreshold returns the predictor probability that raises an alert.
// 0 means unset rather than "always": a threshold of zero would alert on
// every reading.
func (t Thresholds) ModelThreshold() float64 {
	if t.ModelProbability <= 0 {
		return DefaultModelThreshold
	}
	return t.ModelProbability
}

// Enabled reports whether the schedule asks for missed-readings alerts.
func (s Schedule) Enabled() bool { return s.Every > 0 }

// Overdue is how long a patient may be silent before a missed-readings
// alert: Every plus Grace.
func (s Schedule) Overdue() time.Duration { return s.Every.Std() + s.Grace.Std() }

// HasSite reports whether site is one of the protocol's sites.
func (p Protocol) HasSite(site string) bool { return slices.Contains(p.Sites, site) }

// DefaultProtocol is the protocol of a trial nobody configured: no sites
// listed, no schedule (so no missed-readings alerts), default thresholds,
// and every alert shown on the board, re-notified every 15 minutes until
// acknowledged. Each call returns new slices, so a caller cannot alter
// another's default.
func DefaultProtocol(trialID string) Protocol {
	return Protocol{
		TrialID: trialID,
		Escalation: Escalation{
			Tiers: []Tier{{
				Name:     "site",
				After:    Duration(DefaultEscalationAfter),
				Channels: []Channel{{Kind: ChannelBoard}},
			}},
			Repeat: Duration(DefaultRepeat),
		},
	}
}
