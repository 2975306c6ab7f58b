package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestIngestMemoryBudget replays 30 days of history: 300,000 events whose
// event times are 8.6 s apart, so that one batch (the backlog, read at
// once) touches all 721 hour partitions of the raw tables, the fan-out
// that used to hold an open file and a builder per partition (5.6 GiB for
// a million such events). An ingest process with ingest.memory_limit
// must stay within it (its own process_resident_memory_bytes, sampled
// while it works) and commit every event exactly once.
func TestIngestMemoryBudget(t *testing.T) {
	const (
		total  = 300_000
		seed   = 61
		limit  = 512 << 20
		budget = "512MiB"
	)
	start := time.Date(2026, 10, 27, 0, 0, 0, 0, time.UTC)
	step := 30 * 24 * time.Hour / total
	dir := t.TempDir()
	brk := th.Start(t, "broker", nil, "broker", "--data-dir", filepath.Join(dir, "broker"),
		"--listen", "127.0.0.1:0", "--topics", "orders.created:6,inventory.updated:3")
	addr := brk.Ready["kafka"]
	if out, err := runBinary(t, "produce", "--brokers", addr, "--rate", "0", "--count", strconv.Itoa(total), "--seed", strconv.Itoa(seed),
		"--start", start.Format(time.RFC3339), "--step", step.String(), "--malformed-fraction", "0", "--late-fraction", "0.05"); err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}

	lakeDir := filepath.Join(dir, "lake")
	// Batches are cut by the budget, not the clock: with the default 2 s
	// flush interval a loaded machine commits the backlog in batches too
	// small to reach the budget (0 early closes in 4 of 15 runs), and the
	// budget would go untested. 20 s is ten times what a batch needs to
	// reach it here, and keeps the wait for the last batch short.
	ing := th.Start(t, "ingest", []string{"EVENTLAKE_INGEST_MEMORY_LIMIT=" + budget, "EVENTLAKE_INGEST_FLUSH_INTERVAL=20s"},
		"ingest", "--brokers", addr, "--data-dir", lakeDir, "--http", "127.0.0.1:0")
	want := groundTruth(seed, total, start, step, 0)
	cat := openLake(t, lakeDir)
	var peak float64
	samples := 0
	th.Eventually(t, 3*time.Minute, "ingest to commit the 30 days", func() (bool, string) {
		peak = max(peak, metric(t, ing, "process_resident_memory_bytes"))
		samples++
		o, in := tableRowCount(t, cat, "orders_raw"), tableRowCount(t, cat, "inventory_raw")
		return o >= int64(len(want.orders)) && in >= int64(len(want.inventory)),
			fmt.Sprintf("orders %d/%d inventory %d/%d", o, len(want.orders), in, len(want.inventory))
	})
	parts := metric(t, ing, "eventlake_ingest_files_early_total")
	t.Logf("peak RSS %.0f MiB over %d samples (ingest.memory_limit %s); %v files closed early to stay within it",
		peak/(1<<20), samples, budget, parts)
	if peak > limit {
		t.Fatalf("ingest RSS reached %.0f MiB, ingest.memory_limit is %s", peak/(1<<20), budget)
	}
	if parts == 0 {
		t.Fatal("no file was closed early: the replay did not reach the budget, and the test did not exercise it")
	}
	if err := ing.Stop(30 * time.Second); err != nil {
		t.Fatalf("clean shutdown: %v\n%s", err, ing.Log())
	}
	assertSameSet(t, "orders_raw", tableStrings(t, cat, "orders_raw", "event_id"), want.orders)
	assertSameSet(t, "inventory_raw", tableStrings(t, cat, "inventory_raw", "event_id"), want.inventory)
	var stored int64
	for _, name := range []string{"orders_raw", "inventory_raw"} {
		stored += storedOffsets(t, cat, name).Total()
	}
	if stored != total {
		t.Fatalf("raw tables store offsets covering %d records, %d were produced", stored, total)
	}
}
