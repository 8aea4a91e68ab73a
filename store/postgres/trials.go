package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"vigil/store"
	"vigil/trial"
)

// Default audit actions of the trial store.
const (
	actionProtocolPut = "protocol.put"
	actionPatientPut  = "patient.put"
)

// errNoActor refuses a change nobody is accountable for: an audit record
// must say who (ALCOA: attributable).
var errNoActor = errors.New("the change has no actor")

// changeTime is the time of a change: the caller's, when it fixed one (so a
// change and the audit record of the step that made it share one instant),
// else the store's clock. Always UTC, to the microsecond (what is stored).
func (s *Store) changeTime(c store.Change) time.Time {
	if !c.At.IsZero() {
		return micro(c.At)
	}
	return s.now()
}

func auditAction(c store.Change, def string) string {
	if c.Action != "" {
		return c.Action
	}
	return def
}

// PutProtocol stores the trial's protocol as its next version, with an audit
// record holding the previous and the new document, in one transaction. Puts
// of one trial are serialised by an advisory lock on it (the row may not
// exist yet to be locked), so versions run 1, 2, … whichever node writes. An
// invalid protocol is refused with a *trial.ValidationError (wrapped).
func (s *Store) PutProtocol(ctx context.Context, p trial.Protocol, c store.Change) (trial.Protocol, error) {
	if err := p.Validate(); err != nil {
		return trial.Protocol{}, fmt.Errorf("postgres: put protocol %s: %w", p.TrialID, err)
	}
	if c.Actor.Sub == "" {
		return trial.Protocol{}, fmt.Errorf("postgres: put protocol %s: %w", p.TrialID, errNoActor)
	}
	now := s.changeTime(c)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockKey(ctx, tx, lockClassProtocol, p.TrialID); err != nil {
			return err
		}
		var (
			oldDoc  []byte
			version int
		)
		err := tx.QueryRow(ctx, `SELECT doc, version FROM protocols WHERE trial_id = $1`, p.TrialID).
			Scan(&oldDoc, &version)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read current: %w", err)
		}
		var old json.RawMessage
		if oldDoc != nil {
			// Re-encoded from the type, so the old value has the bytes the
			// previous record's new value had (jsonb keeps the value only).
			if old, err = reencode[trial.Protocol](oldDoc); err != nil {
				return fmt.Errorf("decode current: %w", err)
			}
		}
		p.Version = version + 1
		p.UpdatedAt = now
		doc, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO protocols (trial_id, doc, version, updated_at) VALUES ($1, $2::text::jsonb, $3, $4)
			ON CONFLICT (trial_id) DO UPDATE
				SET doc = excluded.doc, version = excluded.version, updated_at = excluded.updated_at`,
			p.TrialID, string(doc), p.Version, now)
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return appendAudit(ctx, tx, store.AuditRecord{EntityType: store.EntityProtocol, EntityID: p.TrialID,
			Actor: c.Actor.Sub, ActorName: c.Actor.Name, ActorRole: c.Actor.Role,
			Action: auditAction(c, actionProtocolPut), Reason: c.Reason, Meaning: c.Meaning,
			OldValue: old, NewValue: json.RawMessage(doc), At: now})
	})
	if err != nil {
		return trial.Protocol{}, fmt.Errorf("postgres: put protocol %s: %w", p.TrialID, err)
	}
	return p, nil
}

// reencode decodes a stored document into T and encodes it again.
func reencode[T any](doc []byte) (json.RawMessage, error) {
	var v T
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// Protocol returns the trial's protocol, or store.ErrNotFound.
func (s *Store) Protocol(ctx context.Context, trialID string) (trial.Protocol, error) {
	rows, err := s.pool.Query(ctx, `SELECT doc, version, updated_at FROM protocols WHERE trial_id = $1`, trialID)
	if err != nil {
		return trial.Protocol{}, fmt.Errorf("postgres: protocol %s: %w", trialID, err)
	}
	ps, err := scanProtocols(rows)
	if err != nil {
		return trial.Protocol{}, fmt.Errorf("postgres: protocol %s: %w", trialID, err)
	}
	if len(ps) == 0 {
		return trial.Protocol{}, fmt.Errorf("postgres: protocol %s: %w", trialID, store.ErrNotFound)
	}
	return ps[0], nil
}

// Protocols returns every protocol, by trial id.
func (s *Store) Protocols(ctx context.Context) ([]trial.Protocol, error) {
	rows, err := s.pool.Query(ctx, `SELECT doc, version, updated_at FROM protocols ORDER BY trial_id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: protocols: %w", err)
	}
	ps, err := scanProtocols(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: protocols: %w", err)
	}
	return ps, nil
}

