// Package store owns durable records: readings (never updated in place), their
// scores, alerts and the audit trail. It defines the Store interface that the
// embedded SQLite store (store/sqlite) and the PostgreSQL store implement, and
// the records they exchange. It imports reading and scoring for their types.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"vigil/reading"
	"vigil/scoring"
)

// NewReading is a reading about to be stored.
type NewReading struct {
	Reading    reading.Reading
	ReceivedAt time.Time
	// Payload is the reading exactly as the client sent it (ALCOA: original).
	Payload json.RawMessage
	// ContentHash identifies the reading's content for idempotent retries; two
	// submissions with one reading_id are the same when their hashes are equal.
	ContentHash string
}

// InsertStatus is the outcome of storing one reading.
type InsertStatus int

const (
	// Inserted: the reading is new and now durable.
	Inserted InsertStatus = iota + 1
	// Duplicate: a reading with this id and the same content was stored before.
	Duplicate
	// Conflict: a reading with this id but different content was stored before.
	Conflict
)

// InsertOutcome reports what happened to one reading.
type InsertOutcome struct {
	Status InsertStatus
	// ReceivedAt is when the stored reading (this one or the earlier one) was
	// received.
	ReceivedAt time.Time
	// Scored tells, for a Duplicate, whether the stored reading has a score.
	Scored bool
}

// Record is a stored reading with its score, if scored.
type Record struct {
	Seq        int64           `json:"-"`
	Reading    reading.Reading `json:"-"`
	ReceivedAt time.Time       `json:"-"`
	Score      *scoring.Score  `json:"-"`
}

// ReadingQuery selects one patient's readings, oldest first.
type ReadingQuery struct {
	TrialID, SiteID, PatientID string
	// AfterSeq continues after the reading with this Seq, in the list's
	// (measured_at, seq) order, so readings uploaded late from an offline app
	// are neither skipped nor repeated; a Seq that is not one of this patient's
	// readings gives ErrNotFound.
	AfterSeq int64
	// Since, if set, returns readings measured at or after it.
	Since time.Time
	Limit int
}

// AlertQuery selects alerts. Visible restricts them to sites the caller may
// see; an empty Visible matches nothing, so a filter can never widen access.
type AlertQuery struct {
	TrialID string // optional
	SiteID  string // optional, with TrialID
	// PatientID is optional, with TrialID and SiteID: one patient's alerts.
	PatientID string
	Status    string // optional: open|acknowledged|escalated|resolved
	Visible   Visibility
	Limit     int
	// AfterID is the cursor of the next page: alerts ordered by
	// (updated_at desc, alert_id) continue after this alert.
	AfterID string
}

// Visibility is the set of sites a caller may see: whole trials, or single
// trial/site pairs.
type Visibility struct {
	Trials []string    // every site of these trials
	Sites  [][2]string // {trial, site}
}

