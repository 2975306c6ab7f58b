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
	rates := map[string][]float64{}
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
			sent[m.name] += requests.Load() - before
			fmt.Fprintf(os.Stderr, "tracing %s run %d: %.0f events/s\n", m.name, i+1, rate)
		}
	}
	med := func(v []float64) float64 { sort.Float64s(v); return v[len(v)/2] }
	off, def, all := med(rates["off"]), med(rates["default"]), med(rates["all"])
	how := fmt.Sprintf("the backlog-drain benchmark (%d events, default settings) run %d times each, alternately, with tracing off and with tracing.endpoint set to a local OTLP/HTTP receiver that discards the spans; medians. Spans cost per batch and per table commit (plus up to %d links to the events' producer spans, read from their metadata only in a traced batch), not per event; the receiver got %d export requests (%.1f KiB) from the sampled runs",
		n, rounds, tracing.MaxLinks, sent["default"]+sent["all"], float64(sentBytes.Load())/1024)
	return []result{
		{fmt.Sprintf("ingest throughput, tracing on (default sample_rate %g) vs off", tracing.DefaultSampleRate),
			fmt.Sprintf("%.0f vs %.0f events/s (%.3fx)", def, off, def/off), ">= 0.97x", verdict(def >= 0.97*off), how},
		{"ingest throughput, every batch traced (sample_rate 1) vs off",
			fmt.Sprintf("%.0f vs %.0f events/s (%.3fx)", all, off, all/off), "", "", "the same runs, with tracing.sample_rate 1"},
	}, nil
}
