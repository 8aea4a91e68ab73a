package store

import (
	"math"
	"slices"
	"strings"
	"time"

	"vigil/scoring"
)

// ActionAlertAcknowledged is the audit action of a person's acknowledgement
// (package lifecycle writes it); the overview's time to acknowledge is
// measured to the first such record of each alert.
const ActionAlertAcknowledged = "alert.acknowledged"

// AckWindow is how far back the overview's acknowledgement figures look:
// alerts opened in the last 7 days.
const AckWindow = 7 * 24 * time.Hour

// SiteOverview is one site's figures in a trial overview: the safety
// physician's "sites × risk at a glance".
type SiteOverview struct {
	SiteID string `json:"site_id"`
	// Patients is the number of the site's patients with at least one
	// reading, withdrawn patients excepted: the sum of Risk's counts.
	Patients int        `json:"patients"`
	Risk     RiskCounts `json:"risk"`
	// LastReadingAt is the measured_at of the site's newest reading (of a
	// patient counted in Patients); nil when there is none.
	LastReadingAt *time.Time  `json:"last_reading_at"`
	Alerts        AlertCounts `json:"alerts"`
	Ack           AckSummary  `json:"ack"`
}

// RiskCounts counts patients by the risk of their latest reading (by
// measured_at); Pending counts those whose latest reading is not scored yet.
type RiskCounts struct {
	None     int `json:"none"`
	Low      int `json:"low"`
	Medium   int `json:"medium"`
	High     int `json:"high"`
	Critical int `json:"critical"`
	Pending  int `json:"pending"`
}

// AlertCounts counts a site's unresolved alerts by status and, separately,
// by severity.
type AlertCounts struct {
	Open         int `json:"open"`
	Acknowledged int `json:"acknowledged"`
	Escalated    int `json:"escalated"`
	Critical     int `json:"critical"`
	High         int `json:"high"`
	Medium       int `json:"medium"`
}

// AckSummary summarises the time from an alert's opened_at to its first
// acknowledgement by a person, over the site's alerts opened within
// AckWindow that were acknowledged. The figures are whole seconds, nil when
// Count is 0; the median and 90th percentile interpolate linearly between
// the nearest ranks (PostgreSQL's percentile_cont).
type AckSummary struct {
	Count         int    `json:"count"`
	MedianSeconds *int64 `json:"median_seconds"`
	P90Seconds    *int64 `json:"p90_seconds"`
	MaxSeconds    *int64 `json:"max_seconds"`
}

// SummariseAck computes an AckSummary from the times to acknowledge.
// Negative durations (clock skew) count as 0.
func SummariseAck(ds []time.Duration) AckSummary {
	if len(ds) == 0 {
		return AckSummary{}
	}
	secs := make([]float64, len(ds))
	for i, d := range ds {
		secs[i] = max(d.Seconds(), 0)
	}
	slices.Sort(secs)
	whole := func(v float64) *int64 { n := int64(math.Round(v)); return &n }
	return AckSummary{
		Count:         len(secs),
		MedianSeconds: whole(percentile(secs, 0.5)),
		P90Seconds:    whole(percentile(secs, 0.9)),
		MaxSeconds:    whole(secs[len(secs)-1]),
	}
}

// percentile interpolates the q-quantile of sorted, non-empty xs linearly
// between the closest ranks.
func percentile(xs []float64, q float64) float64 {
	rank := q * float64(len(xs)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	return xs[lo] + (xs[hi]-xs[lo])*(rank-float64(lo))
}

// OverviewBuilder puts a trial overview together from the rows of a store's
// aggregate queries, so that the stores share everything but their SQL. It is
// not safe for concurrent use.
type OverviewBuilder struct {
	sites map[string]*SiteOverview
	acks  map[string][]time.Duration
}

// NewOverviewBuilder returns an empty builder.
func NewOverviewBuilder() *OverviewBuilder {
	return &OverviewBuilder{sites: map[string]*SiteOverview{}, acks: map[string][]time.Duration{}}
}

func (b *OverviewBuilder) site(id string) *SiteOverview {
	s := b.sites[id]
	if s == nil {
		s = &SiteOverview{SiteID: id}
		b.sites[id] = s
	}
	return s
}

// AddLatest adds n patients of the site whose latest reading has risk ("":
// not scored yet), the newest of those readings measured at last. A risk
// that is none of scoring's levels counts no patient (Patients stays the sum
// of Risk), but its reading still counts as the site's newest.
func (b *OverviewBuilder) AddLatest(site, risk string, n int, last time.Time) {
	s := b.site(site)
	var count *int
	switch risk {
	case "":
		count = &s.Risk.Pending
	case scoring.RiskNone:
		count = &s.Risk.None
	case scoring.RiskLow:
		count = &s.Risk.Low
	case scoring.RiskMedium:
		count = &s.Risk.Medium
	case scoring.RiskHigh:
		count = &s.Risk.High
	case scoring.RiskCritical:
		count = &s.Risk.Critical
	}
	if count != nil {
		*count += n
		s.Patients += n
	}
	if n > 0 && (s.LastReadingAt == nil || last.After(*s.LastReadingAt)) {
		t := last.UTC()
		s.LastReadingAt = &t
	}
}

// Rows is what both stores' drivers (database/sql and pgx) return from a
// query, as far as reading it goes.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// AddAlertRows adds the rows of a query of (site, status, severity, count)
// with AddAlerts.
func (b *OverviewBuilder) AddAlertRows(rows Rows) error {
	for rows.Next() {
		var (
			site, status, severity string
			n                      int
		)
		if err := rows.Scan(&site, &status, &severity, &n); err != nil {
			return err
		}
		b.AddAlerts(site, status, severity, n)
	}
	return rows.Err()
}

// AddAlerts adds n unresolved alerts of the site with this status and
// severity.
func (b *OverviewBuilder) AddAlerts(site, status, severity string, n int) {
	s := b.site(site)
	switch status {
	case scoring.StatusOpen:
		s.Alerts.Open += n
	case scoring.StatusAcknowledged:
		s.Alerts.Acknowledged += n
	case scoring.StatusEscalated:
		s.Alerts.Escalated += n
	}
	switch severity {
	case scoring.RiskCritical:
		s.Alerts.Critical += n
	case scoring.RiskHigh:
		s.Alerts.High += n
	case scoring.RiskMedium:
		s.Alerts.Medium += n
	}
}

// AddAck adds an alert of the site opened at openedAt and first
// acknowledged at ackedAt.
func (b *OverviewBuilder) AddAck(site string, openedAt, ackedAt time.Time) {
	b.site(site)
	b.acks[site] = append(b.acks[site], ackedAt.Sub(openedAt))
}

// Sites returns the overview, ordered by site id.
func (b *OverviewBuilder) Sites() []SiteOverview {
	out := make([]SiteOverview, 0, len(b.sites))
	for id, s := range b.sites {
		s.Ack = SummariseAck(b.acks[id])
		out = append(out, *s)
	}
	slices.SortFunc(out, func(x, y SiteOverview) int { return strings.Compare(x.SiteID, y.SiteID) })
	return out
}
