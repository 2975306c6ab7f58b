package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/eventlake/eventlake/internal/failpoint"
	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/lake"
)

// TestCrashEveryCommitter kills, with SIGKILL from an armed failpoint, each
// committer of the lake at each step of the one commit protocol (before
// the commit: its files staged; after it: committed, nothing after it run)
// and checks that a clean run afterwards leaves the lake exactly as if
// nothing had happened: the compactor's rewrite and snapshot expiry, an
// erasure (each table's commit and the erasure log), the read-model
// committer of the hot tier, the schema change ingest commits when a new
// schema version arrives, a backfill, and the compactor's tiering and
// retention. Ingest's own commits are killed the same way in
// TestCrashExactlyOnce. Every armed failpoint must fire.
func TestCrashEveryCommitter(t *testing.T) {
	coldDir := filepath.Join(t.TempDir(), "cold")
	l := startMaintLake(t, fmt.Sprintf(`compactor:
  target_file_size: 134217728
  snapshot_retain_last: 1
  cold_location: %s
  tables:
    orders_raw: {tier_after: 1h, retention: 2h}
`, coldDir))
	now := time.Now().UTC()
	const (
		n    = 3000
		seed = 21
	)
	start := now.Add(-3 * time.Hour).Truncate(time.Hour)
	step := 2 * time.Hour / n
	want := groundTruth(seed, n, start, step, 0)
	l.produce(seed, n, 3000, start, step)
	l.waitRows("events", len(want.orders)+len(want.inventory))
	queries := []string{
		"SELECT count(*), count(DISTINCT event_id), sum(amount) FROM orders",
		"SELECT count(*), count(DISTINCT event_id), sum(stock) FROM inventory",
		"SELECT date_trunc('hour', ts) AS h, count(*), sum(amount) FROM orders GROUP BY 1 ORDER BY 1",
	}
	answers := func() []string {
		var out []string
		for _, q := range queries {
			out = append(out, l.answer(q))
		}
		return out
	}
	before := answers()
	same := func(what string) {
		t.Helper()
		for _, tn := range []string{"orders_raw", "inventory_raw"} {
			l.waitServes(tn)
		}
		if got := answers(); !slices.Equal(got, before) {
			t.Fatalf("after %s the answers changed:\n%v\nwant\n%v", what, got, before)
		}
	}

	// The compactor's rewrite: killed before and after its commit, then a
	// clean run finishes the job.
	for _, fp := range []string{lake.FailBeforeCommit + "/compact=1", lake.FailAfterCommit + "/compact=1"} {
		l.killedAt(fp, append([]string{"compact", "rewrite", "--config", l.config, "--data-dir", l.dir}, "--tables", "orders_raw")...)
		same("a rewrite killed at " + fp)
	}
	if files := filesRemoved(t, l.maintain("rewrite")); files == 0 && countFiles(l.mustLiveFiles("orders_raw")) > 3 {
		t.Fatalf("the clean rewrite after the crashes compacted nothing")
	}
	same("compaction")

	// Snapshot expiry: killed after its commit, before deleting the files
	// only expired snapshots referenced; orphan cleanup removes them.
	for _, fp := range []string{lake.FailBeforeCommit + "/expire=1", lake.FailAfterCommit + "/expire=1"} {
		time.Sleep(1100 * time.Millisecond) // > the test's snapshot_min_age: something to expire
		l.killedAt(fp, "compact", "expire", "--config", l.config, "--data-dir", l.dir, "--tables", "orders_raw")
		same("an expiry killed at " + fp)
	}
	time.Sleep(1100 * time.Millisecond) // > the test's orphan_min_age
	l.maintain("orphans")
	l.maintain("expire")
	assertOnlyReferenced(t, l, "orders_raw")
	same("expiry and orphan cleanup")

	// Erasure: killed before a table's commit, after it (one table erased,
	// the others and the erasure log not), and after the erasure log's
	// first record; a clean run completes it.
	victim := want.orderUsers[0]
	// The checks below pass only if there was something to erase: the
	// victim's orders are in the lake and the scan finds the id in a file.
	if got := l.answer("SELECT count(*) > 0 FROM orders WHERE user_id = '" + victim + "'"); !strings.Contains(got, "true") {
		t.Fatalf("the victim %s has no orders in the lake before the erasure: %s", victim, got)
	}
	tbl, err := l.catalog.LoadTable(context.Background(), "orders_raw")
	if err != nil {
		t.Fatal(err)
	}
	// The table's files, wherever they are (tiering may have moved them to
	// the cold location): how many there are and which hold the victim.
	victimFiles := func() (scanned int, holders []string) {
		for _, dir := range []string{localPath(tbl.Location()), coldDir} {
			for _, f := range filesUnder(t, dir) {
				if !strings.HasSuffix(f, ".parquet") {
					continue
				}
				scanned++
				if where := parquetContains(t, f, victim); where != "" {
					holders = append(holders, f+" ("+where+")")
				}
			}
		}
		return scanned, holders
	}
	if _, holders := victimFiles(); len(holders) == 0 {
		t.Fatalf("no Parquet file holds %s before the erasure; the purge check would pass on nothing", victim)
	}
	erase := []string{"erase", "--config", l.config, "--data-dir", l.dir, "--user-id", victim, "--requested-by", "dpo@example.com"}
	for _, fp := range []string{lake.FailBeforeCommit + "/erase=1", lake.FailAfterCommit + "/erase=1", lake.FailAfterCommit + "/erase-log-erased=1"} {
		l.killedAt(fp, erase...)
	}
	l.run(maintEnv(), erase...)
	if got := l.answer("SELECT count(*) FROM orders WHERE user_id = '" + victim + "'"); !strings.Contains(got, "[[0]]") {
		t.Fatalf("the victim's orders after a completed erasure: %s", got)
	}
	th.Eventually(t, 30*time.Second, "the erasure log to record the completed erasure", func() (bool, string) {
		r, code := th.TrySQL(t, l.api, "SELECT stage, count(*) FROM erasure_log GROUP BY 1 ORDER BY 1")
		return code == 200 && strings.Contains(fmt.Sprint(r.Rows), "purged"), fmt.Sprint(r.Rows)
	})
	// No file under the warehouse holds the victim's id any more: the
	// interrupted erasure's purge was completed by the clean run.
	scanned, holders := victimFiles()
	if len(holders) > 0 {
		t.Fatalf("files still hold the erased user %s: %v", victim, holders)
	}
	if scanned == 0 {
		t.Fatal("no Parquet file scanned")
	}

	// The read-model committer: the dev process (its hot tier commits the
	// read models) killed before and after a commit, then restarted clean;
	// the read model then counts every order exactly once.
	env := []string{"EVENTLAKE_STREAMER_COMMIT_INTERVAL=200ms"}
	for i, fp := range []string{lake.FailBeforeCommit + "/read-model=1", lake.FailAfterCommit + "/read-model=1"} {
		l.restartDev(append(env, failpoint.EnvVar+"="+fp)...)
		// Something to commit. The process (and its embedded broker) may
		// die while the producer sends: what was acknowledged counts.
		cmd := th.Command(t, "produce", "--brokers", l.broker, "--rate", "2000", "--count", "200", "--seed", fmt.Sprint(seed+1+i),
			"--start", now.Add(-30*time.Minute).Format(time.RFC3339), "--step", "100ms")
		_ = cmd.Run()
		l.awaitKilled("dev at " + fp)
	}
	l.restartDev(env...)
	// One query (one snapshot of both tables): the orders view would add
	// the hot tier's fresh rows, which neither table holds yet.
	th.Eventually(t, 60*time.Second, "the read model to count every order once", func() (bool, string) {
		r, code := th.TrySQL(t, l.api, `SELECT (SELECT sum(order_count) FROM order_revenue_minute), (SELECT count(*) FROM orders_raw WHERE type = 'order.created'),
			(SELECT sum(revenue) FROM order_revenue_minute), (SELECT sum(amount) FROM orders_raw WHERE type = 'order.created')`)
		if code != 200 {
			return false, fmt.Sprintf("HTTP %d %s", code, r.Error)
		}
		if row := r.Rows[0]; row[0] != nil && fmt.Sprint(row[0]) == fmt.Sprint(row[1]) && fmt.Sprint(row[2]) == fmt.Sprint(row[3]) {
			return true, ""
		}
		d, _ := th.TrySQL(t, l.api, `SELECT m, rm, lk, rrev, lrev FROM
			(SELECT minute AS m, sum(order_count) AS rm, sum(revenue) AS rrev FROM order_revenue_minute GROUP BY 1)
			FULL JOIN (SELECT date_trunc('minute', ts) AS m, count(*) AS lk, sum(amount) AS lrev FROM orders_raw WHERE type = 'order.created' GROUP BY 1) USING (m)
			WHERE rm IS DISTINCT FROM lk OR rrev IS DISTINCT FROM lrev ORDER BY m`)
		return false, fmt.Sprint("(orders, lake orders, revenue, lake revenue) ", r.Rows[0], "; minutes that differ: ", d.Rows)
	})

	// A schema change committed by ingest: order.created v2 adds a
	// property; the dev process is killed right after ingest commits the
	// new column, and its events land exactly once after a restart.
	rcl, err := sr.NewClient(sr.URLs(l.api), sr.BearerToken(th.Token(l.api)))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := rcl.SchemaByVersion(context.Background(), "order.created", 1)
	if err != nil {
		t.Fatal(err)
	}
	v2 := strings.Replace(v1.Schema.Schema, `"quantity":`, `"coupon":{"type":"string"},"quantity":`, 1)
	if _, err := rcl.CreateSchema(context.Background(), "order.created", sr.Schema{Schema: v2, Type: sr.TypeJSON}); err != nil {
		t.Fatal(err)
	}
	l.restartDev(append(env, failpoint.EnvVar+"="+lake.FailAfterCommit+"/schema=1", "EVENTLAKE_SCHEMA_REGISTRY_POLL_INTERVAL=100ms")...)
	var lines bytes.Buffer
	ts := now.Add(-time.Minute).Format(time.RFC3339)
	for i := range 10 {
		fmt.Fprintf(&lines, `{"event_id":"coupon-%d","source":"shop","type":"order.created","timestamp":%q,"payload":{"order_id":"oc-%d","user_id":"u-c","product_id":"p-1","quantity":1,"amount":"2.00","coupon":"X%d"}}`+"\n", i, ts, i, i)
	}
	f := filepath.Join(t.TempDir(), "coupons.ndjson")
	if err := os.WriteFile(f, lines.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The dev process may commit the new version's columns (and kill
	// itself there) as soon as it loads v2, before or while the events
	// are produced to its embedded broker; then they are produced again
	// after the restart (keyed by event id: a repeat is a duplicate in its
	// partition, dropped).
	produce := func() error {
		cmd := th.Command(t, "produce", "--brokers", l.broker, "--rate", "0", "--file", f, "--topic", "orders.created")
		cmd.Env = append(cmd.Env, l.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, tailString(string(out), 2000))
		}
		return nil
	}
	perr := produce()
	if exited, _ := l.dev.Exited(); perr != nil && !exited {
		t.Fatalf("produce v2 orders: %v", perr)
	}
	l.awaitKilled("dev at " + lake.FailAfterCommit + "/schema=1")
	l.restartDev(env...)
	if perr != nil {
		if err := produce(); err != nil {
			t.Fatalf("produce v2 orders after the restart: %v", err)
		}
	}
	th.Eventually(t, 60*time.Second, "v2 orders once, with their new column", func() (bool, string) {
		r, code := th.TrySQL(t, l.api, "SELECT count(*), count(DISTINCT event_id), count(coupon) FROM orders_raw WHERE event_id LIKE 'coupon-%'")
		if code != 200 {
			return false, fmt.Sprintf("HTTP %d %s", code, r.Error)
		}
		return fmt.Sprint(r.Rows[0]) == "[10 10 10]", fmt.Sprint(r.Rows[0])
	})

	// A backfill killed before and after a chunk's commit, then run again:
	// the read model still counts every order once.
	bf := []string{"backfill", "--config", l.config, "--data-dir", l.dir, "--table", "order_revenue_minute",
		"--from", start.Format(time.RFC3339), "--to", now.Truncate(time.Minute).Format(time.RFC3339)}
	for _, fp := range []string{lake.FailBeforeCommit + "/backfill=1", lake.FailAfterCommit + "/backfill=1"} {
		l.killedAt(fp, bf...)
	}
	l.run(nil, bf...)
	th.Eventually(t, 30*time.Second, "the read model after the backfills", func() (bool, string) {
		r, code := th.TrySQL(t, l.api, "SELECT (SELECT sum(order_count) FROM order_revenue_minute), (SELECT count(*) FROM orders)")
		if code != 200 {
			return false, fmt.Sprintf("HTTP %d %s", code, r.Error)
		}
		return r.Rows[0][0] != nil && fmt.Sprint(r.Rows[0][0]) == fmt.Sprint(r.Rows[0][1]), fmt.Sprint(r.Rows[0])
	})

	// Tiering: killed before and after moving a partition's files to the
	// cold location; a clean run moves the rest; the answers stay.
	for _, tn := range []string{"orders_raw", "inventory_raw"} {
		l.waitServes(tn)
	}
	before = answers()
	for _, fp := range []string{lake.FailBeforeCommit + "/tier=1", lake.FailAfterCommit + "/tier=1"} {
		l.killedAt(fp, "compact", "tier", "--config", l.config, "--data-dir", l.dir, "--tables", "orders_raw")
		same("tiering killed at " + fp)
	}
	l.maintain("tier")
	same("tiering")
	cold := 0
	for _, files := range l.mustLiveFiles("orders_raw") {
		for _, f := range files {
			if strings.Contains(f, "/cold/") {
				cold++
			}
		}
	}
	if cold == 0 {
		t.Fatal("no file of orders_raw in the cold location after tiering")
	}

	// Retention (2 h): the partition that ended more than two hours ago
	// is dropped, whether the run is killed before or after its commit.
	keep := start.Add(time.Hour).Format(time.RFC3339)
	wantKept := l.answer("SELECT count(*), count(DISTINCT event_id) FROM orders WHERE ts >= TIMESTAMPTZ '" + keep + "'")
	if wantKept == l.answer("SELECT count(*), count(DISTINCT event_id) FROM orders") {
		t.Fatal("every order is within retention; the retention checks would pass on nothing")
	}
	for _, fp := range []string{lake.FailBeforeCommit + "/retention=1", lake.FailAfterCommit + "/retention=1"} {
		l.killedAt(fp, "compact", "retention", "--config", l.config, "--data-dir", l.dir, "--tables", "orders_raw")
	}
	l.maintain("retention")
	l.waitServes("orders_raw")
	if got := l.answer("SELECT count(*), count(DISTINCT event_id) FROM orders"); got != wantKept {
		t.Fatalf("orders after retention: %s, want %s", got, wantKept)
	}

	if err := l.dev.Stop(30 * time.Second); err != nil {
		t.Fatalf("dev: %v", err)
	}
}

