package main

// The DLQ replay benchmark: n order.created events that the shipped
// schema rejects (quantity 0) dead-lettered by `eventlake dev`, a schema
// version that accepts them registered, then `eventlake dlq replay` timed
// as a separate process against the same data directory while dev runs.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/eventlake/eventlake/demo"
	"github.com/eventlake/eventlake/ingest"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// replayArgs are the replay's arguments besides --data-dir.
var replayArgs = []string{"dlq", "replay", "--type", demo.TypeOrderCreated, "--requested-by", "bench", "--json"}

func benchReplay(bin, dir string, n int, invocation string) ([]result, *section, error) {
	data := filepath.Join(dir, "data")
	dev, err := start(bin, []string{"EVENTLAKE_DLQ_AUTO_REPLAY=false"}, "dev", "--no-demo", "--data-dir", data,
		"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer dev.stop()
	base := "http://" + dev.ready["http"]
	if err := waitReady(base, 2*time.Minute); err != nil {
		return nil, nil, err
	}

	fmt.Fprintf(os.Stderr, "replay: producing %d order.created events with quantity 0...\n", n)
	began := time.Now()
	if err := produceInvalidOrders(dev.ready["kafka"], n); err != nil {
		return nil, nil, fmt.Errorf("produce: %w", err)
	}
	produced := time.Since(began)
	if err := awaitCount(base, "SELECT count(*) FROM dlq", int64(n), 30*time.Minute); err != nil {
		return nil, nil, fmt.Errorf("dead letters: %w", err)
	}
	deadLettered := time.Since(began)
	fmt.Fprintf(os.Stderr, "replay: %d dead letters committed in %.1f s\n", n, deadLettered.Seconds())

	version, err := registerOrderV2(base)
	if err != nil {
		return nil, nil, err
	}

	fmt.Fprintln(os.Stderr, "replay: dry run...")
	dry, err := runReplay(bin, data, "--dry-run")
	if err != nil {
		return nil, nil, fmt.Errorf("dry run: %w", err)
	}
	if dry.rep.Selected != int64(n) || dry.rep.Replayed != int64(n) {
		return nil, nil, fmt.Errorf("dry run: selected %d, would replay %d; want %d and %d", dry.rep.Selected, dry.rep.Replayed, n, n)
	}
	fmt.Fprintln(os.Stderr, "replay: eventlake dlq replay...")
	loadBefore := loadAverage()
	run, err := runReplay(bin, data)
	if err != nil {
		return nil, nil, err
	}
	loadAfter := loadAverage()
	rep := run.rep
	if rep.Selected != int64(n) || rep.Replayed != int64(n) || rep.AlreadyPresent != 0 || rep.StillInvalid != 0 {
		return nil, nil, fmt.Errorf("replay: selected %d, replayed %d, already present %d, still invalid %d; want all %d replayed",
			rep.Selected, rep.Replayed, rep.AlreadyPresent, rep.StillInvalid, n)
	}
	if err := awaitCount(base, "SELECT count(*) FROM orders WHERE replay_id IS NOT NULL", int64(n), 10*time.Minute); err != nil {
		return nil, nil, fmt.Errorf("replayed orders: %w", err)
	}
	visible := time.Since(run.exited)
	// The steps of a replay in one batch; a selection larger than
	// dlq.batch_rows is replayed batch by batch.
	var steps []step
	if run.batches == 1 {
		if steps, err = replaySteps(data, rep.ReplayID, run); err != nil {
			return nil, nil, err
		}
	}

	rate := float64(rep.Replayed) / run.wall.Seconds()
	counts := fmt.Sprintf("selected %d, replayed %d, already present %d, still invalid %d", rep.Selected, rep.Replayed, rep.AlreadyPresent, rep.StillInvalid)
	how := fmt.Sprintf("`eventlake %s` of %d dead letters (order.created events that a newly registered schema version accepts), run as a process of its own beside `eventlake dev`; replayed events per second of the process's wall time, start to exit; setup, command and steps in [DLQ replay](#dlq-replay)",
		strings.Join(replayArgs, " "), n)
	rs := []result{
		{"DLQ replay throughput", fmt.Sprintf("%.0f events/s (%s in %.1f s)", rate, counts, run.wall.Seconds()), "", "", how},
		{"DLQ replay peak RSS", fmt.Sprintf("%.0f MiB", float64(run.maxRSS)/(1<<20)), "", "", "VmHWM of the `eventlake dlq replay` process, sampled every 100 ms"},
		{"DLQ replay: replayed events visible in SQL", fmt.Sprintf("%.2f s after the replay exited", visible.Seconds()), "", "",
			"polling POST /v1/sql `SELECT count(*) FROM orders WHERE replay_id IS NOT NULL` on dev every 200 ms from the replay's exit until it answers the number replayed"},
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Measured on %s on this machine (%d cores, load average %s before the replay, %s after it) with\n\n    %s\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), loadBefore, loadAfter, invocation)
	fmt.Fprintf(&b, "Setup: %d order.created events with quantity 0, keyed by order id, event times spread over one day, produced to `eventlake dev --no-demo` (EVENTLAKE_DLQ_AUTO_REPLAY=false) in %.1f s; all %d in the dead-letter table (`SELECT count(*) FROM dlq`) %.1f s after the first was sent. order.created v%d (quantity minimum 0) registered through the schema registry API.\n\n",
		n, produced.Seconds(), n, deadLettered.Seconds(), version)
	fmt.Fprintf(&b, "`eventlake %s --data-dir DIR`, a process of its own while dev runs:\n\n", strings.Join(replayArgs, " "))
	b.WriteString("| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| report | %s; %d minutes re-aggregated; %d batches (dlq.batch_rows) |\n", counts, len(rep.Minutes["orders_raw"]), run.batches)
	// A replay that races with another change to its rows (the compactor
	// rewriting dead-letter files) starts over, and says so in its log.
	fmt.Fprintf(&b, "| started over after a race | %d times |\n", strings.Count(run.stderr, "replay raced, starting over"))
	fmt.Fprintf(&b, "| wall time, start to exit | %.1f s: %.0f events/s |\n", run.wall.Seconds(), rate)
	fmt.Fprintf(&b, "| CPU (user + system) | %.1f s |\n", run.cpu.Seconds())
	fmt.Fprintf(&b, "| peak RSS (VmHWM) | %.0f MiB |\n", float64(run.maxRSS)/(1<<20))
	for _, s := range steps {
		fmt.Fprintf(&b, "| %s | %.1f s |\n", s.what, s.d.Seconds())
	}
	fmt.Fprintf(&b, "| `--dry-run` of the same selection just before, start to exit (start-up, pass 1: read and check every dead letter, look the event ids up) | %.1f s, %.0f MiB peak RSS |\n",
		dry.wall.Seconds(), float64(dry.maxRSS)/(1<<20))
	fmt.Fprintf(&b, "| replayed events in SQL over `orders` (dev's query service) | %.2f s after the replay exited |\n", visible.Seconds())
	b.WriteString("\nThe steps are read from the commits' snapshot timestamps in the catalog (the replayed events' commit to orders_raw, the dead-letter rows' mark, the replay log's record) and the report's requested_at.\n")
	return rs, &section{"DLQ replay", b.String()}, nil
}

