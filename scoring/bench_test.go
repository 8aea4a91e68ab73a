package scoring_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"vigil/bus"
	"vigil/reading"
	"vigil/scoring"
	"vigil/trial"
)

var errNoRecord = errors.New("no record")

// registry is an in-memory trial.Source: the benchmark measures scoring, with
// the cache in front of it as in the server, not a database.
type registry struct{}

func (registry) Protocol(context.Context, string) (trial.Protocol, error) {
	return trial.Protocol{}, errNoRecord
}

func (registry) Patient(context.Context, string, string, string) (trial.PatientRecord, error) {
	return trial.PatientRecord{}, errNoRecord
}

// BenchmarkProcess measures the scoring path of one ordinary reading, as a
// pool worker runs it: protocol and registry lookups (cache hits), NEWS2 and
// the rules, the open-alert check, saving the score (in memory here) and
// encoding and publishing the score event on the in-process bus. allocs/op is
// the scoring path's allocations per reading.
func BenchmarkProcess(b *testing.B) {
	cache, err := trial.NewCache(trial.CacheConfig{Source: registry{}, IsNotFound: func(err error) bool { return errors.Is(err, errNoRecord) }})
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	pub := bus.NewMemory(1000)
	p, err := scoring.NewPipeline(newMemStore(), pub, scoring.PipelineConfig{Workers: 4, Profiles: cache})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	now := time.Now()
	r := reading.Reading{PatientID: "P1001", TrialID: "T1", SiteID: "S1", MeasuredAt: now,
		Vitals: vitals(16, 97, 120, 72, 36.8, "alert")}
	ids := make([]string, 0, 1<<16)
	for i := range cap(ids) {
		ids = append(ids, fmt.Sprintf("r-%d", i))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.ReadingID = ids[i%len(ids)] + fmt.Sprint(i/len(ids))
		if i < len(ids) {
			r.ReadingID = ids[i]
		}
		if err := p.Process(ctx, scoring.Input{Reading: r, ReceivedAt: now}); err != nil {
			b.Fatal(err)
		}
	}
}
