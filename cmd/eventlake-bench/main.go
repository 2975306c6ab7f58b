// Command eventlake-bench measures eventlake end to end with the real
// binary and real servers, prints a table and writes docs/BENCHMARKS.md.
// `make bench` runs it. Numbers live here, never in tests.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "eventlake-bench:", err)
		os.Exit(1)
	}
}

type result struct {
	name, value, target, verdict, how string
}

// section is a part of the report of its own, after the method bullets.
type section struct{ title, text string }

func run() error {
	bin := flag.String("bin", "bin/eventlake", "eventlake binary")
	out := flag.String("out", "docs/BENCHMARKS.md", "markdown report to write")
	events := flag.Int("events", 2_000_000, "events for the ingest benchmark")
	historyEvents := flag.Int("history-events", 1_000_000, "order events spread over 30 days for the replay-of-history ingest benchmark (0 skips it)")
	accessEvents := flag.Int("access-events", 1_000_000, "order events of the day the token + audit cost and Postgres-vs-HTTP rows are measured on (0 skips them)")
	dayEvents := flag.Int("day-events", 10_000_000, "order events in the 24 h query dataset (0 skips the query benchmark)")
	runs := flag.Int("runs", 30, "timed query runs")
	freshness := flag.Int("freshness-samples", 200, "events timed for produce-to-visible latencies (0 skips)")
	scale := flag.Bool("scale", false, "also run the scale-out benchmarks (scale.go: 1 vs 3 ingest processes, local vs S3, queries over S3); needs versitygw and PostgreSQL")
	scaleEvents := flag.Int("scale-events", 1_000_000, "events for the scale-out ingest benchmark")
	scaleDay := flag.Int("scale-day-events", 2_000_000, "order events in the S3 query dataset (0 skips it)")
	compaction := flag.Bool("compaction", false, "also measure compaction and query latency before/after it on a day of 1-second and 10-second commits (compact.go), and SQL over the open hour with and without tiered merging (openhour.go)")
	compactionEvents := flag.Int("compaction-events", 10_000_000, "order events in the day of 1-second commits the compaction benchmark compacts")
	baseBin := flag.String("baseline-bin", "", "also run the ingest benchmark alternately with this eventlake binary (another build) and compare")
	baseLabel := flag.String("baseline-label", "the baseline", "what -baseline-bin is, for the report")
	baseRounds := flag.Int("baseline-rounds", 5, "runs of each binary for -baseline-bin")
	tracingEvents := flag.Int("tracing-events", 1_000_000, "events of the tracing-cost benchmark (ingest with tracing off vs on; 0 skips it)")
	tracingRounds := flag.Int("tracing-rounds", 6, "rounds of the tracing-cost benchmark; the start order rotates, so a multiple of 3 starts each setting last equally often (the last started runs a little slower)")
	replayEvents := flag.Int("replay-events", 1_000_000, "dead letters the DLQ replay benchmark replays (replay.go; 0 skips it)")
	lookupEvents := flag.Int("lookup-events", 2_000_000, "order events a day in the month the lookups are timed on (lookups.go; 0 skips them)")
	lookupDays := flag.Int("lookup-days", 30, "days of the lookups' month")
	lookupUsers := flag.Int("lookup-users", 0, "users of the lookups' month (0: the demo generator's default)")
	lookupLayouts := flag.String("lookup-layouts", "ts@262144", "layouts of the rows inside the lookups' hourly files, each timed: SORT@ROWS (SORT: ts or user_id+ts; ROWS per row group), comma separated")
	keep := flag.String("keep", "", "use this directory for the benchmark's data and keep it (default: a temporary directory, removed)")

	var (
		sections   []section
		invocation string // the command line, set after flag.Parse
	)
	// The benchmarks in report order. def says whether a run without
	// -only runs it (after flag.Parse); needs says what it lacks to run.
	positive := func(name string, v *int) func() string {
		return func() string {
			if *v > 0 {
				return ""
			}
			return name + " > 0"
		}
	}
	always := func() string { return "" }
	benches := []struct {
		name  string
		def   func() bool
		needs func() string
		run   func(work string) ([]result, error)
	}{
		{"decode", func() bool { return *events > 0 }, always, func(work string) ([]result, error) { return benchDecode(work) }},
		{"ingest", nil, positive("-events", events), func(work string) ([]result, error) {
			return benchIngest(*bin, filepath.Join(work, "ingest"), *events, 0.2, "2026-11-26T00:00:00Z", "1ms")
		}},
		{"history", nil, positive("-history-events", historyEvents), func(work string) ([]result, error) {
			return benchHistory(*bin, filepath.Join(work, "history"), *historyEvents)
		}},
		{"baseline", nil, func() string {
			if *baseBin == "" || *events <= 0 {
				return "-baseline-bin and -events > 0"
			}
			return ""
		}, func(work string) ([]result, error) {
			return benchBaseline(*bin, *baseBin, *baseLabel, filepath.Join(work, "baseline"), *events, *baseRounds)
		}},
		{"tracing", nil, positive("-tracing-events", tracingEvents), func(work string) ([]result, error) {
			return benchTracing(*bin, filepath.Join(work, "tracing"), *tracingEvents, *tracingRounds)
		}},
		{"freshness", nil, positive("-freshness-samples", freshness), func(work string) ([]result, error) {
			return benchFreshness(*bin, filepath.Join(work, "fresh"), *freshness)
		}},
		{"query", nil, positive("-day-events", dayEvents), func(work string) ([]result, error) {
			return benchQuery(*bin, filepath.Join(work, "day"), *dayEvents, *runs)
		}},
		{"access", nil, positive("-access-events", accessEvents), func(work string) ([]result, error) {
			return benchAccess(*bin, *baseBin, *baseLabel, filepath.Join(work, "access"), *accessEvents, 3)
		}},
		{"scale", func() bool { return *scale }, always, func(work string) ([]result, error) {
			return benchScale(*bin, filepath.Join(work, "scale"), *scaleEvents, *scaleDay, *runs)
		}},
		{"compaction", func() bool { return *compaction }, always, func(work string) ([]result, error) {
			return benchCompaction(*bin, filepath.Join(work, "compaction"), *compactionEvents, *runs)
		}},
		{"openhour", func() bool { return *compaction }, always, func(work string) ([]result, error) {
			return benchOpenHour(*bin, filepath.Join(work, "openhour"), *compactionEvents/24, *runs)
		}},
		{"lookups", nil, positive("-lookup-events", lookupEvents), func(work string) ([]result, error) {
			layouts, err := parseLayouts(*lookupLayouts)
			if err != nil {
				return nil, err
			}
			return benchLookups(*bin, filepath.Join(work, "lookups"), *lookupEvents, *lookupDays, *lookupUsers, *runs, layouts)
		}},
		{"replay", nil, positive("-replay-events", replayEvents), func(work string) ([]result, error) {
			rs, sec, err := benchReplay(*bin, filepath.Join(work, "replay"), *replayEvents, invocation)
			if sec != nil {
				sections = append(sections, *sec)
			}
			return rs, err
		}},
	}
	var names []string
	for _, b := range benches {
		names = append(names, b.name)
	}
	only := flag.String("only", "", "run only these benchmarks, comma separated ("+strings.Join(names, ", ")+
		"); naming scale or compaction runs it without its flag. The report file keeps the rows and sections of the others")
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	*bin = abs
	if *baseBin != "" {
		if *baseBin, err = filepath.Abs(*baseBin); err != nil {
			return err
		}
	}
	// The command line, for the report: `make bench` runs the program with
	// go run from the repository's root.
	invocation = strings.Join(append([]string{"go run ./cmd/eventlake-bench"}, os.Args[1:]...), " ")

	selected := map[string]bool{}
	for _, name := range strings.Split(*only, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if !slices.Contains(names, name) {
			return fmt.Errorf("-only %s: no such benchmark (%s)", name, strings.Join(names, ", "))
		}
		selected[name] = true
	}
	for _, b := range benches {
		if need := b.needs(); selected[b.name] && need != "" {
			return fmt.Errorf("-only %s: the %s benchmark needs %s", b.name, b.name, need)
		}
	}

	work := *keep
	if work == "" {
		if work, err = os.MkdirTemp("", "eventlake-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	var results []result
	for _, b := range benches {
		on := selected[b.name]
		if len(selected) == 0 {
			on = b.needs() == "" && (b.def == nil || b.def())
		}
		if !on {
			continue
		}
		r, err := b.run(work)
		if err != nil {
			return fmt.Errorf("%s benchmark: %w", b.name, err)
		}
		results = append(results, r...)
	}
	report := render(results, sections)
	fmt.Print(report)
	if *out == "" {
		return nil
	}
	if len(selected) > 0 {
		// A partial run updates its own rows and sections of the report
		// and keeps the others'.
		old, err := os.ReadFile(*out)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if len(old) > 0 {
			report = merge(string(old), results, sections, fmt.Sprintf("measured alone on %s (`-only %s`)", today(), *only))
		}
	}
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote", *out)
	return nil
}

// proc is a started eventlake process.
type proc struct {
	// tokenName names the token the bench calls it with.
	tokenName string
	cmd       *exec.Cmd
	ready     map[string]string
	log       *bytes.Buffer
	done      chan error
	// built are the log lines of read models built from the lake.
	mu    sync.Mutex
	built []string
}

func start(bin string, env []string, args ...string) (*proc, error) {
	// A query service takes tokens: the bench reads as admin, with a
	// token created in the same catalog (dev makes its own).
	withToken := len(args) > 0 && args[0] == "query" && !slices.Contains(env, "EVENTLAKE_AUTH_DISABLED=true")
	if withToken && !slices.Contains(env, noLimits) {
		env = append(slices.Clone(env), noLimits)
	}
	return startAs(bin, env, withToken, args...)
}

// noLimits lifts the per-token limits of a query service: the bench
// times requests sent back to back.
const noLimits = "EVENTLAKE_AUTH_LIMITS_DISABLED=true"

// startAs is start, creating a token first when withToken is set (a
// build before tokens has no `token` command).
func startAs(bin string, env []string, withToken bool, args ...string) (*proc, error) {
	var token, tokenName string
	if withToken {
		tokenName = fmt.Sprintf("bench-%d", time.Now().UnixNano())
		targs := []string{"token", "create", "--name", tokenName, "--role", "admin"}
		for i := 1; i+1 < len(args); i++ {
			if args[i] == "--data-dir" || args[i] == "--config" {
				targs = append(targs, args[i], args[i+1])
			}
		}
		tc := exec.Command(bin, targs...)
		tc.Env = append(os.Environ(), env...)
		out, err := tc.Output()
		if err != nil {
			return nil, fmt.Errorf("create a token: %w", err)
		}
		token = strings.TrimSpace(string(out))
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	var logBuf bytes.Buffer
	cmd.Stderr = pw
	cmd.Stdout = &logBuf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, log: &logBuf, done: make(chan error, 1), tokenName: tokenName}
	readyc := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent && strings.Contains(line, "msg=ready") {
				kv := map[string]string{}
				for _, f := range strings.Fields(line) {
					if k, v, ok := strings.Cut(f, "="); ok {
						kv[k] = strings.Trim(v, `"`)
					}
				}
				readyc <- kv
				sent = true
			}
			if strings.Contains(line, `msg="read model built from the lake"`) || strings.Contains(line, `msg="sessions built from the lake"`) {
				p.mu.Lock()
				p.built = append(p.built, line)
				p.mu.Unlock()
			}
			// Errors, and the reason a process exits (not a requested stop).
			if strings.Contains(line, "level=ERROR") || strings.HasPrefix(line, "eventlake: ") && !strings.Contains(line, "shutting down") {
				fmt.Fprintln(os.Stderr, "  ", args[0]+":", line)
			}
		}
	}()
	go func() { err := cmd.Wait(); pw.Close(); p.done <- err }()
	select {
	case p.ready = <-readyc:
		if f := p.ready["admin_token_file"]; f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			token, p.tokenName = strings.TrimSpace(string(b)), "dev-admin"
		}
		if token != "" {
			tokens.Store(p.ready["http"], token)
		}
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("%s exited before ready: %v", args[0], err)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s not ready", args[0])
	}
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// cpuSeconds and peakRSS read /proc for a live process.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// runPeak runs cmd and returns its peak RSS: VmHWM, sampled every 100 ms
// while it runs. Not getrusage's ru_maxrss of the child: that can report
// this process's own RSS (measured: 6.9 GiB for a compaction that peaked
// at 1.8 GiB, while the bench held a day's rows in DuckDB).
func runPeak(cmd *exec.Cmd) (int64, error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	var peak int64
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if v := peakRSS(cmd.Process.Pid); v > peak {
			peak = v
		}
		select {
		case err := <-done:
			return peak, err
		case <-tick.C:
		}
	}
}

