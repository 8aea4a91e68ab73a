package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
// else the store's clock. Always UTC.
func (s *Store) changeTime(c store.Change) time.Time {
	if !c.At.IsZero() {
		return c.At.UTC()
	}
	return s.cfg.clock().UTC()
}

func auditAction(c store.Change, def string) string {
	if c.Action != "" {
		return c.Action
	}
	return def
}

// PutProtocol stores the trial's protocol as its next version, with an audit
// record holding the previous and the new document, in one IMMEDIATE
// transaction. An invalid protocol is refused with a *trial.ValidationError
// (wrapped), so that whatever the caller, the scorer never reads a protocol
// that breaks the rules.
func (s *Store) PutProtocol(ctx context.Context, p trial.Protocol, c store.Change) (trial.Protocol, error) {
	if err := p.Validate(); err != nil {
		return trial.Protocol{}, fmt.Errorf("sqlite: put protocol %s: %w", p.TrialID, err)
	}
	if c.Actor.Sub == "" {
		return trial.Protocol{}, fmt.Errorf("sqlite: put protocol %s: %w", p.TrialID, errNoActor)
	}
	// Held shared for the whole call so that Close waits for it.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return trial.Protocol{}, ErrClosed
	}
	now := s.changeTime(c)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var (
			oldDoc  sql.NullString
			version int
		)
		err := tx.QueryRowContext(ctx, `SELECT doc, version FROM protocols WHERE trial_id = ?`, p.TrialID).
			Scan(&oldDoc, &version)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read current: %w", err)
		}
		p.Version = version + 1
		p.UpdatedAt = now
		doc, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO protocols (trial_id, doc, version, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (trial_id) DO UPDATE
				SET doc = excluded.doc, version = excluded.version, updated_at = excluded.updated_at`,
			p.TrialID, string(doc), p.Version, formatTime(now))
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		rec := store.AuditRecord{EntityType: store.EntityProtocol, EntityID: p.TrialID,
			Actor: c.Actor.Sub, ActorName: c.Actor.Name, ActorRole: c.Actor.Role,
			Action: auditAction(c, actionProtocolPut), Reason: c.Reason, Meaning: c.Meaning,
			NewValue: json.RawMessage(doc), At: now}
		if oldDoc.Valid {
			rec.OldValue = json.RawMessage(oldDoc.String)
		}
		return s.appendAudit(ctx, tx, rec)
	})
	if err != nil {
		return trial.Protocol{}, fmt.Errorf("sqlite: put protocol %s: %w", p.TrialID, err)
	}
	return p, nil
}

// Protocol returns the trial's protocol, or store.ErrNotFound.
func (s *Store) Protocol(ctx context.Context, trialID string) (trial.Protocol, error) {
	var (
		doc, updated string
		version      int
	)
	err := s.rdb.QueryRowContext(ctx, `SELECT doc, version, updated_at FROM protocols WHERE trial_id = ?`, trialID).
		Scan(&doc, &version, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return trial.Protocol{}, fmt.Errorf("sqlite: protocol %s: %w", trialID, store.ErrNotFound)
	}
	if err != nil {
		return trial.Protocol{}, fmt.Errorf("sqlite: protocol %s: %w", trialID, err)
	}
	p, err := decodeProtocol(doc, version, updated)
	if err != nil {
		return trial.Protocol{}, fmt.Errorf("sqlite: protocol %s: %w", trialID, err)
	}
	return p, nil
}

func decodeProtocol(doc string, version int, updated string) (trial.Protocol, error) {
	var p trial.Protocol
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return trial.Protocol{}, fmt.Errorf("decode: %w", err)
	}
	t, err := parseTime(updated)
	if err != nil {
		return trial.Protocol{}, err
	}
	p.Version, p.UpdatedAt = version, t
	return p, nil
}

// Protocols returns every protocol, by trial id.
func (s *Store) Protocols(ctx context.Context) ([]trial.Protocol, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT doc, version, updated_at FROM protocols ORDER BY trial_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: protocols: %w", err)
	}
	defer rows.Close()
	out := []trial.Protocol{}
	for rows.Next() {
		var (
			doc, updated string
			version      int
		)
		if err := rows.Scan(&doc, &version, &updated); err != nil {
			return nil, fmt.Errorf("sqlite: protocols: %w", err)
		}
		p, err := decodeProtocol(doc, version, updated)
		if err != nil {
			return nil, fmt.Errorf("sqlite: protocols: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: protocols: %w", err)
	}
	return out, nil
}

func patientEntityID(trialID, siteID, patientID string) string {
	return trialID + "/" + siteID + "/" + patientID
}

// PutPatient stores a registry record as its next version, with an audit
// record, in one IMMEDIATE transaction. An invalid record is refused with a
// *trial.ValidationError (wrapped); when the trial has a protocol the record
// is checked against it in the same transaction, so its site is one of the
// protocol's sites as committed, not as it was when the caller looked.
func (s *Store) PutPatient(ctx context.Context, r trial.PatientRecord, c store.Change) (trial.PatientRecord, error) {
	id := patientEntityID(r.TrialID, r.SiteID, r.PatientID)
	if err := r.Validate(); err != nil {
		return trial.PatientRecord{}, fmt.Errorf("sqlite: put patient of %s: %w", r.TrialID+"/"+r.SiteID, err)
	}
	if c.Actor.Sub == "" {
		return trial.PatientRecord{}, fmt.Errorf("sqlite: put patient of %s: %w", r.TrialID+"/"+r.SiteID, errNoActor)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return trial.PatientRecord{}, ErrClosed
	}
	now := s.changeTime(c)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var protoDoc string
		err := tx.QueryRowContext(ctx, `SELECT doc FROM protocols WHERE trial_id = ?`, r.TrialID).Scan(&protoDoc)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read protocol: %w", err)
		default:
			var p trial.Protocol
			if err := json.Unmarshal([]byte(protoDoc), &p); err != nil {
				return fmt.Errorf("decode protocol: %w", err)
			}
			if err := r.ValidateFor(p); err != nil {
				return err
			}
		}

		var (
			oldDoc  sql.NullString
			version int
			created string
		)
		err = tx.QueryRowContext(ctx, `
			SELECT doc, version, created_at FROM patients
			WHERE trial_id = ? AND site_id = ? AND patient_id = ?`, r.TrialID, r.SiteID, r.PatientID).
			Scan(&oldDoc, &version, &created)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			r.CreatedAt = now
		case err != nil:
			return fmt.Errorf("read current: %w", err)
		default:
			if r.CreatedAt, err = parseTime(created); err != nil {
				return err
			}
		}
		r.Version = version + 1
		r.UpdatedAt = now
		doc, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO patients (trial_id, site_id, patient_id, status, doc, version, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (trial_id, site_id, patient_id) DO UPDATE
				SET status = excluded.status, doc = excluded.doc, version = excluded.version,
					updated_at = excluded.updated_at`,
			r.TrialID, r.SiteID, r.PatientID, r.Status, string(doc), r.Version,
			formatTime(r.CreatedAt), formatTime(now))
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		rec := store.AuditRecord{EntityType: store.EntityPatient, EntityID: id,
			Actor: c.Actor.Sub, ActorName: c.Actor.Name, ActorRole: c.Actor.Role,
			Action: auditAction(c, actionPatientPut), Reason: c.Reason, Meaning: c.Meaning,
			NewValue: json.RawMessage(doc), At: now}
		if oldDoc.Valid {
			rec.OldValue = json.RawMessage(oldDoc.String)
		}
		return s.appendAudit(ctx, tx, rec)
	})
	if err != nil {
		return trial.PatientRecord{}, fmt.Errorf("sqlite: put patient of %s: %w", r.TrialID+"/"+r.SiteID, err)
	}
	return r, nil
}