// killedAt runs a one-shot command with failpoint fp armed and requires
// that it is killed by it (SIGKILL, which nothing else sends).
func (l *maintLake) killedAt(fp string, args ...string) {
	l.t.Helper()
	cmd := th.Command(l.t, args...)
	cmd.Env = append(append(append(cmd.Env, l.env...), maintEnv()...), failpoint.EnvVar+"="+fp)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil || !strings.Contains(err.Error(), "signal: killed") {
		l.t.Fatalf("eventlake %s with failpoint %s: %v, want killed by the failpoint\n%s\n%s", args[0], fp, err,
			tailString(stdout.String(), 2000), tailString(stderr.String(), 4000))
	}
	l.t.Logf("eventlake %s killed at %s", args[0], fp)
}

// restartDev stops the dev process (unless it already exited, killed at
// an armed failpoint) and starts it again on the same data directory with
// env.
func (l *maintLake) restartDev(env ...string) {
	l.t.Helper()
	if l.dev != nil {
		if done, _ := l.dev.Exited(); !done {
			if err := l.dev.Stop(30 * time.Second); err != nil {
				l.t.Fatalf("dev: %v", err)
			}
		}
	}
	l.dev = th.Start(l.t, "dev", append([]string{
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=300ms",
		"EVENTLAKE_QUERY_REFRESH_INTERVAL=100ms",
		"EVENTLAKE_COMPACTOR_DISABLED=true",
	}, append(l.env, env...)...), "dev", "--no-demo", "--config", l.config, "--data-dir", l.dir, "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	l.broker, l.api = l.dev.Ready["kafka"], "http://"+l.dev.Ready["http"]
}

// awaitKilled waits for the dev process to kill itself at a failpoint.
func (l *maintLake) awaitKilled(what string) {
	l.t.Helper()
	th.Eventually(l.t, 60*time.Second, "failpoint of "+what, func() (bool, string) {
		done, _ := l.dev.Exited()
		return done, "not reached yet"
	})
	if _, err := l.dev.Exited(); err == nil || !strings.Contains(err.Error(), "signal: killed") {
		l.t.Fatalf("%s exited with %v, not at the failpoint\n%s", what, err, tailString(l.dev.Log(), 4000))
	}
	l.t.Logf("%s killed itself at its failpoint", what)
}

// assertOnlyReferenced checks that the table's directory holds only files
// its metadata references.
func assertOnlyReferenced(t *testing.T, l *maintLake, name string) {
	t.Helper()
	tbl, err := l.catalog.LoadTable(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	ref := referencedFiles(t, tbl)
	dir := localPath(tbl.Location())
	var stray []string
	for _, f := range filesUnder(t, dir) {
		if !ref[f] && !strings.HasSuffix(f, ".crc") {
			stray = append(stray, f)
		}
	}
	if len(stray) > 0 {
		t.Fatalf("%s: %d files not referenced after orphan cleanup, e.g. %v", name, len(stray), stray[:min(3, len(stray))])
	}
}
