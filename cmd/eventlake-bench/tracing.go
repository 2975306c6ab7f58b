package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"

	"github.com/eventlake/eventlake/internal/tracing"
)

// benchTracing measures what tracing costs ingest: the backlog-drain
// benchmark run alternately with tracing off, on at the default sample
// rate, and on for every batch, rounds times each (medians), spans sent
// to a local OTLP receiver that discards them.
func benchTracing(bin, dir string, n, rounds int) ([]result, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var requests, sentBytes atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.Copy(io.Discard, r.Body)
		requests.Add(1)
		sentBytes.Add(b)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse
	})}
	go srv.Serve(ln)
	defer srv.Close()
	endpoint := "EVENTLAKE_TRACING_ENDPOINT=http://" + ln.Addr().String()

	modes := []struct {
		name string
		env  []string
	}{
		{"off", nil},
		{"default", []string{endpoint}},
		{"all", []string{endpoint, "EVENTLAKE_TRACING_SAMPLE_RATE=1"}},
	}
	rates, cpus := map[string][]float64{}, map[string][]float64{}
	sent := map[string]int64{}
	for i := range rounds {
		for _, m := range modes {
			before := requests.Load()
			r, brk, err := produceAndIngest(bin, filepath.Join(dir, fmt.Sprintf("%s-%d", m.name, i)), n, 0.2, "2026-11-26T00:00:00Z", "1ms", m.env...)
			if err != nil {
				return nil, fmt.Errorf("tracing %s: %w", m.name, err)
			}
			brk.stop()
			rate := float64(n) / r.consumed.Seconds()
			rates[m.name] = append(rates[m.name], rate)
			cpus[m.name] = append(cpus[m.name], r.cpu/float64(n)*1e6)
			sent[m.name] += requests.Load() - before
			fmt.Fprintf(os.Stderr, "tracing %s run %d: %.0f events/s, %.2f CPU-µs/event\n", m.name, i+1, rate, r.cpu/float64(n)*1e6)
		}
	}
	med := func(v []float64) float64 { sort.Float64s(v); return v[len(v)/2] }
	spread := func(v []float64) string { return fmt.Sprintf("%.0f-%.0f", v[0], v[len(v)-1]) } // after med sorted v
	off, def, all := med(rates["off"]), med(rates["default"]), med(rates["all"])
	cpuOff, cpuDef, cpuAll := med(cpus["off"]), med(cpus["default"]), med(cpus["all"])
	offer := bestNs(func(b *testing.B) {
		// A traced batch offers every accepted event's metadata ids to
		// the link sample: the whole per-event cost of tracing.
		ids := make([][2][]byte, 4096)
		for i := range ids {
			ids[i] = [2][]byte{fmt.Appendf(nil, "%016x%016x", 1, i+1), fmt.Appendf(nil, "%016x", uint64(i+1)*0x9e3779b97f4a7c15)}
		}
		var l tracing.Links
		for i := 0; b.Loop(); i++ {
			if i%2_000_000 == 0 {
				l.Reset() // a new batch
			}
			id := &ids[i%len(ids)]
			l.Offer(id[0], id[1])
		}
	})
	how := fmt.Sprintf("the backlog-drain benchmark (%d events, default settings) run %d times each, alternately, with tracing off and with tracing.endpoint set to a local OTLP/HTTP receiver that discards the spans; medians. Spans cost per batch and per table commit (plus up to %d links to the events' producer spans, read from their metadata only in a traced batch), not per event; the receiver got %d export requests (%.1f KiB) from the sampled runs",
		n, rounds, tracing.MaxLinks, sent["default"]+sent["all"], float64(sentBytes.Load())/1024)
	return []result{
		{fmt.Sprintf("ingest throughput, tracing on (default sample_rate %g) vs off", tracing.DefaultSampleRate),
			fmt.Sprintf("%.0f vs %.0f events/s (%.3fx; runs %s vs %s)", def, off, def/off, spread(rates["default"]), spread(rates["off"])),
			">= 0.97x", verdict(def >= 0.97*off), how},
		{"ingest throughput, every batch traced (sample_rate 1) vs off",
			fmt.Sprintf("%.0f vs %.0f events/s (%.3fx; runs %s)", all, off, all/off, spread(rates["all"])), "", "", "the same runs, with tracing.sample_rate 1"},
		{"ingest CPU per event, tracing on (default / every batch) vs off",
			fmt.Sprintf("%.2f / %.2f vs %.2f µs (%.3fx / %.3fx)", cpuDef, cpuAll, cpuOff, cpuDef/cpuOff, cpuAll/cpuOff), "", "",
			"the same runs: user+system time of the ingest process per event, less disturbed than throughput by other work on the machine"},
		{"tracing work per event of a traced batch", fmt.Sprintf("%.1f ns", offer), "", "",
			"offering an event's metadata trace_id/span_id to the batch's sample of links (a counter, and a hex decode when the sample keeps it), best of 5 runs of testing.Benchmark; an untraced batch costs one branch per event"},
	}, nil
}