const patientSQL = `
	SELECT doc, version, created_at, updated_at FROM patients
	WHERE trial_id = ? AND site_id = ? AND patient_id = ?`

// Patient returns one registry record, or store.ErrNotFound.
func (s *Store) Patient(ctx context.Context, trialID, siteID, patientID string) (trial.PatientRecord, error) {
	var (
		doc, created, updated string
		version               int
	)
	err := s.patient.QueryRowContext(ctx, trialID, siteID, patientID).Scan(&doc, &version, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return trial.PatientRecord{}, fmt.Errorf("sqlite: patient of %s: %w", trialID+"/"+siteID, store.ErrNotFound)
	}
	if err != nil {
		return trial.PatientRecord{}, fmt.Errorf("sqlite: patient of %s: %w", trialID+"/"+siteID, err)
	}
	var r trial.PatientRecord
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		return trial.PatientRecord{}, fmt.Errorf("sqlite: patient of %s: decode: %w", trialID+"/"+siteID, err)
	}
	r.Version = version
	if r.CreatedAt, err = parseTime(created); err != nil {
		return trial.PatientRecord{}, fmt.Errorf("sqlite: patient of %s: %w", trialID+"/"+siteID, err)
	}
	if r.UpdatedAt, err = parseTime(updated); err != nil {
		return trial.PatientRecord{}, fmt.Errorf("sqlite: patient of %s: %w", trialID+"/"+siteID, err)
	}
	return r, nil
}

