package server

import (
	"context"
	"fmt"
	"time"

	"vigil/predictor"
	"vigil/store"
)

// storeHistory gives the scoring pipeline a patient's recent readings from
// the store, for the model's features.
type storeHistory struct{ st store.Store }

func (h storeHistory) Recent(ctx context.Context, trialID, siteID, patientID string, from, to time.Time) ([]predictor.Observation, []string, error) {
	recs, err := h.st.PatientReadings(ctx, store.ReadingQuery{TrialID: trialID, SiteID: siteID, PatientID: patientID,
		Since: from, Until: to, Limit: predictor.MaxWindowReadings, Last: true})
	if err != nil {
		return nil, nil, fmt.Errorf("patient readings: %w", err)
	}
	obs := make([]predictor.Observation, 0, len(recs))
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		obs = append(obs, predictor.Observation{MeasuredAt: r.Reading.MeasuredAt, Vitals: r.Reading.Vitals})
		ids = append(ids, r.Reading.ReadingID)
	}
	return obs, ids, nil
}
