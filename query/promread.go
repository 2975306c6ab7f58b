package query

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics GET /v1/status reads from the process's own registry: ingest
// runs in the same process in `eventlake dev`, and its figures live only
// there. A metric that is absent (no ingest in this process, or a build
// without it) reads as null, shown as "n/a".
const (
	metricConsumed    = "eventlake_ingest_records_consumed_total"          // {topic}
	metricRowsCommit  = "eventlake_ingest_rows_committed_total"            // {table}
	metricLagRecords  = "eventlake_ingest_consumer_lag_records"            // {topic,partition}
	metricLagSeconds  = "eventlake_ingest_consumer_lag_seconds"            // {topic,partition}
	metricFreshness   = "eventlake_ingest_freshness_seconds"               // histogram {table}
	metricDLQ         = "eventlake_ingest_dlq_total"                       // {reason}
	metricModelCommit = "eventlake_streamer_last_commit_timestamp_seconds" // {model}
)

// statusMetrics are the families status reads.
var statusMetrics = []string{metricConsumed, metricRowsCommit, metricLagRecords, metricLagSeconds, metricFreshness, metricDLQ, metricModelCommit}

// rateWindow is how far back rates and freshness quantiles look; samples
// are taken every sampleEvery (the status handler compares the registry
// now with the oldest sample inside the window).
const (
	rateWindow  = time.Minute
	sampleEvery = 5 * time.Second
)

// metricSample is the families status reads, at one time.
type metricSample struct {
	at       time.Time
	families map[string]*dto.MetricFamily
}

// sampler keeps the samples of the last rateWindow, so that a counter
// becomes a rate and a histogram a recent quantile without Prometheus.
type sampler struct {
	g prometheus.Gatherer // nil: no metrics, every figure is null

	mu      sync.Mutex
	samples []metricSample // oldest first, within rateWindow
}

// gather reads the families status uses; an error of the registry (a
// collector that failed) leaves out what it could not read.
func (sp *sampler) gather(now time.Time) metricSample {
	out := metricSample{at: now, families: map[string]*dto.MetricFamily{}}
	if sp.g == nil {
		return out
	}
	mfs, _ := sp.g.Gather()
	for _, mf := range mfs {
		for _, name := range statusMetrics {
			if mf.GetName() == name {
				out.families[name] = mf
			}
		}
	}
	return out
}

// record keeps a sample and drops those older than the window.
func (sp *sampler) record(s metricSample) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.samples = append(sp.samples, s)
	cut := 0
	for cut < len(sp.samples)-1 && s.at.Sub(sp.samples[cut].at) > rateWindow {
		cut++
	}
	sp.samples = append(sp.samples[:0], sp.samples[cut:]...)
}

// base is the oldest sample kept (nil before the first one).
func (sp *sampler) base() *metricSample {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(sp.samples) == 0 {
		return nil
	}
	b := sp.samples[0]
	return &b
}

// label is the value of a metric's label.
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// value is a counter's or gauge's value.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return math.NaN()
}

// sumBy sums a family's values by one label; ok is false when the family
// is absent.
func (s metricSample) sumBy(name, by string) (map[string]float64, bool) {
	mf, ok := s.families[name]
	if !ok {
		return nil, false
	}
	out := map[string]float64{}
	for _, m := range mf.GetMetric() {
		out[label(m, by)] += value(m)
	}
	return out, true
}

// maxBy is sumBy with the largest value instead of the sum.
func (s metricSample) maxBy(name, by string) (map[string]float64, bool) {
	mf, ok := s.families[name]
	if !ok {
		return nil, false
	}
	out := map[string]float64{}
	for _, m := range mf.GetMetric() {
		k, v := label(m, by), value(m)
		if cur, seen := out[k]; !seen || v > cur {
			out[k] = v
		}
	}
	return out, true
}

// rates turns counters summed by a label into per-second rates since
// base; nil when the family is absent or there is no base yet.
func rates(now metricSample, base *metricSample, name, by string) map[string]float64 {
	cur, ok := now.sumBy(name, by)
	if !ok || base == nil {
		return nil
	}
	dt := now.at.Sub(base.at).Seconds()
	if dt <= 0 {
		return nil
	}
	old, _ := base.sumBy(name, by)
	out := make(map[string]float64, len(cur))
	for k, v := range cur {
		d := v - old[k]
		if d < 0 { // the counter restarted
			d = v
		}
		out[k] = d / dt
	}
	return out
}

// histogram is one histogram's cumulative buckets.
type histogram struct {
	count   uint64
	bounds  []float64 // upper bounds, ascending, +Inf excluded
	buckets []uint64  // cumulative counts per bound
}

func histogramsBy(s *metricSample, name, by string) map[string]histogram {
	if s == nil {
		return nil
	}
	mf, ok := s.families[name]
	if !ok {
		return nil
	}
	out := map[string]histogram{}
	for _, m := range mf.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		var hg histogram
		hg.count = h.GetSampleCount()
		for _, b := range h.GetBucket() {
			if math.IsInf(b.GetUpperBound(), 1) {
				continue
			}
			hg.bounds = append(hg.bounds, b.GetUpperBound())
			hg.buckets = append(hg.buckets, b.GetCumulativeCount())
		}
		out[label(m, by)] = hg
	}
	return out
}

// since is the histogram of the observations after old (same buckets).
func (h histogram) since(old histogram) histogram {
	if len(old.buckets) != len(h.buckets) || old.count > h.count {
		return h // restarted or re-bucketed: everything is new
	}
	d := histogram{count: h.count - old.count, bounds: h.bounds, buckets: make([]uint64, len(h.buckets))}
	for i := range h.buckets {
		d.buckets[i] = h.buckets[i] - old.buckets[i]
	}
	return d
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile
// does: linear inside the bucket that holds it; the largest finite bound
// when it falls in +Inf. ok is false without observations.
func (h histogram) quantile(q float64) (float64, bool) {
	if h.count == 0 {
		return 0, false
	}
	rank := q * float64(h.count)
	i := sort.Search(len(h.buckets), func(i int) bool { return float64(h.buckets[i]) >= rank })
	if i == len(h.buckets) {
		if len(h.bounds) == 0 {
			return 0, false
		}
		return h.bounds[len(h.bounds)-1], true
	}
	lo, below := 0.0, uint64(0)
	if i > 0 {
		lo, below = h.bounds[i-1], h.buckets[i-1]
	}
	in := h.buckets[i] - below
	if in == 0 {
		return h.bounds[i], true
	}
	return lo + (h.bounds[i]-lo)*(rank-float64(below))/float64(in), true
}