// SilentPatients returns the trial's patients who have not reported since
// cutoff, by site and patient id: patients with readings whose latest was
// measured before cutoff, and enrolled patients without readings registered
// before cutoff; a withdrawn record excludes its patient either way. A
// patient is identified by trial, site and patient id, as on a reading.
//
// The latest reading of each patient comes from the readings index
// (trial_id, site_id, patient_id, measured_at), one index range per trial;
// cutoff and the stored times share one fixed-width layout, so text order is
// time order.
func (s *Store) SilentPatients(ctx context.Context, trialID string, cutoff time.Time) ([]store.SilentPatient, error) {
	cut := formatTime(cutoff)
	rows, err := s.rdb.QueryContext(ctx, `
		WITH latest AS (
			SELECT site_id, patient_id, MAX(measured_at) AS last
			FROM readings WHERE trial_id = ?1
			GROUP BY site_id, patient_id
		)
		SELECT l.site_id, l.patient_id, l.last, 1 AS reported
		FROM latest l
		LEFT JOIN patients p
			ON p.trial_id = ?1 AND p.site_id = l.site_id AND p.patient_id = l.patient_id
		WHERE l.last < ?2 AND (p.status IS NULL OR p.status = 'enrolled')
		UNION ALL
		SELECT p.site_id, p.patient_id, p.created_at, 0
		FROM patients p
		WHERE p.trial_id = ?1 AND p.status = 'enrolled' AND p.created_at < ?2
			AND NOT EXISTS (SELECT 1 FROM readings r
				WHERE r.trial_id = p.trial_id AND r.site_id = p.site_id AND r.patient_id = p.patient_id)
		ORDER BY 1, 2`, trialID, cut)
	if err != nil {
		return nil, fmt.Errorf("sqlite: silent patients of %s: %w", trialID, err)
	}
	defer rows.Close()
	out := []store.SilentPatient{}
	for rows.Next() {
		var (
			site, patient, since string
			reported             bool
		)
		if err := rows.Scan(&site, &patient, &since, &reported); err != nil {
			return nil, fmt.Errorf("sqlite: silent patients of %s: %w", trialID, err)
		}
		t, err := parseTime(since)
		if err != nil {
			return nil, fmt.Errorf("sqlite: silent patients of %s: %w", trialID, err)
		}
		sp := store.SilentPatient{TrialID: trialID, SiteID: site, PatientID: patient, Since: t}
		if reported {
			sp.LastMeasuredAt = t
		}
		out = append(out, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: silent patients of %s: %w", trialID, err)
	}
	return out, nil
}
