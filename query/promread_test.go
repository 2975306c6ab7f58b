package query

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestHistogramQuantile: the estimate is Prometheus' histogram_quantile
// (linear inside the bucket), over the observations of the window only.
func TestHistogramQuantile(t *testing.T) {
	h := histogram{count: 10, bounds: []float64{1, 2, 4}, buckets: []uint64{2, 6, 9}} // one above 4
	for _, c := range []struct {
		q, want float64
	}{
		{0.1, 0.5},  // rank 1 of 2 in (0, 1]
		{0.5, 1.75}, // rank 5: 3 of 4 in (1, 2]
		{0.9, 4},    // rank 9: the top of (2, 4]
		{0.95, 4},   // in +Inf: the largest finite bound
	} {
		if got, ok := h.quantile(c.q); !ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%.2f = %v (%v), want %v", c.q, got, ok, c.want)
		}
	}
	if _, ok := (histogram{bounds: []float64{1}, buckets: []uint64{0}}).quantile(0.5); ok {
		t.Error("a quantile of no observations")
	}
	old := histogram{count: 6, bounds: h.bounds, buckets: []uint64{2, 6, 6}}
	recent := h.since(old) // 3 in (2, 4], 1 above
	if got, _ := recent.quantile(0.5); math.Abs(got-(2+2*2.0/3)) > 1e-9 {
		t.Errorf("recent p50 = %v, want %v", got, 2+2*2.0/3)
	}
}

// TestSamplerRates: a counter becomes a rate over the oldest sample kept;
// samples older than the window are dropped; absent metrics are null.
func TestSamplerRates(t *testing.T) {
	reg := prometheus.NewRegistry()
	consumed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricConsumed}, []string{"topic"})
	reg.MustRegister(consumed)
	sp := &sampler{g: reg}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	consumed.WithLabelValues("orders").Add(100)
	sp.record(sp.gather(t0))
	consumed.WithLabelValues("orders").Add(50)
	sp.record(sp.gather(t0.Add(30 * time.Second)))
	consumed.WithLabelValues("orders").Add(60)
	now := sp.gather(t0.Add(90 * time.Second)) // t0 is out of the window now
	sp.record(now)
	base := sp.base()
	if base == nil || !base.at.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("base sample %+v, want the one at +30s", base)
	}
	if r := rates(now, base, metricConsumed, "topic"); math.Abs(r["orders"]-1) > 1e-9 {
		t.Errorf("rate %v, want 1/s (60 records in 60 s)", r)
	}
	if r := rates(now, base, metricRowsCommit, "table"); r != nil {
		t.Errorf("rate of an absent metric: %v, want nil", r)
	}
	if _, ok := now.sumBy(metricDLQ, "reason"); ok {
		t.Error("an absent metric summed")
	}
}