// AuditRecord is one entry of the audit trail: who did what, when and why, with
// the value before and after. Entries are only ever appended.
type AuditRecord struct {
	ID int64 `json:"id"`
	// EntityType is alert, protocol or patient; EntityID its id (an alert id,
	// a trial id, "trial/site/patient").
	EntityType string `json:"entity_type"`
	EntityID   string `json:"entity_id"`
	// AlertID repeats EntityID for alert records (DESIGN.md's shape).
	AlertID   string `json:"alert_id,omitempty"`
	Actor     string `json:"actor"`
	ActorName string `json:"actor_name,omitempty"`
	ActorRole string `json:"actor_role,omitempty"`
	Action    string `json:"action"`
	Reason    string `json:"reason,omitempty"`
	// Meaning is what a signed action means (21 CFR 11.50), e.g.
	// "acknowledged: reviewed the patient's readings".
	Meaning  string          `json:"meaning,omitempty"`
	OldValue json.RawMessage `json:"old_value"`
	NewValue json.RawMessage `json:"new_value"`
	At       time.Time       `json:"at"`
	// PrevHash and Hash chain the records (see `vigil audit verify`).
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Audit entity types.
const (
	EntityAlert    = "alert"
	EntityProtocol = "protocol"
	EntityPatient  = "patient"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("store: not found")

// Store is Vigil's durable storage. Implementations group-commit concurrent
// writes, so callers may call InsertReading from many goroutines and each call
// returns only once its reading is durable.
type Store interface {
	// InsertReading stores a reading durably, or reports that its id exists.
	InsertReading(ctx context.Context, r NewReading) (InsertOutcome, error)
	// SaveScore stores a reading's score. It stores only the first score of a
	// reading and reports saved=false for any later one, so concurrent scorers
	// of one reading publish once.
	SaveScore(ctx context.Context, s scoring.Score) (saved bool, err error)
	// ApplyAlert reads the patient's unresolved alert, calls merge with it and
	// the candidate, and stores the result when merge reports a change, with an
	// audit record (actor "system"), all in one transaction. A new alert gets a
	// fresh AlertID.
	ApplyAlert(ctx context.Context, candidate scoring.Alert, merge scoring.MergeFunc) (scoring.Alert, bool, error)
	// Unscored returns readings received before olderThan that have no score,
	// oldest first: the work left by a crash.
	Unscored(ctx context.Context, olderThan time.Time, limit int) ([]Record, error)
	// LatestByPatient returns, for each patient of the site, the latest reading
	// (by measured_at) and its score, ordered by patient id.
	LatestByPatient(ctx context.Context, trialID, siteID string) ([]Record, error)
	// PatientReadings returns one patient's readings, oldest first.
	PatientReadings(ctx context.Context, q ReadingQuery) ([]Record, error)
	// RecentReadings returns at most limit of the patient's most recent
	// readings measured in [from, to], oldest first (measured_at, then
	// arrival), without scores: the risk model's feature window. It runs for
	// every reading scored with a model, so implementations keep it cheap.
	RecentReadings(ctx context.Context, trialID, siteID, patientID string, from, to time.Time, limit int) ([]reading.Reading, error)
	// Reading returns one reading by id.
	Reading(ctx context.Context, readingID string) (Record, error)
	// Alerts returns alerts, most recently updated first.
	Alerts(ctx context.Context, q AlertQuery) ([]scoring.Alert, error)
	// Alert returns one alert by id.
	Alert(ctx context.Context, alertID string) (scoring.Alert, error)
	// Audit returns an alert's audit trail, oldest first.
	Audit(ctx context.Context, alertID string) ([]AuditRecord, error)
	// TrialOverview returns the figures of every site of the trial that has
	// readings, unresolved alerts, or acknowledged alerts opened within the
	// AckWindow before now, ordered by site id (see SiteOverview).
	// Implementations compute them with aggregate queries, never by loading
	// readings, and put them together with an OverviewBuilder.
	TrialOverview(ctx context.Context, trialID string, now time.Time) ([]SiteOverview, error)
	// RoomOffsets returns the bus offsets saved by SaveRoomOffsets and whether
	// the last save was a clean shutdown's (exact) rather than a periodic one
	// (possibly behind what was published before a crash). A new store is
	// clean with no offsets.
	RoomOffsets(ctx context.Context) (offsets map[string]uint64, clean bool, err error)
	// SaveRoomOffsets records each room's latest bus offset; a stored offset
	// never decreases.
	SaveRoomOffsets(ctx context.Context, offsets map[string]uint64, clean bool) error
	// Ping reports whether the store can serve.
	Ping(ctx context.Context) error
	Close() error

	TrialStore
	LifecycleStore
	Outbox
	AuditLog

	// Trends returns the site's readings measured in q's window, averaged
	// per patient and bucket: one range query, newest first, at most
	// q.Limit() rows, put together by CollectTrends.
	Trends(ctx context.Context, q TrendQuery) (Trends, error)
}