func scanProtocols(rows pgx.Rows) ([]trial.Protocol, error) {
	defer rows.Close()
	out := []trial.Protocol{}
	for rows.Next() {
		var (
			doc     []byte
			version int
			updated time.Time
		)
		if err := rows.Scan(&doc, &version, &updated); err != nil {
			return nil, err
		}
		var p trial.Protocol
		if err := json.Unmarshal(doc, &p); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		p.Version, p.UpdatedAt = version, updated.UTC()
		out = append(out, p)
	}
	return out, rows.Err()
}

func patientEntityID(trialID, siteID, patientID string) string {
	return trialID + "/" + siteID + "/" + patientID
}

// PutPatient stores a registry record as its next version, with an audit
// record, in one transaction, serialised per patient by an advisory lock. An
// invalid record is refused with a *trial.ValidationError (wrapped); when the
// trial has a protocol the record is checked against it in the same
// transaction, with the protocol row share-locked until commit, so its site
// is one of the protocol's sites as committed, not as it was when the caller
// looked.
func (s *Store) PutPatient(ctx context.Context, r trial.PatientRecord, c store.Change) (trial.PatientRecord, error) {
	id := patientEntityID(r.TrialID, r.SiteID, r.PatientID)
	if err := r.Validate(); err != nil {
		return trial.PatientRecord{}, fmt.Errorf("postgres: put patient of %s: %w", r.TrialID+"/"+r.SiteID, err)
	}
	if c.Actor.Sub == "" {
		return trial.PatientRecord{}, fmt.Errorf("postgres: put patient of %s: %w", r.TrialID+"/"+r.SiteID, errNoActor)
	}
	now := s.changeTime(c)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var protoDoc []byte
		err := tx.QueryRow(ctx, `SELECT doc FROM protocols WHERE trial_id = $1 FOR SHARE`, r.TrialID).Scan(&protoDoc)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read protocol: %w", err)
		default:
			var p trial.Protocol
			if err := json.Unmarshal(protoDoc, &p); err != nil {
				return fmt.Errorf("decode protocol: %w", err)
			}
			if err := r.ValidateFor(p); err != nil {
				return err
			}
		}
		if err := lockKey(ctx, tx, lockClassPatient, r.TrialID+"\x00"+r.SiteID+"\x00"+r.PatientID); err != nil {
			return err
		}

		var (
			oldDoc  []byte
			version int
			created time.Time
		)
		err = tx.QueryRow(ctx, `
			SELECT doc, version, created_at FROM patients
			WHERE trial_id = $1 AND site_id = $2 AND patient_id = $3`, r.TrialID, r.SiteID, r.PatientID).
			Scan(&oldDoc, &version, &created)
		var old json.RawMessage
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			r.CreatedAt = now
		case err != nil:
			return fmt.Errorf("read current: %w", err)
		default:
			r.CreatedAt = created.UTC()
			if old, err = reencode[trial.PatientRecord](oldDoc); err != nil {
				return fmt.Errorf("decode current: %w", err)
			}
		}
		r.Version = version + 1
		r.UpdatedAt = now
		doc, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO patients (trial_id, site_id, patient_id, status, doc, version, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8)
			ON CONFLICT (trial_id, site_id, patient_id) DO UPDATE
				SET status = excluded.status, doc = excluded.doc, version = excluded.version,
					updated_at = excluded.updated_at`,
			r.TrialID, r.SiteID, r.PatientID, r.Status, string(doc), r.Version, r.CreatedAt, now)
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return appendAudit(ctx, tx, store.AuditRecord{EntityType: store.EntityPatient, EntityID: id,
			Actor: c.Actor.Sub, ActorName: c.Actor.Name, ActorRole: c.Actor.Role,
			Action: auditAction(c, actionPatientPut), Reason: c.Reason, Meaning: c.Meaning,
			OldValue: old, NewValue: json.RawMessage(doc), At: now})
	})
	if err != nil {
		return trial.PatientRecord{}, fmt.Errorf("postgres: put patient of %s: %w", r.TrialID+"/"+r.SiteID, err)
	}
	return r, nil
}

// Patient returns one registry record, or store.ErrNotFound.
func (s *Store) Patient(ctx context.Context, trialID, siteID, patientID string) (trial.PatientRecord, error) {
	var (
		doc              []byte
		version          int
		created, updated time.Time
	)
	err := s.pool.QueryRow(ctx, `
		SELECT doc, version, created_at, updated_at FROM patients
		WHERE trial_id = $1 AND site_id = $2 AND patient_id = $3`, trialID, siteID, patientID).
		Scan(&doc, &version, &created, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return trial.PatientRecord{}, fmt.Errorf("postgres: patient of %s: %w", trialID+"/"+siteID, store.ErrNotFound)
	}
	if err != nil {
		return trial.PatientRecord{}, fmt.Errorf("postgres: patient of %s: %w", trialID+"/"+siteID, err)
	}
	var r trial.PatientRecord
	if err := json.Unmarshal(doc, &r); err != nil {
		return trial.PatientRecord{}, fmt.Errorf("postgres: patient of %s: decode: %w", trialID+"/"+siteID, err)
	}
	r.Version, r.CreatedAt, r.UpdatedAt = version, created.UTC(), updated.UTC()
	return r, nil
}

// SilentPatients returns the trial's patients who have not reported since
// cutoff, by site and patient id: patients with readings whose latest was
// measured before cutoff, and enrolled patients without readings registered
// before cutoff; a withdrawn record excludes its patient either way. A
// patient is identified by trial, site and patient id, as on a reading.
func (s *Store) SilentPatients(ctx context.Context, trialID string, cutoff time.Time) ([]store.SilentPatient, error) {
	cut, cutNs := splitTime(cutoff)
	rows, err := s.pool.Query(ctx, `
		WITH latest AS (
			SELECT DISTINCT ON (site_id, patient_id) site_id, patient_id, measured_at, measured_ns
			FROM readings WHERE trial_id = $1
			ORDER BY site_id, patient_id, measured_at DESC, measured_ns DESC
		)
		SELECT l.site_id, l.patient_id, l.measured_at, l.measured_ns, true AS reported
		FROM latest l
		LEFT JOIN patients p
			ON p.trial_id = $1 AND p.site_id = l.site_id AND p.patient_id = l.patient_id
		WHERE (l.measured_at, l.measured_ns) < ($2::timestamptz, $3::int2)
			AND (p.status IS NULL OR p.status = 'enrolled')
		UNION ALL
		SELECT p.site_id, p.patient_id, p.created_at, 0::int2, false
		FROM patients p
		WHERE p.trial_id = $1 AND p.status = 'enrolled' AND p.created_at < $4
			AND NOT EXISTS (SELECT 1 FROM readings r
				WHERE r.trial_id = p.trial_id AND r.site_id = p.site_id AND r.patient_id = p.patient_id)
		ORDER BY 1, 2`, trialID, cut, cutNs, ceilMicro(cutoff))
	if err != nil {
		return nil, fmt.Errorf("postgres: silent patients of %s: %w", trialID, err)
	}
	defer rows.Close()
	out := []store.SilentPatient{}
	for rows.Next() {
		var (
			site, patient string
			since         time.Time
			ns            int16
			reported      bool
		)
		if err := rows.Scan(&site, &patient, &since, &ns, &reported); err != nil {
			return nil, fmt.Errorf("postgres: silent patients of %s: %w", trialID, err)
		}
		sp := store.SilentPatient{TrialID: trialID, SiteID: site, PatientID: patient, Since: joinTime(since, ns)}
		if reported {
			sp.LastMeasuredAt = sp.Since
		}
		out = append(out, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: silent patients of %s: %w", trialID, err)
	}
	return out, nil
}