// committed sums eventlake_ingest_committed_offset (next offsets stored in
// the lake) from /metrics.
func committed(metricsURL string) (int64, error) {
	c, _, err := progress(metricsURL)
	return c, err
}

// progress reads ingest's committed offsets and consumed records from its
// metrics.
func progress(metricsURL string) (committed, consumed int64, err error) {
	var sum, cons float64
	err = eachSample(metricsURL, func(line string, v float64) {
		switch {
		case strings.HasPrefix(line, "eventlake_ingest_committed_offset{"):
			sum += v
		case strings.HasPrefix(line, "eventlake_ingest_records_consumed_total{"):
			cons += v
		}
	})
	return int64(sum), int64(cons), err
}

// registryReads reads eventlake_schema_registry_reads_total from a
// process's metrics.
func registryReads(metricsURL string) (polls, misses int64, err error) {
	found := 0
	err = eachSample(metricsURL, func(line string, v float64) {
		switch {
		case strings.HasPrefix(line, `eventlake_schema_registry_reads_total{cause="poll"}`):
			polls, found = int64(v), found+1
		case strings.HasPrefix(line, `eventlake_schema_registry_reads_total{cause="miss"}`):
			misses, found = int64(v), found+1
		}
	})
	if err == nil && found != 2 {
		err = fmt.Errorf("%s has no eventlake_schema_registry_reads_total", metricsURL)
	}
	return polls, misses, err
}

