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
	rs, err := h.st.RecentReadings(ctx, trialID, siteID, patientID, from, to, predictor.MaxWindowReadings)
	if err != nil {
		return nil, nil, fmt.Errorf("recent readings: %w", err)
	}
	obs := make([]predictor.Observation, len(rs))
	ids := make([]string, len(rs))
	for i, r := range rs {
		obs[i] = predictor.Observation{MeasuredAt: r.MeasuredAt, Vitals: r.Vitals}
		ids[i] = r.ReadingID
	}
	return obs, ids, nil
}
