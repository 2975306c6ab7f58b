package e2e

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventlake/eventlake/demo"
	"github.com/eventlake/eventlake/ingest"
	"github.com/eventlake/eventlake/internal/failpoint"
	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestCrashExactlyOnce kills the ingesting process with SIGKILL at random
// moments and at each point of the commit protocol while a producer runs
// steadily, restarts it every time, and checks that the lake ends up with
// every produced event exactly once and every malformed message exactly
// once in the dead-letter table.
func TestCrashExactlyOnce(t *testing.T) {
	const (
		total = 24_000
		rate  = 3000
		seed  = 42
	)
	dir := t.TempDir()
	brk := th.Start(t, "broker", nil, "broker", "--data-dir", filepath.Join(dir, "broker"),
		"--listen", "127.0.0.1:0", "--topics", "orders.created:6,inventory.updated:3")
	addr := brk.Ready["kafka"]
	lakeDir := filepath.Join(dir, "lake")

	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	prod := th.StartNoWait(t, "produce", nil, "produce", "--brokers", addr, "--rate", strconv.Itoa(rate),
		"--count", strconv.Itoa(total), "--seed", strconv.Itoa(seed), "--start", start.Format(time.RFC3339),
		"--step", "5ms", "--malformed-fraction", "0.01")

	ingestEnv := func(fp string) []string {
		// A static member id, as a restarted pod would have: the restart
		// takes the partitions back without waiting out the session.
		// Small batches (at most 1 MiB a poll, a commit past 500 rows), so
		// that a process that starts after the producer finished still
		// commits several times from the backlog and reaches its
		// failpoint: with the defaults a loaded machine read the rest of
		// the topic in one or two batches, and ingest-3 never reached
		// before-kafka-commit=4.
		env := []string{"EVENTLAKE_INGEST_FLUSH_INTERVAL=150ms", "EVENTLAKE_INGEST_FLUSH_ROWS=500", "EVENTLAKE_INGEST_FETCH_MAX_BYTES=1048576", "EVENTLAKE_LOG_LEVEL=info",
			"EVENTLAKE_INGEST_INSTANCE_ID=ingest-0", "EVENTLAKE_INGEST_SESSION_TIMEOUT=6s"}
		if fp != "" {
			env = append(env, failpoint.EnvVar+"="+fp)
		}
		return env
	}
	ingestArgs := []string{"ingest", "--brokers", addr, "--data-dir", lakeDir, "--http", "off"}

	// Every commit-protocol point once, then random kills.
	points := []string{ingest.FailBeforeCommit, ingest.FailAfterDLQCommit, ingest.FailAfterRawCommit, ingest.FailBeforeKafkaCommit}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10; i++ {
		fp := ""
		if i < len(points) {
			fp = fmt.Sprintf("%s=%d", points[i], 2+rng.IntN(3))
		}
		p := th.Start(t, fmt.Sprintf("ingest-%d", i), ingestEnv(fp), ingestArgs...)
		if fp != "" {
			// Every protocol point must be exercised: wait for the process
			// to kill itself there.
			th.Eventually(t, 60*time.Second, "failpoint "+fp, func() (bool, string) {
				done, _ := p.Exited()
				return done, "not reached yet"
			})
			// Nothing else sends SIGKILL: the failpoint did.
			if _, err := p.Exited(); err == nil || !strings.Contains(err.Error(), "signal: killed") {
				t.Fatalf("ingest-%d with failpoint %s exited with %v, not at the failpoint\n%s", i, fp, err, p.Log())
			}
			t.Logf("ingest-%d killed itself at %s", i, fp)
			continue
		}
		deadline := time.Now().Add(time.Duration(400+rng.IntN(1600)) * time.Millisecond)
		for time.Now().Before(deadline) {
			if done, _ := p.Exited(); done {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if done, err := p.Exited(); done {
			t.Fatalf("ingest-%d exited on its own: %v", i, err)
		}
		p.Kill()
	}

	// Let the producer finish, then one clean run that catches up.
	th.Eventually(t, 60*time.Second, "producer to finish", func() (bool, string) {
		done, err := prod.Exited()
		if done && err != nil {
			t.Fatalf("producer failed: %v\n%s", err, prod.Log())
		}
		return done, "running"
	})
	want := groundTruth(seed, total, start, 5*time.Millisecond, 0.01)
	final := th.Start(t, "ingest-final", ingestEnv(""), ingestArgs...)
	cat := openLake(t, lakeDir)
	th.Eventually(t, 60*time.Second, "ingest to catch up", func() (bool, string) {
		o, in, d := tableRowCount(t, cat, "orders_raw"), tableRowCount(t, cat, "inventory_raw"), tableRowCount(t, cat, "dlq")
		return o >= int64(len(want.orders)) && in >= int64(len(want.inventory)) && d >= int64(want.malformed),
			fmt.Sprintf("orders %d/%d inventory %d/%d dlq %d/%d", o, len(want.orders), in, len(want.inventory), d, want.malformed)
	})
	if err := final.Stop(30 * time.Second); err != nil {
		t.Fatalf("clean shutdown: %v\n%s", err, final.Log())
	}

	assertSameSet(t, "orders_raw", tableStrings(t, cat, "orders_raw", "event_id"), want.orders)
	assertSameSet(t, "inventory_raw", tableStrings(t, cat, "inventory_raw", "event_id"), want.inventory)
	if d := tableRowCount(t, cat, "dlq"); d != int64(want.malformed) {
		t.Fatalf("dlq holds %d rows, %d malformed messages were produced", d, want.malformed)
	}
	// Offsets stored in the lake cover every record produced.
	var stored int64
	for _, name := range []string{"orders_raw", "inventory_raw"} {
		stored += storedOffsets(t, cat, name).Total()
	}
	if stored != total {
		t.Fatalf("raw tables store offsets covering %d records, %d were produced", stored, total)
	}
}

type truth struct {
	orders, inventory []string
	orderUsers        []string // the user of each order, in the order of orders
	malformed         int
	ordersByMinute    map[int64]minuteTruth
}

type minuteTruth struct {
	cents int64
	count int
}

// groundTruth replays the generator exactly as `eventlake produce` does.
func groundTruth(seed uint64, n int, start time.Time, step time.Duration, malformed float64) truth {
	g := demo.New(demo.Config{Seed: seed, Start: start, Step: step, LateFraction: 0.05, InventoryFraction: 0.2, MalformedFraction: malformed})
	tr := truth{ordersByMinute: map[int64]minuteTruth{}}
	for range n {
		m := g.Next()
		switch m.Kind {
		case demo.KindOrder:
			tr.orders = append(tr.orders, m.EventID)
			tr.orderUsers = append(tr.orderUsers, m.UserID)
			min := m.TsMicros / 60_000_000
			mt := tr.ordersByMinute[min]
			mt.cents += m.AmountCents
			mt.count++
			tr.ordersByMinute[min] = mt
		case demo.KindInventory:
			tr.inventory = append(tr.inventory, m.EventID)
		case demo.KindMalformed:
			tr.malformed++
		}
	}
	return tr
}

func assertSameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	seen := map[string]int{}
	var dups []string
	for _, id := range got {
		seen[id]++
		if seen[id] == 2 {
			dups = append(dups, id)
		}
	}
	var missing []string
	for _, id := range want {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	wantSet := map[string]bool{}
	for _, id := range want {
		wantSet[id] = true
	}
	var extra []string
	for id := range seen {
		if !wantSet[id] {
			extra = append(extra, id)
		}
	}
	slices.Sort(dups)
	if len(dups) > 0 || len(missing) > 0 || len(extra) > 0 || len(got) != len(want) {
		t.Fatalf("%s: %d rows for %d events; %d duplicated (e.g. %v), %d missing (e.g. %v), %d unexpected (e.g. %v)",
			what, len(got), len(want), len(dups), head(dups), len(missing), head(missing), len(extra), head(extra))
	}
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}