// produceInvalidOrders produces n order.created events that the shipped
// schema rejects (quantity 0), keyed by order id, event times spread over
// one day.
func produceInvalidOrders(broker string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	day, _ := time.Parse(time.RFC3339, benchDay)
	step := 24 * time.Hour / time.Duration(n)
	ctx := context.Background()
	var (
		mu   sync.Mutex
		ferr error
	)
	done := func(_ *kgo.Record, err error) {
		mu.Lock()
		if ferr == nil {
			ferr = err
		}
		mu.Unlock()
	}
	for i := range n {
		id := "o-" + strconv.Itoa(i)
		e := schema.Envelope{EventID: "ev-" + strconv.Itoa(i), Source: "bench", Type: demo.TypeOrderCreated, Timestamp: day.Add(time.Duration(i) * step),
			Payload: fmt.Appendf(nil, `{"order_id":"%s","user_id":"u-%d","product_id":"p-%d","quantity":0,"amount":"%d.%02d"}`, id, i%1000, i%100, i%500, i%100)}
		// Produce blocks while the client buffers its maximum of records.
		cl.Produce(ctx, &kgo.Record{Topic: demo.TopicOrders, Key: []byte(id), Value: e.AppendJSON(nil)}, done)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return ferr
}

// awaitCount polls a count(*) query on the SQL API until it answers want;
// an answer other than 200, or a count above want, fails.
func awaitCount(base, sql string, want int64, d time.Duration) error {
	body, _ := json.Marshal(map[string]string{"sql": sql})
	deadline := time.Now().Add(d)
	var got int64
	for {
		resp, err := client.Post(base+"/v1/sql", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: HTTP %d: %s", sql, resp.StatusCode, bytes.TrimSpace(b))
		}
		var res struct {
			Rows [][]int64 `json:"rows"`
		}
		if err := json.Unmarshal(b, &res); err != nil || len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
			return fmt.Errorf("%s: unexpected answer %s (%v)", sql, b, err)
		}
		got = res.Rows[0][0]
		switch {
		case got == want:
			return nil
		case got > want:
			return fmt.Errorf("%s answered %d, more than the %d expected", sql, got, want)
		case time.Now().After(deadline):
			return fmt.Errorf("%s answered %d, not %d, after %v", sql, got, want, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// registerOrderV2 registers the latest order.created schema with quantity
// minimum 0 through the schema registry API, and returns its version.
func registerOrderV2(base string) (int, error) {
	tok, _ := tokens.Load(base[len("http://"):])
	token, _ := tok.(string)
	rcl, err := sr.NewClient(sr.URLs(base), sr.BearerToken(token))
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	v1, err := rcl.SchemaByVersion(ctx, demo.TypeOrderCreated, -1)
	if err != nil {
		return 0, fmt.Errorf("read the %s schema: %w", demo.TypeOrderCreated, err)
	}
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(v1.Schema.Schema))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return 0, fmt.Errorf("the %s schema: %w", demo.TypeOrderCreated, err)
	}
	props, _ := doc["properties"].(map[string]any)
	quantity, _ := props["quantity"].(map[string]any)
	if quantity == nil || fmt.Sprint(quantity["minimum"]) != "1" {
		return 0, fmt.Errorf("the %s schema has no quantity with minimum 1: the benchmark's events would not be dead letters", demo.TypeOrderCreated)
	}
	quantity["minimum"] = 0
	text, err := json.Marshal(doc)
	if err != nil {
		return 0, err
	}
	s, err := rcl.CreateSchema(ctx, demo.TypeOrderCreated, sr.Schema{Schema: string(text), Type: sr.TypeJSON})
	if err != nil {
		return 0, fmt.Errorf("register %s with quantity minimum 0: %w", demo.TypeOrderCreated, err)
	}
	return s.Version, nil
}

// replayRun is one `eventlake dlq replay` process.
type replayRun struct {
	rep            ingest.ReplayReport // the batches' reports summed
	batches        int
	started        time.Time
	exited         time.Time
	wall, cpu      time.Duration
	maxRSS         int64 // bytes
	stderr, stdout string
}

func runReplay(bin, data string, extra ...string) (*replayRun, error) {
	cmd := exec.Command(bin, append(append(append([]string(nil), replayArgs...), extra...), "--data-dir", data)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	r := &replayRun{started: time.Now()}
	var err error
	r.maxRSS, err = runPeak(cmd)
	r.exited = time.Now()
	r.wall = r.exited.Sub(r.started)
	r.stdout, r.stderr = out.String(), errb.String()
	if err != nil {
		return nil, fmt.Errorf("eventlake %s: %v: %s", strings.Join(cmd.Args[1:], " "), err, r.stderr)
	}
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	// One JSON report per batch (dlq.batch_rows).
	dec := json.NewDecoder(bytes.NewReader(out.Bytes()))
	minutes := map[int64]bool{}
	for {
		var rep ingest.ReplayReport
		if err := dec.Decode(&rep); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("the replay's report %q: %w", r.stdout, err)
		}
		if r.batches == 0 {
			r.rep = rep
		} else {
			r.rep.Selected += rep.Selected
			r.rep.Replayed += rep.Replayed
			r.rep.AlreadyPresent += rep.AlreadyPresent
			r.rep.StillInvalid += rep.StillInvalid
		}
		for _, m := range rep.Minutes["orders_raw"] {
			minutes[m] = true
		}
		r.batches++
	}
	if r.batches == 0 {
		return nil, fmt.Errorf("the replay printed no report: %q", r.stdout)
	}
	r.rep.Minutes = map[string][]int64{"orders_raw": make([]int64, 0, len(minutes))}
	for m := range minutes {
		r.rep.Minutes["orders_raw"] = append(r.rep.Minutes["orders_raw"], m)
	}
	return r, nil
}

type step struct {
	what string
	d    time.Duration
}

// replaySteps splits the replay's wall time at its commits, read from the
// snapshots of the tables it committed to.
func replaySteps(data, replayID string, run *replayRun) ([]step, error) {
	ctx := context.Background()
	cfg := lake.Config{}
	cfg.Defaults(data)
	cat, err := lake.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer cat.Close()
	at := func(name, task string) (time.Time, error) {
		tbl, err := cat.LoadTable(ctx, name)
		if err != nil {
			return time.Time{}, err
		}
		var t time.Time
		lake.Walk(tbl, func(s *table.Snapshot) bool {
			if s.Summary != nil && s.Summary.Properties[ingest.SummaryReplayID] == replayID && s.Summary.Properties[lake.SummaryTask] == task {
				t = time.UnixMilli(s.TimestampMs)
				return false
			}
			return true
		})
		if t.IsZero() {
			return t, fmt.Errorf("no %s snapshot of replay %s in %s", task, replayID, name)
		}
		return t, nil
	}
	events, err := at("orders_raw", ingest.TaskReplay)
	if err != nil {
		return nil, err
	}
	mark, err := at("dlq", ingest.TaskReplayMark)
	if err != nil {
		return nil, err
	}
	record, err := at(lake.TableDLQReplays, ingest.TaskReplayRecord)
	if err != nil {
		return nil, err
	}
	requested := run.rep.RequestedAt
	if requested.Before(run.started) || events.Before(requested) || mark.Before(events) || record.Before(mark) || run.exited.Before(record) {
		return nil, errors.New("the replay's commits are out of order with its start and exit")
	}
	return []step{
		{"start-up (configuration, catalog, schemas, recovery of interrupted replays)", requested.Sub(run.started)},
		{"pass 1 (read and check every dead letter, look the event ids up) and pass 2 (read them again, write Parquet, commit to orders_raw)", events.Sub(requested)},
		{"mark the dead-letter rows (rewrite the dead-letter files, commit)", mark.Sub(events)},
		{"re-aggregate the read models, log the replay", record.Sub(mark)},
		{"exit", run.exited.Sub(record)},
	}, nil
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
