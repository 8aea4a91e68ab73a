package sqlite

import (
	"context"
	"errors"
	"time"

	"vigil/store"
	"vigil/trial"
)

var errTrialsTODO = errors.New("sqlite: trial store not implemented yet")

// PutProtocol implements store.TrialStore.
func (s *Store) PutProtocol(ctx context.Context, p trial.Protocol, c store.Change) (trial.Protocol, error) {
	return trial.Protocol{}, errTrialsTODO
}

// Protocol implements store.TrialStore.
func (s *Store) Protocol(ctx context.Context, trialID string) (trial.Protocol, error) {
	return trial.Protocol{}, store.ErrNotFound
}

// Protocols implements store.TrialStore.
func (s *Store) Protocols(ctx context.Context) ([]trial.Protocol, error) { return nil, nil }

// PutPatient implements store.TrialStore.
func (s *Store) PutPatient(ctx context.Context, r trial.PatientRecord, c store.Change) (trial.PatientRecord, error) {
	return trial.PatientRecord{}, errTrialsTODO
}

// Patient implements store.TrialStore.
func (s *Store) Patient(ctx context.Context, trialID, siteID, patientID string) (trial.PatientRecord, error) {
	return trial.PatientRecord{}, store.ErrNotFound
}

// SilentPatients implements store.TrialStore.
func (s *Store) SilentPatients(ctx context.Context, trialID string, cutoff time.Time) ([]store.SilentPatient, error) {
	return nil, nil
}
