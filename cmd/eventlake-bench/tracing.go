package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventlake/eventlake/internal/tracing"
)

// benchTracing measures what tracing costs ingest. Three ingest processes
// drain the same pre-produced topic at once, each in its own consumer
// group and lake: tracing off, on at the default sample rate, and on for
// every batch, spans sent to a local OTLP receiver that discards them.
// Running them side by side, and measuring each over the same window
// (from when all three have consumed 5% until the first has consumed 90%),
// puts the three under the same disturbance, which on a shared machine
// varies far more over time than the few percent looked for; rounds
// rotate the start order, and the figures are medians.
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

	brk, _, err := startAndProduce(bin, dir, n, 0.2, "2026-11-26T00:00:00Z", "1ms")
	if err != nil {
		return nil, err
	}
	defer brk.stop()
	modes := []struct {
		name string
		env  []string
	}{
		{"off", nil},
		{"default", []string{endpoint}},
		{"all", []string{endpoint, "EVENTLAKE_TRACING_SAMPLE_RATE=1"}},
	}
	rates, cpus := map[string][]float64{}, map[string][]float64{}
	for round := range rounds {
		type running struct {
			name    string
			p       *proc
			url     string
			c0, c1  int64
			cpu0    float64
			cpuUsed float64
		}
		var rs []*running
		stopAll := func() {
			for _, r := range rs {
				r.p.stop()
			}
		}
		for i := range modes {
			m := modes[(i+round)%len(modes)]
			p, err := start(bin, m.env, "ingest", "--brokers", brk.ready["kafka"], "--data-dir", filepath.Join(dir, fmt.Sprintf("%s-%d", m.name, round)),
				"--http", "127.0.0.1:0", "--group", fmt.Sprintf("bench-%s-%d", m.name, round))
			if err != nil {
				stopAll()
				return nil, fmt.Errorf("tracing %s: %w", m.name, err)
			}
			rs = append(rs, &running{name: m.name, p: p, url: "http://" + p.ready["http"] + "/metrics"})
		}
		// The window opens once every process consumes (a process is
		// ready before it has joined its group and fetched).
		began := time.Now()
		for consuming := false; !consuming; {
			if time.Since(began) > 5*time.Minute {
				stopAll()
				return nil, fmt.Errorf("tracing round %d: the ingest processes did not all start consuming in 5 minutes", round+1)
			}
			time.Sleep(50 * time.Millisecond)
			consuming = true
			for _, r := range rs {
				if _, c, err := progress(r.url); err != nil || c < int64(n)/20 {
					consuming = false
				}
			}
		}
		t0 := time.Now()
		for _, r := range rs {
			if _, r.c0, err = progress(r.url); err != nil {
				stopAll()
				return nil, err
			}
			r.cpu0 = cpuSeconds(r.p.cmd.Process.Pid)
		}
		var t1 time.Time
		for t1.IsZero() {
			if time.Since(t0) > 10*time.Minute {
				stopAll()
				return nil, fmt.Errorf("tracing round %d: no ingest consumed 90%% of %d events in 10 minutes", round+1, n)
			}
			time.Sleep(100 * time.Millisecond)
			for _, r := range rs {
				if _, c, err := progress(r.url); err == nil && c >= int64(n)*9/10 {
					t1 = time.Now()
				}
			}
		}
		for _, r := range rs {
			if _, r.c1, err = progress(r.url); err != nil {
				stopAll()
				return nil, err
			}
			r.cpuUsed = cpuSeconds(r.p.cmd.Process.Pid) - r.cpu0
		}
		stopAll()
		win := t1.Sub(t0).Seconds()
		// A round compares only when every process consumed a share of
		// the events within the window: with few events one process can
		// sit in a flush for the whole window, and its rate (0) says
		// nothing about tracing.
		short := false
		for _, r := range rs {
			short = short || r.c1-r.c0 < int64(n)/10
		}
		if short {
			fmt.Fprintf(os.Stderr, "tracing round %d: a process consumed under 10%% of the events in the %.1f s window; round left out (raise -tracing-events)\n", round+1, win)
			continue
		}
		for _, r := range rs {
			rate, cpu := float64(r.c1-r.c0)/win, r.cpuUsed/float64(r.c1-r.c0)*1e6
			rates[r.name] = append(rates[r.name], rate)
			cpus[r.name] = append(cpus[r.name], cpu)
			fmt.Fprintf(os.Stderr, "tracing round %d, %s: %.0f events/s, %.2f CPU-µs/event over %.1f s\n", round+1, r.name, rate, cpu, win)
		}
	}
	if len(rates["off"]) == 0 {
		return []result{{fmt.Sprintf("ingest throughput, tracing on (default sample_rate %g) vs off, side by side", tracing.DefaultSampleRate),
			fmt.Sprintf("not measured: %d events drained too fast for any round to compare (raise -tracing-events)", n), ">= 0.97x", "", ""}}, nil
	}
	med := func(v []float64) float64 { v = slices.Clone(v); sort.Float64s(v); return v[len(v)/2] }
	// The ratio to tracing off within each round, where the disturbance
	// falls on both alike.
	ratio := func(of map[string][]float64, name string) (float64, string) {
		var v []float64
		for i := range of[name] {
			v = append(v, of[name][i]/of["off"][i])
		}
		sort.Float64s(v)
		return v[len(v)/2], fmt.Sprintf("%.3f-%.3f", v[0], v[len(v)-1])
	}
	defRatio, defSpread := ratio(rates, "default")
	allRatio, allSpread := ratio(rates, "all")
	cpuDefRatio, cpuDefSpread := ratio(cpus, "default")
	cpuAllRatio, cpuAllSpread := ratio(cpus, "all")
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
	how := fmt.Sprintf("three `eventlake ingest` processes drain the same %d pre-produced events at once (own consumer group and lake each, default settings): tracing off, on at the default sample rate, on for every batch, spans sent to a local OTLP/HTTP receiver that discards them (it got %d export requests, %.1f KiB); each is measured over the same window, from when all three have consumed 5%% until the first has consumed 90%%, so that the machine's disturbance falls on all three alike; the ratio to tracing off within each round, median of %d of %d rounds (start order rotated; a round where a process consumed under 10%% of the events in the window is left out), with the rounds' range. Tracing costs per batch and per table commit (plus up to %d links to the events' producer spans, read from their metadata only in a traced batch), not per event",
		n, requests.Load(), float64(sentBytes.Load())/1024, len(rates["off"]), rounds, tracing.MaxLinks)
	return []result{
		{fmt.Sprintf("ingest throughput, tracing on (default sample_rate %g) vs off, side by side", tracing.DefaultSampleRate),
			fmt.Sprintf("%.3fx (rounds %s; medians %.0f vs %.0f events/s each, three processes sharing the cores)", defRatio, defSpread, def, off),
			">= 0.97x", verdict(defRatio >= 0.97), how},
		{"ingest throughput, every batch traced (sample_rate 1) vs off, side by side",
			fmt.Sprintf("%.3fx (rounds %s; median %.0f events/s)", allRatio, allSpread, all), "", "", "the same rounds"},
		{"ingest CPU per event, tracing on (default / every batch) vs off",
			fmt.Sprintf("%.3fx / %.3fx (rounds %s / %s; medians %.2f / %.2f vs %.2f µs)", cpuDefRatio, cpuAllRatio, cpuDefSpread, cpuAllSpread, cpuDef, cpuAll, cpuOff), "", "",
			"the same windows: user+system time of each ingest process per event consumed, the ratio to tracing off within each round, median of the rounds"},
		{"tracing work per event of a traced batch", fmt.Sprintf("%.1f ns", offer), "", "",
			"offering an event's metadata trace_id/span_id to the batch's sample of links (a counter, and a hex decode when the sample keeps it), best of 5 runs of testing.Benchmark; an untraced batch costs one branch per event"},
	}, nil
}
