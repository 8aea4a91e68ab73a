package predictor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"vigil/predictor"
	"vigil/predictor/predictortest"
)

// BenchmarkPredictions measures predictions/s against the real predictor-py
// from concurrent scorings (RunParallel with 16 or 64 goroutines per core;
// the scoring pool runs up to 1,024 at once), with micro-batching
// (PredictBatch, up to 64 per call) and without it (one Predict call each).
// The features are a realistic full set.
func BenchmarkPredictions(b *testing.B) {
	srv := predictortest.Start(b, "")
	features := map[string]float32{
		"respiratory_rate": 22, "respiratory_rate_delta_24h": 6, "respiratory_rate_slope_24h": 0.4,
		"spo2": 93, "spo2_delta_24h": -4, "spo2_slope_24h": -0.3,
		"systolic_bp": 104, "systolic_bp_delta_24h": -14, "systolic_bp_slope_24h": -1.1,
		"heart_rate": 108, "heart_rate_delta_24h": 22, "heart_rate_slope_24h": 1.6,
		"temperature": 38.4, "temperature_delta_24h": 1.2, "temperature_slope_24h": 0.08,
		"not_alert": 0, "on_oxygen": 0, "news2_total": 6, "age_band": 2,
	}
	for _, mode := range []struct {
		name  string
		batch int
	}{{"batched", 64}, {"unbatched", 1}} {
		for _, perCore := range []int{16, 64} {
			b.Run(fmt.Sprintf("%s/callers=%dxGOMAXPROCS", mode.name, perCore), func(b *testing.B) {
				c, err := predictor.New(predictor.Config{Addr: srv.Addr, Timeout: 5 * time.Second, BatchSize: mode.batch,
					BreakerFailures: 1 << 30})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				// Connect and warm up outside the timing.
				if _, err := c.Predict(context.Background(), predictor.Request{PatientID: "P0", Features: features}); err != nil {
					b.Fatal(err)
				}
				b.SetParallelism(perCore)
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						i++
						if _, err := c.Predict(context.Background(), predictor.Request{PatientID: fmt.Sprint("P", i), Features: features}); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "predictions/s")
			})
		}
	}
}