// eachSample calls fn with each line of a Prometheus text exposition and
// the value at its end.
func eachSample(metricsURL string, fn func(line string, v float64)) error {
	resp, err := client.Get(metricsURL)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", metricsURL, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		fn(line, v)
	}
	return sc.Err()
}

// startAndProduce starts a broker (an `eventlake broker` process) and
// fills it with n generated events; it returns the broker and the produce
// rate.
func startAndProduce(bin, dir string, n int, invFrac float64, startTs, step string) (*proc, float64, error) {
	brk, err := start(bin, nil, "broker", "--data-dir", filepath.Join(dir, "broker"), "--listen", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	fmt.Fprintf(os.Stderr, "producing %d events...\n", n)
	t0 := time.Now()
	pc := exec.Command(bin, "produce", "--brokers", brk.ready["kafka"], "--rate", "0", "--count", strconv.Itoa(n),
		"--seed", "1", "--start", startTs, "--step", step, "--inventory-fraction", strconv.FormatFloat(invFrac, 'f', -1, 64))
	if out, err := pc.CombinedOutput(); err != nil {
		brk.stop()
		return nil, 0, fmt.Errorf("produce: %v: %s", err, out)
	}
	return brk, float64(n) / time.Since(t0).Seconds(), nil
}

// produceAndIngest fills a broker with n generated events and ingests
// them; it returns the ingest measurements.
type ingestRun struct {
	elapsed, consumed time.Duration
	cpu               float64
	rss               int64
	produceRate       float64
	// Requests ingest made to the schema registry: periodic polls, and
	// lookups for a type, version or schema id not loaded.
	registryPolls, registryMisses int64
	registryErr                   error // a binary without the metric (a baseline)
}

func produceAndIngest(bin, dir string, n int, invFrac float64, startTs, step string, env ...string) (*ingestRun, *proc, error) {
	brk, produceRate, err := startAndProduce(bin, dir, n, invFrac, startTs, step)
	if err != nil {
		return nil, nil, err
	}
	addr := brk.ready["kafka"]
	res := &ingestRun{produceRate: produceRate}

	fmt.Fprintf(os.Stderr, "ingesting...\n")
	began := time.Now()
	ing, err := start(bin, env, "ingest", "--brokers", addr, "--data-dir", filepath.Join(dir, "lake"), "--http", "127.0.0.1:0")
	if err != nil {
		brk.stop()
		return nil, nil, err
	}
	url := "http://" + ing.ready["http"] + "/metrics"
	for {
		c, cons, err := progress(url)
		if err == nil && cons >= int64(n) && res.consumed == 0 {
			res.consumed = time.Since(began)
		}
		if err == nil && c >= int64(n) {
			break
		}
		if time.Since(began) > 10*time.Minute {
			ing.stop()
			brk.stop()
			return nil, nil, errors.New("ingest did not finish in 10 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.elapsed = time.Since(began)
	res.cpu = cpuSeconds(ing.cmd.Process.Pid)
	res.rss = peakRSS(ing.cmd.Process.Pid)
	res.registryPolls, res.registryMisses, res.registryErr = registryReads(url)
	ing.stop()
	return res, brk, nil
}

func benchIngest(bin, dir string, n int, invFrac float64, startTs, step string) ([]result, error) {
	r, brk, err := produceAndIngest(bin, filepath.Join(dir, "default"), n, invFrac, startTs, step)
	if err != nil {
		return nil, err
	}
	brk.stop()
	r1, brk, err := produceAndIngest(bin, filepath.Join(dir, "flush1s"), n, invFrac, startTs, step, "EVENTLAKE_INGEST_FLUSH_INTERVAL=1s")
	if err != nil {
		return nil, err
	}
	brk.stop()
	rate := float64(n) / r.consumed.Seconds()
	e2e1 := float64(n) / r1.elapsed.Seconds()
	startAt, err := time.Parse(time.RFC3339, startTs)
	if err != nil {
		return nil, err
	}
	stepD, err := time.ParseDuration(step)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "duckdb converting the same envelopes...\n")
	peer, err := duckdbPeer(filepath.Join(dir, "duckdb"), n, invFrac, startAt, stepD)
	if err != nil {
		return nil, err
	}
	cpuPer := r.cpu / float64(n) * 1e6
	how := fmt.Sprintf("%d generated events (%.0f%% order.created, %.0f%% inventory.updated, 5%% late, ~330 bytes each) pre-produced to the embedded broker (a separate `eventlake broker` process), then `eventlake ingest` is started; figures from its /metrics and /proc", n, 100*(1-invFrac), 100*invFrac)
	return []result{
		{"ingest throughput, backlog drained", fmt.Sprintf("%.0f events/s (%d events read, decoded, validated, deduplicated and written as Parquet in %.2f s)", rate, n, r.consumed.Seconds()), ">= 300k events/s", verdict(rate >= 300_000), how + "; from process start until every record is consumed (all but the last, time-triggered batch are committed by then)"},
		{"ingest Kafka -> committed Iceberg, end to end (flush_interval 1 s)", fmt.Sprintf("%.0f events/s (%.2f s)", e2e1, r1.elapsed.Seconds()), ">= 300k events/s", verdict(e2e1 >= 300_000), "from process start until the offsets stored in the lake cover every record"},
		{"ingest Kafka -> committed Iceberg, end to end (default flush_interval 2 s)", fmt.Sprintf("%.0f events/s (%.2f s)", float64(n)/r.elapsed.Seconds(), r.elapsed.Seconds()), "", "", "the same, with the default settings: the last partial batch waits for the 2 s flush timer"},
		{"ingest CPU", fmt.Sprintf("%.1f CPU-s (%.1f µs/event)", r.cpu, cpuPer), "", "", "user+system time of the ingest process (/proc/pid/stat), default settings"},
		{"DuckDB NDJSON -> zstd Parquet of the same envelopes (peer, same run)", fmt.Sprintf("%.0f events/s, %.2f CPU-µs/event (%.2f s, %.0f MiB of NDJSON)", peer.rate, peer.cpuPerEvent, peer.elapsed.Seconds(), float64(peer.fileBytes)/(1<<20)), "", "",
			"the generator's envelopes with the ingest run's seed and settings written to an NDJSON file, then `COPY (SELECT * FROM read_json(file, format = 'newline_delimited')) TO ... (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)` through the DuckDB driver eventlake links, in the benchmark's process (both cores); CPU is that process's user+system time during the COPY"},
		{"ingest vs DuckDB: events/s ratio (backlog drained / NDJSON -> Parquet)", fmt.Sprintf("%.2f (%.0f vs %.0f events/s; CPU per event %.2fx DuckDB's)", rate/peer.rate, rate, peer.rate, cpuPer/peer.cpuPerEvent), ">= 0.65", verdict(rate/peer.rate >= 0.65),
			"the two rows above, measured in the same run; ingest also reads Kafka, validates, deduplicates, keeps the payload verbatim and commits exactly once"},
		{"ingest peak RSS", fmt.Sprintf("%.0f MiB", float64(r.rss)/(1<<20)), "<= 1024 MiB", verdict(r.rss <= 1<<30), "VmHWM of the ingest process, default settings"},
		{"produce (eventlake produce -> embedded broker)", fmt.Sprintf("%.0f events/s", r.produceRate), "", "", "idempotent producer, acks=all, zstd"},
		{"schema registry requests per event while ingesting", registryFigure(r, n), "0", verdict(r.registryErr == nil && r.registryMisses == 0),
			"eventlake_schema_registry_reads_total of the ingest process (default settings): the registry is polled once a second; an event whose type and version are loaded is decoded without asking it"},
	}, nil
}

// benchHistory ingests n order events whose event times span 30 days (a
// replay of history, or a first start against a topic with a month's
// retention): every batch touches all 721 hour partitions.
func benchHistory(bin, dir string, n int) ([]result, error) {
	step := (30 * 24 * time.Hour / time.Duration(n)).String()
	r, brk, err := produceAndIngest(bin, dir, n, 0, "2026-10-27T00:00:00Z", step)
	if err != nil {
		return nil, err
	}
	brk.stop()
	rate := float64(n) / r.elapsed.Seconds()
	return []result{
		{"30-day replay: ingest peak RSS", fmt.Sprintf("%.0f MiB (ingest.memory_limit 768 MiB, the default)", float64(r.rss)/(1<<20)), "<= 1024 MiB", verdict(r.rss <= 1<<30),
			fmt.Sprintf("%d order.created events with event times spread evenly over 30 days (721 hour partitions, every batch touches all of them) pre-produced to the embedded broker, then `eventlake ingest` with default settings; VmHWM of the ingest process", n)},
		{"30-day replay: ingest Kafka -> committed Iceberg", fmt.Sprintf("%.0f events/s (%.2f s, %.1f CPU-µs/event)", rate, r.elapsed.Seconds(), r.cpu/float64(n)*1e6), "", "",
			"from process start until the offsets stored in the lake cover every record"},
	}, nil
}

func registryFigure(r *ingestRun, n int) string {
	if r.registryErr != nil {
		return r.registryErr.Error()
	}
	return fmt.Sprintf("%.0f (%d polls and %d lookups in %.1f s for %d events)",
		float64(r.registryMisses)/float64(n), r.registryPolls, r.registryMisses, r.elapsed.Seconds(), n)
}

// benchBaseline runs the backlog-drain ingest benchmark alternately with
// bin and with a baseline binary (another build of eventlake), rounds
// times each, and reports the medians: on a shared machine single runs
// vary by ±15%, alternating spreads the disturbance over both.
func benchBaseline(bin, baseBin, label, dir string, n, rounds int) ([]result, error) {
	rates := map[string][]float64{}
	cpus := map[string][]float64{}
	for i := range rounds {
		for _, b := range []struct{ name, bin string }{{"eventlake", bin}, {"baseline", baseBin}} {
			r, brk, err := produceAndIngest(b.bin, filepath.Join(dir, fmt.Sprintf("%s-%d", b.name, i)), n, 0.2, "2026-11-26T00:00:00Z", "1ms")
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.name, err)
			}
			brk.stop()
			rates[b.name] = append(rates[b.name], float64(n)/r.consumed.Seconds())
			cpus[b.name] = append(cpus[b.name], r.cpu/float64(n)*1e6)
			fmt.Fprintf(os.Stderr, "%s run %d: %.0f events/s, %.2f CPU-µs/event\n", b.name, i+1, float64(n)/r.consumed.Seconds(), r.cpu/float64(n)*1e6)
		}
	}
	med := func(v []float64) float64 { sort.Float64s(v); return v[len(v)/2] }
	rate, baseRate := med(rates["eventlake"]), med(rates["baseline"])
	cpu, baseCPU := med(cpus["eventlake"]), med(cpus["baseline"])
	how := fmt.Sprintf("the backlog-drain benchmark above (%d events, default settings), run %d times alternately with this build and with %s; medians", n, rounds, label)
	return []result{
		{"ingest throughput, backlog drained: this build vs " + label, fmt.Sprintf("%.0f vs %.0f events/s (%.2fx)", rate, baseRate, rate/baseRate), ">= 1.00x", verdict(rate >= baseRate), how},
		{"ingest CPU per event: this build vs " + label, fmt.Sprintf("%.2f vs %.2f µs (%.2fx)", cpu, baseCPU, cpu/baseCPU), "<= 1.00x", verdict(cpu <= baseCPU), how + "; user+system time of the ingest process"},
	}, nil
}

func benchQuery(bin, dir string, n, runs int) ([]result, error) {
	step := time.Duration(int64(24*time.Hour) / int64(n))
	r, brk, err := produceAndIngest(bin, dir, n, 0, "2026-11-25T00:00:00Z", step.String())
	if err != nil {
		return nil, err
	}
	defer brk.stop()
	lake := filepath.Join(dir, "lake")
	const revenuePath = "/v1/metrics/order_revenue_minute?from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z"

	// Lake only (no hot tier): DuckDB over the raw Parquet files.
	q, err := start(bin, nil, "query", "--data-dir", lake, "--http", "127.0.0.1:0", "--no-hot")
	if err != nil {
		return nil, err
	}
	base := "http://" + q.ready["http"]
	if err := waitReady(base, 10*time.Minute); err != nil {
		q.stop()
		return nil, err
	}
	cold, coldFirst, rows, err := timeRevenue(base+revenuePath, runs)
	if err != nil {
		q.stop()
		return nil, err
	}
	sqlP50, err := timeSQL(base)
	if err != nil {
		q.stop()
		return nil, err
	}
	// The orders of the day as the lake holds them (late events of the
	// first minutes fall before the day): what the hot tier must reach.
	want, err := revenueTotal(base + revenuePath)
	q.stop()
	if err != nil {
		return nil, err
	}

	// With the hot tier: the exact read model (built by this process from
	// the topic) plus the events after its offsets, in memory.
	fmt.Fprintln(os.Stderr, "building the read models from the lake...")
	began := time.Now()
	q, err = start(bin, nil, "query", "--data-dir", lake, "--http", "127.0.0.1:0", "--brokers", brk.ready["kafka"], "--commit-read-models")
	if err != nil {
		return nil, err
	}
	defer q.stop()
	base = "http://" + q.ready["http"]
	if err := waitReady(base, 10*time.Minute); err != nil {
		return nil, err
	}
	built := time.Now()
	for {
		total, err := revenueTotal(base + revenuePath)
		if err == nil && total == want {
			break
		}
		if time.Since(built) > 10*time.Minute {
			return nil, fmt.Errorf("the hot tier counted %d orders of the lake's %d in 10 minutes (last error: %v)", total, want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	buildTime := time.Since(began)
	hotLat, _, _, err := timeRevenue(base+revenuePath, 200)
	if err != nil {
		return nil, err
	}
	models, err := benchModels(base, q, bin, brk.ready["kafka"])
	if err != nil {
		return nil, err
	}
	how := fmt.Sprintf("%d order.created events spread over one day, ingested through Kafka (%d minutes returned)", n, rows)
	return append([]result{
		{"24 h order_revenue_minute API (read model + hot tier), p50", ms(hotLat[len(hotLat)/2]), "<= 10 ms", verdict(hotLat[len(hotLat)/2] <= 10*time.Millisecond),
			how + "; `eventlake query --commit-read-models` built the read model from the topic; 200 timed HTTP requests"},
		{"24 h order_revenue_minute API (read model + hot tier), p99", ms(hotLat[len(hotLat)*99/100]), "<= 10 ms", verdict(hotLat[len(hotLat)*99/100] <= 10*time.Millisecond), ""},
		{"hot tier: a new query process serves the day's exact revenue", fmt.Sprintf("%.1f s", buildTime.Seconds()), "", "", "from its start over a lake holding the day: the three shipped models built from the raw tables (below), the topic read from their offsets"},
		{"24 h revenue from the lake only (DuckDB over raw Parquet), p50 warm", ms(cold[len(cold)/2]), "<= 200 ms", verdict(cold[len(cold)/2] <= 200*time.Millisecond),
			how + fmt.Sprintf("; `eventlake query --no-hot`; %d timed runs after 3 warm-up", runs)},
		{"24 h revenue from the lake only, first call", ms(coldFirst), "", "", "first request after the query service started (Parquet footers not cached)"},
		{"24 h revenue per minute via POST /v1/sql, p50", ms(sqlP50), "", "", "the same aggregate written as SQL over the `orders` view"},
		{fmt.Sprintf("ingest of the %s-event day", humanCount(n)), fmt.Sprintf("%.0f events/s, peak RSS %.0f MiB", float64(n)/r.elapsed.Seconds(), float64(r.rss)/(1<<20)), "", "", "same method as above, 100% order.created"},
	}, models...), nil
}

// benchModels times the declared models' API over the day served by q
// (each shipped model, and distinct users merged over the 24 h), then
// reports how long building each from the day's history took when q
// started over a lake that held the day (every model is new there).
func benchModels(base string, q *proc, bin, broker string) ([]result, error) {
	const day = "from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z"
	var out []result
	models := []struct{ name, query, what string }{
		{"order_revenue_minute", "", "1,440 rows"},
		{"order_metrics", "", "1,440 rows with averages and distinct users"},
		{"product_revenue_hour", "&product_id=p-1", "one product's 24 hours (a filter on the key)"},
		{"order_metrics", "&every=all", "distinct users (and the other figures) of the 24 h merged into one row: 1,440 sketches"},
		{"user_session_summary", "&group=", "the day's sessions of every user merged into one row (one row per user and day held)"},
	}
	timeAll := func(when, how string) error {
		for _, m := range models {
			lat, _, rows, err := timeRevenue(base+"/v1/models/"+m.name+"?"+day+m.query, 200)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			target := "<= 10 ms"
			name := "24 h " + m.name + " API (GET /v1/models)"
			limit := 10 * time.Millisecond
			if m.query == "&every=all" {
				name, target, limit = "24 h distinct users (order_metrics?every=all)", "<= 20 ms", 20*time.Millisecond
			}
			p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
			out = append(out, result{name + ", p50 / p99, " + when, ms(p50) + " / " + ms(p99), target, verdict(p99 <= limit),
				fmt.Sprintf("%s (%d rows); 200 timed HTTP requests after 3 warm-up, hot tier and read model merged; %s", m.what, rows, how)})
		}
		return nil
	}
	// Right after the start, the hot tier may still read the topic from
	// the lowest offsets a model stores: time the models once it has
	// caught up, then while a producer sends 2,000 orders a second.
	if err := waitCaughtUp(base+"/metrics", 5*time.Minute); err != nil {
		return nil, err
	}
	if err := timeAll("settled", "the hot tier caught up with the topic, nothing produced meanwhile"); err != nil {
		return nil, err
	}
	prod := exec.Command(bin, "produce", "--brokers", broker, "--rate", "2000", "--duration", "10m", "--seed", "7",
		"--start", "2026-11-25T12:00:00Z", "--step", "10ms", "--inventory-fraction", "0")
	if err := prod.Start(); err != nil {
		return nil, err
	}
	time.Sleep(3 * time.Second)
	err := timeAll("under 2,000 orders/s", "while `eventlake produce` sends 2,000 orders a second to the broker (producer, broker and query process share the 2 cores)")
	_ = prod.Process.Kill()
	_ = prod.Wait()
	if err != nil {
		return nil, err
	}
	for _, l := range q.builtLines() {
		d, _ := time.ParseDuration(field(l, "duration"))
		how := fmt.Sprintf("at the start of a query process over the lake (%s events, %s rows): every raw row of the type scanned once", field(l, "events"), field(l, "rows"))
		if field(l, "rows") == "" { // the sessions
			how = fmt.Sprintf("at the start of a query process over the lake: %s events sessionized an hour of event time at a time (%s closed and %s open sessions), before the models over them", field(l, "events"), field(l, "closed"), field(l, "open"))
		}
		out = append(out, result{"built from the day's history: " + field(l, "table"), field(l, "duration"), "<= 20 s", verdict(d <= 20*time.Second), how})
	}
	return out, nil
}

// waitCaughtUp waits until the hot tier of the process whose metrics are
// at metricsURL has read every topic to its end (eventlake_streamer_lag_records
// all 0, eventlake_streamer_events_total unchanged for a second).
func waitCaughtUp(metricsURL string, d time.Duration) error {
	deadline := time.Now().Add(d)
	last := -1.0
	for {
		var lag, events float64
		seen := false
		err := eachSample(metricsURL, func(line string, v float64) {
			switch {
			case strings.HasPrefix(line, "eventlake_streamer_lag_records{"):
				lag += v
				seen = true
			case strings.HasPrefix(line, "eventlake_streamer_events_total{"):
				events += v
			}
		})
		if err == nil && seen && lag == 0 && events == last {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the hot tier did not catch up with the topic in %v (lag %v, err %v)", d, lag, err)
		}
		last = events
		time.Sleep(time.Second)
	}
}

// builtLines are the process's log lines of models built from the lake.
func (p *proc) builtLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.built)
}

// field is the value of key=value in a log line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// waitReady polls base/readyz until the process answers 200 (every
// component ready) and returns an error with the last answer, which names
// the components that are not ready and why, if it does not within d. A
// baseline binary built before /readyz (404) is polled on /healthz.
func waitReady(base string, d time.Duration) error {
	deadline := time.Now().Add(d)
	path := "/readyz"
	for {
		last := ""
		resp, err := client.Get(base + path)
		if err == nil && resp.StatusCode == http.StatusNotFound && path == "/readyz" {
			resp.Body.Close()
			path = "/healthz"
			continue
		}
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %s", base, d, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// timeRevenue GETs url (3 warm-up calls, then runs timed calls) and
// returns sorted latencies, the first call's latency and the row count.
func timeRevenue(url string, runs int) ([]time.Duration, time.Duration, int, error) {
	var rows int
	get := func() (time.Duration, error) {
		t0 := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var body struct {
			Rows []json.RawMessage `json:"rows"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return 0, err
		}
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		rows = len(body.Rows)
		return time.Since(t0), nil
	}
	first, err := get()
	if err != nil {
		return nil, 0, 0, err
	}
	var lat []time.Duration
	for i := 0; i < runs+3; i++ {
		d, err := get()
		if err != nil {
			return nil, 0, 0, err
		}
		if i >= 3 {
			lat = append(lat, d)
		}
	}
	slices.Sort(lat)
	return lat, first, rows, nil
}

func revenueTotal(url string) (int64, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Rows []struct {
			OrderCount int64 `json:"order_count"`
		} `json:"rows"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	var n int64
	for _, r := range body.Rows {
		n += r.OrderCount
	}
	return n, nil
}

func timeSQL(base string) (time.Duration, error) {
	return p50SQL(base, fmt.Sprintf(revenueSQL, "orders", ""), 10)
}

// p50SQL is the p50 of runs timed POST /v1/sql of q, after 3 warm-up
// runs.
func p50SQL(base, q string, runs int) (time.Duration, error) {
	var lat []time.Duration
	for i := range runs + 3 {
		d, err := timeSQLOnce(base, q)
		if err != nil {
			return 0, err
		}
		if i >= 3 {
			lat = append(lat, d)
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2], nil
}

// timeSQLOnce times one POST /v1/sql, answer read.
func timeSQLOnce(base, sql string) (time.Duration, error) {
	d, _, err := postSQL(base, sql)
	return d, err
}

// errTimedOut is a statement the service canceled at its query timeout.
var errTimedOut = errors.New("sql: HTTP 504: the query timed out")

// postSQL times one POST /v1/sql, answer read and decoded, and returns
// its row count (at most 10,000: an answer over that is an error).
func postSQL(base, sql string) (time.Duration, int, error) {
	body, _ := json.Marshal(map[string]any{"sql": sql, "max_rows": 10000})
	t0 := time.Now()
	resp, err := client.Post(base+"/v1/sql", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	d := time.Since(t0)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode == http.StatusGatewayTimeout {
		return 0, 0, errTimedOut
	}
	if resp.StatusCode != 200 {
		return 0, 0, fmt.Errorf("sql: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	var ans struct {
		RowCount  int  `json:"row_count"`
		Truncated bool `json:"truncated"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return 0, 0, fmt.Errorf("sql answer: %w", err)
	}
	if ans.Truncated {
		return 0, 0, fmt.Errorf("sql: answer of %q truncated at %d rows", sql, ans.RowCount)
	}
	return d, ans.RowCount, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func render(rs []result, secs []section) string {
	var b strings.Builder
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	fmt.Fprintf(&b, "# Benchmarks\n\nWritten by `make bench` (cmd/eventlake-bench) on %s: %d cores (%s), %s.\n",
		today(), runtime.NumCPU(), cpu, runtime.Version())
	b.WriteString("Every figure comes from the real binary talking to real servers on this machine; re-run `make bench` to reproduce.\n\n")
	b.WriteString("| measure | value | target | verdict |\n|---|---|---|---|\n")
	for _, r := range rs {
		b.WriteString(r.row() + "\n")
	}
	b.WriteString("\n## How each figure is measured\n\n")
	for _, r := range rs {
		if r.how != "" {
			b.WriteString(r.bullet("") + "\n")
		}
	}
	for _, s := range secs {
		b.WriteString("\n" + s.markdown())
	}
	b.WriteString(benchNotes)
	return b.String()
}

func today() string { return time.Now().UTC().Format("2006-01-02") }

func (r result) row() string {
	return fmt.Sprintf("| %s | %s | %s | %s |", r.name, r.value, r.target, r.verdict)
}

// bullet is the method line of r, with note (when not empty) at its end.
func (r result) bullet(note string) string {
	if note != "" {
		return fmt.Sprintf("- **%s**: %s; %s.", r.name, r.how, note)
	}
	return fmt.Sprintf("- **%s**: %s.", r.name, r.how)
}

func (s section) markdown() string {
	return "## " + s.title + "\n\n" + strings.TrimRight(s.text, "\n") + "\n"
}

// merge updates old, a report render wrote, with the rows, method
// bullets and sections of a partial run: a row or bullet of the same
// measure, or a section of the same title, is replaced, and new ones are
// added at the end of their part (sections before the notes). Each
// bullet says when its row was measured (note).
func merge(old string, rs []result, secs []section, note string) string {
	// The report in parts: the part before the first heading (title and
	// table), then one per "## " heading.
	var parts [][]string
	for i, l := range strings.Split(strings.TrimRight(old, "\n"), "\n") {
		if i == 0 || strings.HasPrefix(l, "## ") {
			parts = append(parts, nil)
		}
		parts[len(parts)-1] = append(parts[len(parts)-1], l)
	}
	find := func(heading string) int {
		return slices.IndexFunc(parts, func(p []string) bool { return p[0] == heading })
	}
	// upsert replaces the line of part that starts with prefix, or adds
	// line after the last line that starts with block (after the part's
	// last line that is not empty if none does).
	upsert := func(part []string, prefix, block, line string) []string {
		at := -1
		for i, l := range part {
			if strings.HasPrefix(l, prefix) {
				part[i] = line
				return part
			}
			if strings.HasPrefix(l, block) {
				at = i
			}
		}
		if at < 0 {
			for at = len(part) - 1; at > 0 && part[at] == ""; at-- {
			}
		}
		return slices.Insert(part, at+1, line)
	}
	for _, r := range rs {
		parts[0] = upsert(parts[0], "| "+r.name+" |", "|", r.row())
		if r.how == "" {
			continue
		}
		if i := find("## How each figure is measured"); i >= 0 {
			parts[i] = upsert(parts[i], "- **"+r.name+"**:", "- **", r.bullet(note))
		}
	}
	for _, s := range secs {
		text := strings.Split(s.markdown()+"\n", "\n")
		text = text[:len(text)-1]
		if i := find("## " + s.title); i >= 0 {
			parts[i] = text
		} else if i := find("## Notes"); i >= 0 {
			parts = slices.Insert(parts, i, text)
		} else {
			parts = append(parts, text)
		}
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(strings.Join(p, "\n") + "\n")
	}
	return b.String()
}

// benchNotes explains the figures that need more than a line.
const benchNotes = `
## Notes

- This machine's speed varies by up to ~2x from day to day (main's ingest drained ~460k events/s
  on an earlier day and ~200k on others), so figures are comparable within one run only. The rows
  "this build vs ..." run both builds alternately in the same run, five times each (medians):
  they are the comparison that counts; the absolute targets are measured honestly on the day.
- Three ingest processes on two cores do not ingest faster than one: scale-out here buys
  availability (the fault suite kills and adds processes under load), not throughput; on separate
  machines each process brings its own cores, and commits stay cheap because a conflict costs a
  reload and a re-commit of the same files, never a rewrite. The scale-out ingest figures include
  process start-up (about a second of each run).
- Reading S3-resident data through the local cache versus streaming Arrow into DuckDB:
  [S3_READS.md](S3_READS.md).
- Lookups: the query service picks a statement's files from the Iceberg manifests' bounds of the
  identifier columns and of ts (query/prune.go), so a lookup or a time range visits the files that
  can hold it, not all 720. Row groups of 65,536 rows instead of 262,144 made no lookup faster in
  the same run and the lake 15% larger: compaction keeps 262,144. Rows sorted by (user_id, ts)
  inside the hour files (the [user_id+ts@262144] rows, same run) made a user's month 1.2x faster
  (6.0 s against 7.4 s) and the lake 59% larger: every hour file holds every user, so each of the
  720 files is still opened and read. Compaction keeps event time unless a table's sort order
  says otherwise (MAINTENANCE.md, "Write order").
- Compaction is far below 1M rows/s because a 1-second commit leaves files of ~116 rows and
  ~13 KiB, mostly footer: the work is per file, not per row. Reading a 22-column file of 116 rows
  costs DuckDB ~1.2-2 ms of CPU and arrow-go ~2 ms (allocation-bound: pqarrow sets up readers and
  buffers per column chunk), so 86,400 such files cost minutes whatever writes them; files of
  10-second commits go ~3x faster. The ceiling without any per-file cost is DuckDB rewriting the
  same rows from one file into one (the peer row), itself well below 1M rows/s on two cores. Raw
  tables' compacted files are also written a second time with the lake's layout and bloom filters
  (lake.Transcode), since DuckDB writes a filter only for dictionary-encoded columns.
  The open hour no longer waits for compaction: its small files are merged by size tier while
  ingest writes to it (the open-hour rows), so a closed hour's compaction reads tens of files, not
  thousands; the day of 86,400 files measures a backlog (a compactor that was down).
- A DLQ replay reads the selected dead letters twice with DuckDB (to check them, then to write
  them), in the order of ingest time and Kafka coordinates (the cursor of its batches), and
  duckdb-go materializes a query's whole result before handing over its first row. At a million
  dead letters those two reads are about half of the replay's time, and reading them once in order
  peaks at ~1.4 GB RSS by itself (~0.75 GB without the ORDER BY); the Go heap adds the selected
  rows' ids and places and the table writer's Arrow chunks: about 2-2.5 GB per million dead
  letters replayed at once. Batches (dlq.batch_rows, default 1M) bound the Go side, not DuckDB's
  scan, and each repeats the scan, the look-up and the minutes' re-aggregation: 1M in batches of
  100k took 58 s (17k events/s) and still peaked at 1.8 GB.
`

// client bounds every benchmark request: a stuck service fails the run
// instead of hanging it.
var client = &http.Client{Timeout: 2 * time.Minute, Transport: authTransport{}}

// tokens are the bench's tokens by API address (host:port).
var tokens sync.Map

// authTransport sends the token of the API a request goes to.
type authTransport struct{}

func (authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if tok, ok := tokens.Load(req.URL.Host); ok && req.Header.Get("Authorization") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+tok.(string))
	}
	return http.DefaultTransport.RoundTrip(req)
}

// humanCount writes 10000000 as 10M and 300000 as 300k.
func humanCount(n int) string {
	switch {
	case n >= 1_000_000 && n%100_000 == 0:
		return strconv.FormatFloat(float64(n)/1e6, 'f', -1, 64) + "M"
	case n >= 1000 && n%100 == 0:
		return strconv.FormatFloat(float64(n)/1e3, 'f', -1, 64) + "k"
	}
	return strconv.Itoa(n)
}
