package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/internal/config"
	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/lake"
)

// maintLake is one `eventlake dev --no-demo` process (ingest and the
// query API) on a fresh data directory, with its in-process compactor off:
// these tests run maintenance as separate processes, as an operator would.
type maintLake struct {
	t       *testing.T
	dir     string   // data directory
	config  string   // YAML config shared by dev and compact commands
	env     []string // extra environment of every eventlake process (an S3 warehouse)
	dev     *th.Proc
	broker  string
	api     string
	catalog *lake.Catalog
}

func startMaintLake(t *testing.T, yaml string, env ...string) *maintLake {
	t.Helper()
	root := t.TempDir()
	l := &maintLake{t: t, dir: filepath.Join(root, "data"), config: filepath.Join(root, "eventlake.yaml"), env: env}
	if err := os.WriteFile(l.config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	l.dev = th.Start(t, "dev", append([]string{
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=300ms",
		"EVENTLAKE_QUERY_REFRESH_INTERVAL=100ms",
		"EVENTLAKE_COMPACTOR_DISABLED=true",
	}, env...), "dev", "--no-demo", "--config", l.config, "--data-dir", l.dir, "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	l.broker, l.api = l.dev.Ready["kafka"], "http://"+l.dev.Ready["http"]
	l.catalog = openLakeEnv(t, l.dir, env)
	return l
}

// openLakeEnv opens the lake's catalog with the EVENTLAKE_CATALOG_*
// settings of env applied (an S3 warehouse).
func openLakeEnv(t *testing.T, dataDir string, env []string) *lake.Catalog {
	t.Helper()
	if len(env) == 0 {
		return openLake(t, dataDir)
	}
	var cfg struct {
		Catalog lake.Config `yaml:"catalog"`
	}
	if _, err := config.ApplyEnv(&cfg, env); err != nil {
		t.Fatal(err)
	}
	cfg.Catalog.Defaults(dataDir)
	cat, err := lake.Open(context.Background(), cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat
}

// produce runs `eventlake produce` to completion.
func (l *maintLake) produce(seed, count, rate int, start time.Time, step time.Duration, extra ...string) {
	l.t.Helper()
	args := append([]string{"produce", "--brokers", l.broker, "--rate", strconv.Itoa(rate), "--count", strconv.Itoa(count),
		"--seed", strconv.Itoa(seed), "--start", start.Format(time.RFC3339), "--step", step.String()}, extra...)
	l.run(nil, args...)
}

// run runs a one-shot eventlake command and returns its standard output.
func (l *maintLake) run(env []string, args ...string) string {
	l.t.Helper()
	began := time.Now()
	defer func() {
		l.t.Logf("eventlake %s: %v", strings.Join(args[:min(2, len(args))], " "), time.Since(began).Round(time.Millisecond))
	}()
	cmd := th.Command(l.t, args...)
	cmd.Env = append(append(cmd.Env, l.env...), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		l.t.Fatalf("eventlake %v: %v\n%s", args, err, tailString(stderr.String(), 6000))
	}
	return stdout.String()
}

// maintain runs `eventlake compact <task>` against the lake with short,
// test-only reader margins.
func (l *maintLake) maintain(task string, extra ...string) string {
	l.t.Helper()
	return l.run(maintEnv(), append([]string{"compact", task, "--config", l.config, "--data-dir", l.dir, "--json"}, extra...)...)
}

func maintEnv() []string {
	return []string{"EVENTLAKE_COMPACTOR_UNSAFE_SHORT_AGES=true", "EVENTLAKE_COMPACTOR_SNAPSHOT_MIN_AGE=1s",
		"EVENTLAKE_COMPACTOR_SNAPSHOT_MAX_AGE=1s", "EVENTLAKE_COMPACTOR_ORPHAN_MIN_AGE=1s", "EVENTLAKE_LOG_LEVEL=info"}
}

// waitRows waits until the lake itself (not the hot tier, which shows
// rows before ingest commits them) holds want rows in view ("events": the
// raw tables; "dlq"), and the query API serves the tables' current
// snapshots (those, or what maintenance committed on top of them).
func (l *maintLake) waitRows(view string, want int) {
	l.t.Helper()
	tables := []string{"orders_raw", "inventory_raw"}
	if view == "dlq" {
		tables = []string{"dlq"}
	}
	th.Eventually(l.t, 60*time.Second, view+" rows committed", func() (bool, string) {
		var n int64
		for _, name := range tables {
			n += l.committedRows(name)
		}
		return n == int64(want), fmt.Sprintf("%d of %d", n, want)
	})
	for _, name := range tables {
		l.waitServes(name)
	}
}

// committedRows counts the rows of the table's current snapshot from its
// data files, each once (a file with several row groups is planned as
// several scan tasks).
func (l *maintLake) committedRows(name string) int64 {
	l.t.Helper()
	tbl, err := l.catalog.LoadTable(context.Background(), name)
	if err != nil || tbl.CurrentSnapshot() == nil {
		return 0
	}
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	seen := map[string]bool{}
	var n int64
	for _, tk := range tasks {
		if !seen[tk.File.FilePath()] {
			seen[tk.File.FilePath()] = true
			n += tk.File.Count()
		}
	}
	return n
}

// waitServes waits until the query API answers from the table's current
// snapshot, reading the current snapshot again on every poll: while the
// compactor daemon runs it commits on top of the snapshot ingest made
// current, often within the same refresh interval, and the query service
// then serves the compaction's snapshot and never the superseded one. A
// wait for the snapshot read once, before polling, could never end (that
// was the "still serves snapshot ... after 60 s" failure of
// TestCompactionUnderIngest; the query service was serving the current
// snapshot).
func (l *maintLake) waitServes(name string) {
	l.t.Helper()
	current := func() (int64, error) {
		tbl, err := l.catalog.LoadTable(context.Background(), name)
		if err != nil {
			return 0, err
		}
		if tbl.CurrentSnapshot() == nil {
			return 0, fmt.Errorf("table %s has no snapshot", name)
		}
		return tbl.CurrentSnapshot().SnapshotID, nil
	}
	served := func() int64 { return th.SQL(l.t, l.api, "SELECT 1").SnapshotID[name] }
	seen, err := awaitServed(60*time.Second, 100*time.Millisecond, current, served)
	if err != nil {
		var warn []string
		for _, line := range strings.Split(l.dev.Log(), "\n") {
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				warn = append(warn, line)
			}
		}
		l.t.Fatalf("%s: %v; warnings of dev:\n%s", name, err, tailString(strings.Join(warn, "\n"), 6000))
	}
	if len(seen) > 1 {
		l.t.Logf("%s: commits landed while waiting for the query API; current snapshots seen, oldest first: %v", name, seen)
	}
}

// awaitServed polls every interval until the snapshot the query API
// serves equals the catalog's current one, both read again on every poll,
// and gives up after timeout with an error naming the snapshots involved.
// It returns the catalog's current snapshots it saw, oldest first.
func awaitServed(timeout, interval time.Duration, current func() (int64, error), served func() int64) ([]int64, error) {
	deadline := time.Now().Add(timeout)
	var seen []int64 // the catalog's current snapshots, in the order seen
	for {
		cur, err := current()
		if err != nil {
			return seen, fmt.Errorf("read the current snapshot: %w", err)
		}
		if len(seen) == 0 || seen[len(seen)-1] != cur {
			seen = append(seen, cur)
		}
		got := served()
		if got == cur {
			return seen, nil
		}
		if time.Now().After(deadline) {
			return seen, fmt.Errorf("the query API still serves snapshot %d after %v, the catalog's current is %d (its current snapshots while waiting, the last 10 oldest first: %v)",
				got, timeout, cur, seen[max(0, len(seen)-10):])
		}
		time.Sleep(interval)
	}
}

// answer is the part of a query answer that must not change when only the
// physical layout of the lake changes.
func (l *maintLake) answer(sql string) string {
	l.t.Helper()
	r := th.SQL(l.t, l.api, sql)
	if r.Truncated {
		l.t.Fatalf("%q: answer truncated; the comparison would be partial", sql)
	}
	b, err := json.Marshal(struct {
		C []string
		T []string
		R [][]any
	}{r.Columns, r.Types, r.Rows})
	if err != nil {
		l.t.Fatal(err)
	}
	return string(b)
}

func (l *maintLake) revenue(from, to time.Time) string {
	l.t.Helper()
	var resp struct {
		Rows json.RawMessage `json:"rows"`
	}
	url := fmt.Sprintf("%s/v1/metrics/order_revenue_minute?from=%s&to=%s", l.api, from.Format(time.RFC3339), to.Format(time.RFC3339))
	if code := th.GetJSON(l.t, url, &resp); code != 200 {
		l.t.Fatalf("revenue: HTTP %d", code)
	}
	return string(resp.Rows)
}

// liveFiles returns the data files of the table's current snapshot by
// partition directory.
// mustLiveFiles is liveFiles, failing the test when the table has none
// (so that checks looping over the files cannot pass on nothing).
func (l *maintLake) mustLiveFiles(name string) map[string][]string {
	l.t.Helper()
	live := l.liveFiles(name)
	if len(live) == 0 {
		l.t.Fatalf("%s has no live files", name)
	}
	return live
}

func (l *maintLake) liveFiles(name string) map[string][]string {
	l.t.Helper()
	tbl, err := l.catalog.LoadTable(context.Background(), name)
	if err != nil {
		l.t.Fatal(err)
	}
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	out := map[string][]string{}
	seen := map[string]bool{}
	for _, tk := range tasks {
		if seen[tk.File.FilePath()] {
			continue // one file, several row groups
		}
		seen[tk.File.FilePath()] = true
		p := tk.File.FilePath()
		if lp := localPath(p); lp != "" {
			p = lp
		}
		dir := filepath.Base(filepath.Dir(p))
		out[dir] = append(out[dir], p)
	}
	return out
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestCompactionUnderIngest compacts a lake made of 300 ms commits while
// ingest keeps committing to the same partitions, then checks that every
// partition ends with at most 2 files, that the query API answers exactly
// as before compaction, byte for byte, and that every event is in the lake
// exactly once.
func TestCompactionUnderIngest(t *testing.T) {
	l := startMaintLake(t, "compactor:\n  target_file_size: 134217728\n")
	now := time.Now().UTC()
	const (
		nA, nB       = 5000, 5000
		seedA, seedB = 11, 12
	)
	// Phase A: three hours of events, six hours ago, at 1,000 events/s:
	// a file per partition per 300 ms commit.
	startA := now.Add(-6 * time.Hour).Truncate(time.Hour)
	stepA := 3 * time.Hour / nA
	// Phase B starts 5 minutes after phase A's last event (lateness is at
	// most 2 minutes), so a filter on ts separates the two.
	boundary := startA.Add(3 * time.Hour)
	startB := boundary.Add(5 * time.Minute)
	stepB := 2 * time.Hour / nB
	wantA := groundTruth(seedA, nA, startA, stepA, 0)
	wantB := groundTruth(seedB, nB, startB, stepB, 0)

	l.produce(seedA, nA, 1000, startA, stepA)
	l.waitRows("events", nA)
	before := l.liveFiles("orders_raw")
	t.Logf("phase A: %d partitions of orders_raw, %d files", len(before), countFiles(before))

	cut := fmt.Sprintf("TIMESTAMPTZ '%s'", boundary.Format("2006-01-02 15:04:05+00"))
	queries := []string{
		"SELECT event_id, amount, ts FROM orders WHERE ts < " + cut + " ORDER BY event_id",
		"SELECT event_id, type, ts, payload, kafka_topic, kafka_partition, kafka_offset, ingested_at FROM events WHERE ts < " + cut + " ORDER BY event_id",
		"SELECT date_trunc('minute', ts) AS m, sum(amount), count(*), min(event_id), max(event_id) FROM orders WHERE ts < " + cut + " GROUP BY 1 ORDER BY 1",
		"SELECT product_id, warehouse, stock, delta, event_id FROM inventory WHERE ts < " + cut + " ORDER BY event_id",
	}
	var answers []string
	for _, q := range queries {
		answers = append(answers, l.answer(q))
	}
	revA := l.revenue(startA.Add(-time.Hour), boundary)

	// Phase B: the compactor daemon runs every 300 ms while ingest commits
	// phase B's events every 300 ms.
	comp := th.Start(t, "compact", append(maintEnv(), "EVENTLAKE_COMPACTOR_INTERVAL=300ms"),
		"compact", "--config", l.config, "--data-dir", l.dir, "--http", "127.0.0.1:0")
	l.produce(seedB, nB, 1000, startB, stepB)
	l.waitRows("events", nA+nB)
	metrics := httpGet(t, "http://"+comp.Ready["http"]+"/metrics")
	if err := comp.Stop(30 * time.Second); err != nil {
		t.Fatalf("compactor daemon: %v\n%s", err, comp.Log())
	}
	if !strings.Contains(metrics, `eventlake_compactor_commits_total{table="orders_raw",task="compact"}`) {
		t.Fatalf("the daemon committed no compaction of orders_raw while ingest ran:\n%s", grepLines(metrics, "eventlake_compactor_"))
	}
	t.Logf("daemon: %s", grepLines(metrics, "eventlake_compactor_commit"))

	// Phase C: the open hour. Ingest commits every 300 ms to the current
	// hour's partitions, which stay open (their end plus the 10 minutes
	// of allowed lateness is ahead) while the daemon merges their small
	// files by size tier. C1 is ingested first and read; C2 follows 7
	// minutes of event time later (lateness is at most 2), while the
	// daemon runs, so the reads over C1 must not change.
	const (
		nC1, nC2       = 3000, 5000
		seedC1, seedC2 = 13, 14
	)
	startC1 := time.Now().UTC().Add(-9 * time.Minute)
	stepC1 := 2 * time.Minute / nC1
	startC2 := startC1.Add(7 * time.Minute)
	stepC2 := 2 * time.Minute / nC2
	wantC1 := groundTruth(seedC1, nC1, startC1, stepC1, 0)
	wantC2 := groundTruth(seedC2, nC2, startC2, stepC2, 0)
	l.produce(seedC1, nC1, 1000, startC1, stepC1)
	l.waitRows("events", nA+nB+nC1)
	rangeC1 := fmt.Sprintf("ts >= TIMESTAMPTZ '%s' AND ts < TIMESTAMPTZ '%s'",
		startC1.Add(-3*time.Minute).Format("2006-01-02 15:04:05.999999+00"), startC1.Add(4*time.Minute).Format("2006-01-02 15:04:05.999999+00"))
	queriesC := []string{
		"SELECT event_id, amount, ts FROM orders WHERE " + rangeC1 + " ORDER BY event_id",
		"SELECT event_id, type, ts, payload, kafka_topic, kafka_partition, kafka_offset, ingested_at FROM events WHERE " + rangeC1 + " ORDER BY event_id",
		"SELECT date_trunc('minute', ts) AS m, sum(amount), count(*), min(event_id), max(event_id) FROM orders WHERE " + rangeC1 + " GROUP BY 1 ORDER BY 1",
	}
	var answersC []string
	for _, q := range queriesC {
		answersC = append(answersC, l.answer(q))
	}
	// The open partitions: the hours of phase C's event times.
	openDirs := map[string]bool{}
	for h := startC1.Add(-3 * time.Minute).Truncate(time.Hour); h.Before(time.Now()); h = h.Add(time.Hour) {
		openDirs["ts_hour="+h.Format("2006-01-02-15")] = true
	}
	// openFiles reports the most files of one size tier in an open
	// partition (tiers as docs/MAINTENANCE.md gives them: 8x apart, the
	// first below 32 KiB), and every open partition's file sizes.
	openFiles := func() (most int, desc string) {
		for dir, files := range l.liveFiles("orders_raw") {
			if !openDirs[dir] {
				continue
			}
			tiers := map[int]int{}
			desc += fmt.Sprintf(" %s:", dir)
			for _, f := range files {
				st, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				tier := 0
				for lim := int64(32 << 10); st.Size() >= lim; lim *= 8 {
					tier++
				}
				tiers[tier]++
				most = max(most, tiers[tier])
				desc += fmt.Sprintf(" %d", st.Size())
			}
		}
		return most, desc
	}
	openBefore, _ := openFiles()
	comp = th.Start(t, "compact", append(maintEnv(), "EVENTLAKE_COMPACTOR_INTERVAL=300ms"),
		"compact", "--config", l.config, "--data-dir", l.dir, "--http", "127.0.0.1:0")
	l.produce(seedC2, nC2, 1000, startC2, stepC2)
	l.waitRows("events", nA+nB+nC1+nC2)
	// The daemon keeps every size tier of an open partition below
	// open_merge_files (8) files.
	th.Eventually(t, 60*time.Second, "open partitions merged", func() (bool, string) {
		most, desc := openFiles()
		return most > 0 && most < 8, desc
	})
	// A labelled counter appears when first counted: absent is 0, which
	// fails the check.
	merged := metricOrZero(t, comp, `eventlake_compactor_open_files_merged_total{table="orders_raw"}`)
	if err := comp.Stop(30 * time.Second); err != nil {
		t.Fatalf("compactor daemon: %v\n%s", err, comp.Log())
	}
	if merged == 0 {
		t.Fatal("the daemon merged no file of an open partition while ingest wrote to it")
	}
	_, after := openFiles()
	t.Logf("open partitions: at most %d files of a tier before the daemon started; file sizes after:%s; %v open files merged", openBefore, after, merged)
	l.waitServes("orders_raw")
	l.waitServes("inventory_raw")
	for i, q := range queriesC {
		if got := l.answer(q); got != answersC[i] {
			t.Errorf("query %q over the open hour answers differently after merging:\nbefore %s\nafter  %s", q, head2(answersC[i]), head2(got))
		}
	}

	// A last pass compacts what phase B's final commits added; the open
	// partitions keep their tiers.
	out := l.maintain("rewrite")
	t.Logf("final compaction: %s", out)
	for _, name := range []string{"orders_raw", "inventory_raw"} {
		for dir, files := range l.mustLiveFiles(name) {
			if len(files) > 2 && !openDirs[dir] {
				t.Errorf("%s partition %s has %d files after compaction", name, dir, len(files))
			}
		}
	}
	l.waitServes("orders_raw")
	l.waitServes("inventory_raw")
	for i, q := range queries {
		if got := l.answer(q); got != answers[i] {
			t.Errorf("query %q answers differently after compaction:\nbefore %s\nafter  %s", q, head2(answers[i]), head2(got))
		}
	}
	if got := l.revenue(startA.Add(-time.Hour), boundary); got != revA {
		t.Errorf("revenue endpoint answers differently after compaction:\nbefore %s\nafter  %s", head2(revA), head2(got))
	}

	// Exactly once, after compaction and concurrent commits.
	assertSameSet(t, "orders_raw", tableStrings(t, l.catalog, "orders_raw", "event_id"), slices.Concat(wantA.orders, wantB.orders, wantC1.orders, wantC2.orders))
	assertSameSet(t, "inventory_raw", tableStrings(t, l.catalog, "inventory_raw", "event_id"), slices.Concat(wantA.inventory, wantB.inventory, wantC1.inventory, wantC2.inventory))
	var stored int64
	for _, name := range []string{"orders_raw", "inventory_raw"} {
		stored += storedOffsets(t, l.catalog, name).Total()
	}
	if stored != nA+nB+nC1+nC2 {
		t.Fatalf("raw tables store offsets covering %d records, %d were produced", stored, nA+nB+nC1+nC2)
	}
	// Ingest never noticed: no batch fenced, no commit failed; it only
	// re-committed on top of the compactor's snapshots.
	devMetrics := httpGet(t, l.api+"/metrics")
	for _, line := range strings.Split(devMetrics, "\n") {
		if (strings.HasPrefix(line, "eventlake_ingest_batches_fenced_total") || strings.HasPrefix(line, "eventlake_ingest_commit_errors_total")) &&
			!strings.HasSuffix(line, " 0") {
			t.Errorf("ingest was disturbed by compaction: %s", line)
		}
	}
	t.Logf("ingest: %s", grepLines(devMetrics, "eventlake_ingest_commit_conflicts_total"))
	// Compaction snapshots carry the offsets themselves.
	tbl, err := l.catalog.LoadTable(context.Background(), "orders_raw")
	if err != nil {
		t.Fatal(err)
	}
	// The newest compaction in the current history (ingest may have
	// committed after it: the final pass finds nothing to do when the
	// daemon already compacted all but the last files).
	md := tbl.Metadata()
	var compaction *table.Snapshot
	for snap := md.CurrentSnapshot(); snap != nil; {
		if snap.Summary != nil && snap.Summary.Properties[lake.SummaryTask] == "compact" {
			compaction = snap
			break
		}
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = md.SnapshotByID(*snap.ParentSnapshotID)
	}
	if compaction == nil {
		t.Fatal("no compaction snapshot in the history of orders_raw")
	}
	if compaction.Summary.Properties[lake.SummaryOffsets] == "" {
		t.Fatalf("compaction snapshot %d of orders_raw carries no offsets: %v", compaction.SnapshotID, compaction.Summary.Properties)
	}
	if err := l.dev.Stop(30 * time.Second); err != nil {
		t.Fatalf("dev: %v", err)
	}
}

// filesRemoved sums files_removed over a `compact --json` report.
func filesRemoved(t *testing.T, report string) int {
	t.Helper()
	var rs []struct {
		FilesRemoved int `json:"files_removed"`
	}
	if err := json.Unmarshal([]byte(report), &rs); err != nil {
		t.Fatalf("compact report: %v\n%s", err, report)
	}
	n := 0
	for _, r := range rs {
		n += r.FilesRemoved
	}
	return n
}

func countFiles(m map[string][]string) int {
	n := 0
	for _, f := range m {
		n += len(f)
	}
	return n
}

func head2(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}

// referencedFiles lists every file the table's metadata references: the
// current and previous metadata files, and for every retained snapshot its
// manifest list, manifests and live data files.
func referencedFiles(t *testing.T, tbl *table.Table) map[string]bool {
	t.Helper()
	fsys, err := tbl.FS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ref := map[string]bool{localPath(tbl.MetadataLocation()): true}
	for e := range tbl.Metadata().PreviousFiles() {
		ref[localPath(e.MetadataFile)] = true
	}
	for _, s := range tbl.Metadata().Snapshots() {
		ref[localPath(s.ManifestList)] = true
		mans, err := s.Manifests(fsys)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mans {
			ref[localPath(m.FilePath())] = true
			for e, err := range m.Entries(fsys, true) {
				if err != nil {
					t.Fatal(err)
				}
				ref[localPath(e.DataFile().FilePath())] = true
			}
		}
	}
	return ref
}

func localPath(loc string) string {
	p, _ := lake.LocalPath(loc)
	return p
}

// filesUnder lists the regular files below dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// TestRetentionTieringExpiryOrphans runs retention, compaction, tiering,
// snapshot expiry and orphan cleanup on five days of events and checks
// each: exactly the partitions past retention are dropped, tiered files
// live in the cold location and answer the same queries, afterwards
// storage holds only files the retained snapshots and metadata reference,
// and time travel to every retained snapshot reads.
func TestRetentionTieringExpiryOrphans(t *testing.T) {
	coldDir := filepath.Join(t.TempDir(), "cold")
	l := startMaintLake(t, fmt.Sprintf(`compactor:
  snapshot_retain_last: 2
  cold_location: %s
  tables:
    orders_raw: {retention: 72h, tier_after: 24h}
    inventory_raw: {tier_after: 24h}
`, coldDir))
	now := time.Now().UTC()
	start := now.Add(-5 * 24 * time.Hour).Truncate(time.Hour)
	const perRound = 1200
	step := 5 * 24 * time.Hour / perRound
	for i := range 3 {
		l.produce(21+i, perRound, 0, start.Add(time.Duration(i)*time.Minute), step)
		l.waitRows("events", perRound*(i+1))
	}
	hourly := "SELECT date_trunc('hour', ts) AS h, count(*), sum(amount) FROM orders GROUP BY 1 ORDER BY 1"
	dump := "SELECT event_id, amount, ts, user_id FROM orders ORDER BY event_id"
	invDump := "SELECT event_id, stock, ts FROM inventory ORDER BY event_id"

	// A dry run changes nothing.
	snapBefore := currentSnapshot(t, l.catalog, "orders_raw")
	var dry []struct {
		Task         string `json:"task"`
		Table        string `json:"table"`
		FilesRemoved int    `json:"files_removed"`
		DryRun       bool   `json:"dry_run"`
	}
	if err := json.Unmarshal([]byte(l.maintain("once", "--dry-run")), &dry); err != nil {
		t.Fatal(err)
	}
	planned := 0
	for _, r := range dry {
		if !r.DryRun {
			t.Fatalf("dry run report not marked dry: %+v", r)
		}
		planned += r.FilesRemoved
	}
	if planned == 0 || currentSnapshot(t, l.catalog, "orders_raw") != snapBefore {
		t.Fatalf("dry run planned %d file changes and moved orders_raw from %d to %d", planned, snapBefore, currentSnapshot(t, l.catalog, "orders_raw"))
	}

	// Orphans as failed commits leave them: a data file, a manifest and a
	// metadata file no snapshot references, older than the margin.
	tblDir := filepath.Join(l.dir, "warehouse", "lake.db", "orders_raw")
	var orphans []string
	for _, part := range l.mustLiveFiles("orders_raw") {
		b, err := os.ReadFile(part[0])
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(filepath.Dir(part[0]), "00000-orphan-of-a-failed-commit.parquet")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		orphans = append(orphans, p)
		break
	}
	for _, name := range []string{"99999-orphan.metadata.json", "orphan-m0.avro", "snap-1-orphan.avro"} {
		p := filepath.Join(tblDir, "metadata", name)
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		orphans = append(orphans, p)
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, p := range orphans {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}

	// Retention: exactly the hours that ended more than 72 h ago go.
	hoursBefore := hourCounts(t, l, hourly)
	t0 := time.Now()
	l.maintain("retention")
	t1 := time.Now()
	l.waitServes("orders_raw")
	hoursAfter := hourCounts(t, l, hourly)
	dropped := 0
	for h, row := range hoursBefore {
		end := h.Add(time.Hour)
		got, kept := hoursAfter[h]
		switch {
		case end.Add(72 * time.Hour).Before(t0):
			if kept {
				t.Errorf("hour %s ended before the retention limit but is still there", h)
			}
			dropped++
		case !end.Add(72 * time.Hour).Before(t1):
			if !kept || got != row {
				t.Errorf("hour %s is within retention but changed: before %q after %q", h, row, got)
			}
		}
	}
	if dropped == 0 || len(hoursAfter) == 0 {
		t.Fatalf("retention dropped %d of %d hours; the test data does not straddle the limit", dropped, len(hoursBefore))
	}
	for h := range hoursAfter {
		if _, ok := hoursBefore[h]; !ok {
			t.Errorf("hour %s appeared after retention", h)
		}
	}
	t.Logf("retention dropped %d of %d hours of orders_raw", dropped, len(hoursBefore))

	// Compaction and tiering: old partitions end up in the cold location,
	// one sorted file each, and every answer is unchanged.
	answers := []string{l.answer(hourly), l.answer(dump), l.answer(invDump)}
	l.maintain("rewrite")
	l.maintain("tier")
	l.waitServes("orders_raw")
	l.waitServes("inventory_raw")
	for i, q := range []string{hourly, dump, invDump} {
		if got := l.answer(q); got != answers[i] {
			t.Errorf("%q answers differently after compaction and tiering:\nbefore %s\nafter  %s", q, head2(answers[i]), head2(got))
		}
	}
	cold, warm := 0, 0
	for _, name := range []string{"orders_raw", "inventory_raw"} {
		for dir, files := range l.mustLiveFiles(name) {
			h, err := time.Parse("2006-01-02-15", strings.TrimPrefix(dir, "ts_hour="))
			if err != nil {
				t.Fatalf("partition directory %q: %v", dir, err)
			}
			due := h.Add(time.Hour).Add(24 * time.Hour).Before(time.Now())
			for _, f := range files {
				inCold := strings.HasPrefix(f, coldDir+"/lake/"+name+"/data/")
				switch {
				case due && !inCold:
					t.Errorf("%s: %s is older than tier_after but not tiered: %s", name, dir, f)
				case !due && inCold && h.Add(25*time.Hour).Before(time.Now().Add(-time.Minute)):
					t.Errorf("%s: %s is younger than tier_after but tiered", name, dir)
				}
				if inCold {
					cold++
				} else {
					warm++
				}
			}
		}
	}
	if cold == 0 || warm == 0 {
		t.Fatalf("%d files tiered, %d warm: the data should have both", cold, warm)
	}

	// Expiry and orphan cleanup: afterwards storage holds exactly what the
	// retained snapshots and metadata reference.
	time.Sleep(1100 * time.Millisecond) // past the test's 1 s snapshot_min_age
	l.maintain("expire")
	l.maintain("orphans")
	for _, p := range orphans {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("orphan %s still exists (%v)", p, err)
		}
	}
	for _, name := range []string{"orders_raw", "inventory_raw", "dlq"} {
		tbl, err := l.catalog.LoadTable(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		ref := referencedFiles(t, tbl)
		stored := append(filesUnder(t, filepath.Join(l.dir, "warehouse", "lake.db", name)), filesUnder(t, filepath.Join(coldDir, "lake", name))...)
		var extra []string
		have := map[string]bool{}
		for _, p := range stored {
			have[p] = true
			if !ref[p] {
				extra = append(extra, p)
			}
		}
		var missing []string
		for p := range ref {
			if !have[p] {
				missing = append(missing, p)
			}
		}
		sort.Strings(extra)
		if len(extra) > 0 || len(missing) > 0 {
			t.Errorf("%s: %d stored files are not referenced (e.g. %v); %d referenced files are missing (e.g. %v)",
				name, len(extra), head(extra), len(missing), head(missing))
		}
		// Time travel: every retained snapshot still reads.
		snaps := tbl.Metadata().Snapshots()
		if name == "orders_raw" && len(snaps) < 2 {
			t.Errorf("%s keeps %d snapshots, snapshot_retain_last is 2", name, len(snaps))
		}
		for _, s := range snaps {
			at, err := tbl.Scan(table.WithSnapshotID(s.SnapshotID)).ToArrowTable(context.Background())
			if err != nil {
				t.Fatalf("%s: time travel to snapshot %d: %v", name, s.SnapshotID, err)
			}
			want, _ := strconv.ParseInt(s.Summary.Properties["total-records"], 10, 64)
			if at.NumRows() != want {
				t.Errorf("%s snapshot %d: read %d rows, its summary says %d", name, s.SnapshotID, at.NumRows(), want)
			}
			at.Release()
		}
	}
	l.waitServes("orders_raw")
	if got := l.answer(dump); got != answers[1] {
		t.Errorf("answers changed after expiry and orphan cleanup")
	}
}

func currentSnapshot(t *testing.T, cat *lake.Catalog, name string) int64 {
	t.Helper()
	tbl, err := cat.LoadTable(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tbl.CurrentSnapshot().SnapshotID
}

// hourCounts maps each hour of an hourly query to the rest of its row.
func hourCounts(t *testing.T, l *maintLake, q string) map[time.Time]string {
	t.Helper()
	r := th.SQL(t, l.api, q)
	out := map[time.Time]string{}
	for _, row := range r.Rows {
		h, err := time.Parse(time.RFC3339, fmt.Sprint(row[0]))
		if err != nil {
			t.Fatalf("hour %v: %v", row[0], err)
		}
		out[h] = fmt.Sprint(row[1:])
	}
	return out
}

// TestEraseUser erases one user's events and checks, by reading every
// Parquet file left under the warehouse directly, that none holds the
// user's id any more; that every other answer is unchanged; and that the
// erasure is in the erasure log.
func TestEraseUser(t *testing.T) {
	const victim, other = "u-erase-7f3a", "u-keep-7f3a"
	l := startMaintLake(t, "compactor:\n  target_file_size: 134217728\n")
	now := time.Now().UTC()
	start := now.Add(-4 * time.Hour).Truncate(time.Hour)
	l.produce(31, 3000, 0, start, 2*time.Hour/3000)
	l.waitRows("events", 3000) // the victim's events come in later commits

	// The victim's events: orders (typed user_id), an inventory update
	// whose payload names the user, and a malformed message quoting the
	// id; the other user's look alike and must stay.
	var ndjson bytes.Buffer
	victimOrders := 0
	for i := range 12 {
		for _, u := range []string{victim, other} {
			ts := start.Add(time.Duration(i) * 10 * time.Minute).Add(time.Duration(len(u)) * time.Second)
			fmt.Fprintf(&ndjson, `{"event_id":"gdpr-%s-%d","source":"shop","type":"order.created","timestamp":%q,"payload":{"order_id":"o-%s-%d","user_id":%q,"product_id":"p-1","quantity":1,"amount":"%d.25"}}`+"\n",
				u, i, ts.Format(time.RFC3339), u, i, u, 10+i)
			if u == victim {
				victimOrders++
			}
		}
	}
	for _, u := range []string{victim, other} {
		fmt.Fprintf(&ndjson, `{"event_id":"gdpr-inv-%s","source":"shop","type":"inventory.updated","timestamp":%q,"payload":{"product_id":"p-1","stock":3,"reserved_for":{"user_id":%q}}}`+"\n",
			u, start.Add(time.Hour).Format(time.RFC3339), u)
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.ndjson"), filepath.Join(dir, "bad.ndjson")
	if err := os.WriteFile(good, ndjson.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"event_id":"gdpr-bad-1","payload":{"user_id":"`+victim+`"`+"\n"+
		`{"event_id":"gdpr-bad-2","payload":{"user_id":"`+other+`"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.run(nil, "produce", "--brokers", l.broker, "--rate", "0", "--file", good)
	l.run(nil, "produce", "--brokers", l.broker, "--rate", "0", "--file", bad, "--topic", "orders.created")
	l.waitRows("events", 3000+2*12+2)
	l.waitRows("dlq", 2)
	// Some files compacted (written by the compactor), some as ingest
	// wrote them: erasure handles both.
	if n := filesRemoved(t, l.maintain("rewrite", "--tables", "orders_raw")); n == 0 {
		t.Fatal("compaction rewrote no file of orders_raw; erasure would not meet compacted files")
	}

	others := []string{
		"SELECT event_id, user_id, amount, ts, payload FROM orders_raw WHERE user_id <> '" + victim + "' ORDER BY event_id",
		"SELECT event_id, payload, stock FROM inventory_raw WHERE payload NOT LIKE '%" + victim + "%' ORDER BY event_id",
		"SELECT reason, raw, kafka_offset FROM dlq WHERE kafka_offset NOT IN (SELECT kafka_offset FROM dlq WHERE contains(CAST(raw AS VARCHAR), '" + victim + "')) ORDER BY kafka_offset",
	}
	var before []string
	for _, q := range others {
		before = append(before, l.answer(q))
	}
	if got := l.answer("SELECT count(*) FROM orders WHERE user_id = '" + victim + "'"); !strings.Contains(got, strconv.Itoa(victimOrders)) {
		t.Fatalf("the victim's orders are not all in the lake before erasure: %s", got)
	}

	// The exact revenue figure of the range, before: the read models count
	// the victim's orders.
	revURL := fmt.Sprintf("%s/v1/metrics/order_revenue_minute?from=%s&to=%s", l.api,
		start.Format(time.RFC3339), start.Add(3*time.Hour).Format(time.RFC3339))
	revTotal := func() (int64, string) {
		var r struct {
			Rows []struct {
				Revenue    string `json:"revenue"`
				OrderCount int64  `json:"order_count"`
			} `json:"rows"`
		}
		th.GetJSON(t, revURL, &r)
		var n int64
		cents := new(big.Rat)
		for _, row := range r.Rows {
			n += row.OrderCount
			v, _ := new(big.Rat).SetString(row.Revenue)
			cents.Add(cents, v)
		}
		return n, cents.FloatString(2)
	}
	ordersBefore, _ := revTotal()

	// A dry run reports and changes nothing.
	snap := currentSnapshot(t, l.catalog, "orders_raw")
	var rep eraseReport
	erase := []string{"erase", "--config", l.config, "--data-dir", l.dir, "--user-id", victim, "--requested-by", "dpo@example.com", "--json"}
	if err := json.Unmarshal([]byte(l.run(maintEnv(), append(erase, "--dry-run")...)), &rep); err != nil {
		t.Fatal(err)
	}
	if currentSnapshot(t, l.catalog, "orders_raw") != snap {
		t.Fatal("a dry-run erasure changed orders_raw")
	}
	if err := json.Unmarshal([]byte(l.run(maintEnv(), erase...)), &rep); err != nil {
		t.Fatal(err)
	}
	rows := map[string]int64{}
	for _, tr := range rep.Tables {
		rows[tr.Table] = tr.Rows
		if tr.Rows > 0 && (tr.SnapshotsExpired == 0 || tr.FilesDeleted == 0) {
			t.Errorf("%s: erased %d rows but expired %d snapshots and deleted %d files", tr.Table, tr.Rows, tr.SnapshotsExpired, tr.FilesDeleted)
		}
	}
	if rows["orders_raw"] != int64(victimOrders) || rows["inventory_raw"] != 1 || rows["dlq"] != 1 {
		t.Fatalf("erased rows by table = %v, want orders_raw %d, inventory_raw 1, dlq 1", rows, victimOrders)
	}

	// No Parquet file under the warehouse holds the id, in any column,
	// but the audit log's: it records who asked (this test's own queries
	// name the victim) and is exempt from erasure.
	files := 0
	for _, p := range filesUnder(t, filepath.Join(l.dir, "warehouse")) {
		if !strings.HasSuffix(p, ".parquet") || strings.Contains(p, "/"+lake.TableAuditLog+"/") {
			continue
		}
		files++
		if where := parquetContains(t, p, victim); where != "" {
			t.Errorf("%s still holds %q in %s", p, victim, where)
		}
	}
	if files == 0 {
		t.Fatal("no Parquet file found under the warehouse")
	}

	// The read models were re-aggregated for the affected minutes: the
	// exact revenue API no longer counts the victim's orders, and agrees
	// with SQL over the erased raw table.
	want := l.answer(fmt.Sprintf("SELECT count(*), sum(amount) FROM orders WHERE ts >= TIMESTAMPTZ '%s' AND ts < TIMESTAMPTZ '%s'",
		start.Format("2006-01-02 15:04:05+00"), start.Add(3*time.Hour).Format("2006-01-02 15:04:05+00")))
	th.Eventually(t, 30*time.Second, "read models re-aggregated", func() (bool, string) {
		n, sum := revTotal()
		return n == ordersBefore-int64(victimOrders) && strings.Contains(want, sum),
			fmt.Sprintf("API %d orders, %s; before %d; SQL %s", n, sum, ordersBefore, want)
	})

	// Everyone else's data is unchanged.
	l.waitServes("orders_raw")
	l.waitServes("inventory_raw")
	l.waitServes("dlq")
	for i, q := range others {
		if got := l.answer(q); got != before[i] {
			t.Errorf("%q changed by the erasure:\nbefore %s\nafter  %s", q, head2(before[i]), head2(got))
		}
	}

	// The audit record: who, when, which tables, how many rows, and the
	// snapshot after the erasure, for both stages.
	logTbl, err := l.catalog.LoadTable(context.Background(), "erasure_log")
	if err != nil {
		t.Fatal(err)
	}
	at, err := logTbl.Scan().ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	recs := arrowRows(t, at)
	stages := map[string]int{}
	for _, r := range recs {
		if r["erasure_id"] != rep.ErasureID || r["requested_by"] != "dpo@example.com" || r["subject_sha256"] != rep.SubjectSHA256 {
			t.Errorf("erasure log row does not describe this erasure: %v", r)
		}
		if r["table_name"] == "orders_raw" {
			stages[r["stage"]]++
			if r["rows_removed"] != strconv.Itoa(victimOrders) {
				t.Errorf("erasure log: orders_raw rows_removed %s, want %d", r["rows_removed"], victimOrders)
			}
			if r["snapshot_id"] != strconv.FormatInt(rep.snapshotAfter(t, "orders_raw"), 10) {
				t.Errorf("erasure log: orders_raw snapshot_id %s is not the snapshot after erasure", r["snapshot_id"])
			}
		}
		if strings.Contains(fmt.Sprint(r), victim) {
			t.Errorf("the erasure log stores the erased id itself: %v", r)
		}
	}
	if stages["erased"] != 1 || stages["purged"] != 1 {
		t.Fatalf("erasure log stages for orders_raw = %v, want one erased and one purged", stages)
	}
}

// eraseReport is the JSON `eventlake erase --json` prints.
type eraseReport struct {
	ErasureID     string `json:"erasure_id"`
	SubjectSHA256 string `json:"subject_sha256"`
	Tables        []struct {
		Table            string `json:"table"`
		Rows             int64  `json:"rows_removed"`
		FilesRewritten   int    `json:"files_rewritten"`
		SnapshotAfter    int64  `json:"snapshot_after"`
		SnapshotsExpired int    `json:"snapshots_expired"`
		FilesDeleted     int    `json:"files_deleted"`
	} `json:"tables"`
}

func (r eraseReport) snapshotAfter(t *testing.T, name string) int64 {
	t.Helper()
	for _, tr := range r.Tables {
		if tr.Table == name {
			return tr.SnapshotAfter
		}
	}
	t.Fatalf("no erasure report for %s", name)
	return 0
}

// parquetContains reads every column of a Parquet file directly (not
// through the table) and names the first column holding needle in a
// string or binary value, or returns "".
func parquetContains(t *testing.T, path, needle string) string {
	t.Helper()
	r, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer r.Close()
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer tbl.Release()
	n := []byte(needle)
	for i := 0; i < int(tbl.NumCols()); i++ {
		col := tbl.Column(i)
		for _, ch := range col.Data().Chunks() {
			for j := 0; j < ch.Len(); j++ {
				if ch.IsNull(j) {
					continue
				}
				var v []byte
				switch a := ch.(type) {
				case *array.String:
					v = []byte(a.Value(j))
				case *array.Binary:
					v = a.Value(j)
				case *array.LargeString:
					v = []byte(a.Value(j))
				default:
					v = []byte(ch.ValueStr(j))
				}
				if bytes.Contains(v, n) {
					return col.Name()
				}
			}
		}
	}
	return ""
}

// arrowRows renders the rows of an Arrow table as column -> value text.
func arrowRows(t *testing.T, at arrow.Table) []map[string]string {
	t.Helper()
	var out []map[string]string
	for i := 0; i < int(at.NumCols()); i++ {
		col := at.Column(i)
		row := 0
		for _, ch := range col.Data().Chunks() {
			for j := 0; j < ch.Len(); j++ {
				if len(out) <= row {
					out = append(out, map[string]string{})
				}
				out[row][col.Name()] = ch.ValueStr(j)
				row++
			}
		}
	}
	return out
}

// TestMaintenanceS3 runs tiering, compaction, expiry and an erasure on a
// lake whose warehouse is S3 (versitygw): tiering copies objects on the
// server into the cold prefix with the cold storage class, the rewrite
// engine stages files through the table's FileIO and uploads with the
// storage class, and expiry deletes objects.
func TestMaintenanceS3(t *testing.T) {
	s3 := th.StartS3(t)
	// Every process reaches S3 through a proxy that records the storage
	// class each request asks for: versitygw accepts storage classes but
	// reports every object as STANDARD.
	px := th.StartHTTPFaultProxy(t, s3.Endpoint)
	px.RecordHeader("X-Amz-Storage-Class")
	cold := s3.Warehouse("cold")
	l := startMaintLake(t, fmt.Sprintf(`compactor:
  snapshot_retain_last: 1
  cold_location: %s
  cold_storage_class: STANDARD_IA
  tables:
    orders_raw: {tier_after: 1h}
`, cold), append(s3.Env("maint"), "EVENTLAKE_CATALOG_S3_ENDPOINT="+px.URL)...)
	now := time.Now().UTC()
	start := now.Add(-4 * time.Hour).Truncate(time.Hour)
	for i := range 3 {
		l.produce(41+i, 1000, 0, start.Add(time.Duration(i)*time.Second), 2*time.Hour/1000)
		l.waitRows("events", 1000*(i+1))
	}
	dump := "SELECT event_id, user_id, amount, ts, payload FROM orders_raw ORDER BY event_id"
	before := l.answer(dump)
	coldPrefix := cold + "/lake/orders_raw/data/"
	checkCold := func(step string, wantMax int) {
		t.Helper()
		classes := px.Recorded()
		for dir, files := range l.mustLiveFiles("orders_raw") {
			if len(files) > wantMax {
				t.Errorf("%s: partition %s has %d files", step, dir, len(files))
			}
			for _, f := range files {
				if !strings.HasPrefix(f, coldPrefix) {
					t.Fatalf("%s: %s is not in the cold location %s", step, f, coldPrefix)
				}
				if class := classes["PUT /"+strings.TrimPrefix(f, "s3://")]; class != "STANDARD_IA" {
					t.Fatalf("%s: %s was written with storage class %q, want STANDARD_IA", step, f, class)
				}
			}
		}
	}

	// Tiering first: every partition is past tier_after; objects are
	// copied on the server.
	var tier []struct {
		FilesAdded int `json:"files_added"`
	}
	if err := json.Unmarshal([]byte(l.maintain("tier")), &tier); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, r := range tier {
		moved += r.FilesAdded
	}
	if moved == 0 {
		t.Fatal("nothing tiered on S3")
	}
	l.waitServes("orders_raw")
	if got := l.answer(dump); got != before {
		t.Fatalf("answers changed after tiering on S3")
	}
	checkCold("after tiering", 1<<30)

	// Compaction of cold partitions reads and writes in the cold prefix.
	if n := filesRemoved(t, l.maintain("rewrite")); n == 0 {
		t.Fatal("nothing compacted on S3")
	}
	l.waitServes("orders_raw")
	if got := l.answer(dump); got != before {
		t.Fatalf("answers changed after compaction on S3")
	}
	checkCold("after compaction", 2)

	// A cold location in another bucket is refused with a clear error:
	// iceberg-go's S3 FileIO could not rewrite or expire files there.
	cmd := th.Command(t, "compact", "tier", "--config", l.config, "--data-dir", l.dir)
	cmd.Env = append(append(append(cmd.Env, l.env...), maintEnv()...), "EVENTLAKE_COMPACTOR_COLD_LOCATION=s3://another-bucket/cold")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "use a prefix of the table's bucket") {
		t.Fatalf("tiering into another bucket: err %v, output %s", err, tailString(string(out), 2000))
	}
	time.Sleep(1100 * time.Millisecond)
	var exp []struct {
		Table        string `json:"table"`
		FilesDeleted int    `json:"files_deleted"`
	}
	out := l.maintain("expire")
	if err := json.Unmarshal([]byte(out), &exp); err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for _, r := range exp {
		deleted += r.FilesDeleted
	}
	if deleted == 0 {
		t.Fatalf("expiry deleted no object from S3: %s", out)
	}
	var rep eraseReport
	victim := tableStrings(t, l.catalog, "orders_raw", "user_id")[0]
	if err := json.Unmarshal([]byte(l.run(maintEnv(), "erase", "--config", l.config, "--data-dir", l.dir,
		"--user-id", victim, "--requested-by", "dpo@example.com", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	for _, id := range tableStrings(t, l.catalog, "orders_raw", "user_id") {
		if id == victim {
			t.Fatalf("user %s still in orders_raw after erasure on S3", victim)
		}
	}
}
