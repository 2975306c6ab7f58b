package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestHotColdExactness runs `eventlake dev` with commits every second,
// read-model re-aggregation every few seconds and raw-table compaction
// every second (rewrites of committed rows) while a producer sends orders (with late events, duplicates and malformed
// messages) at a steady rate, and polls the revenue API and SQL all along.
// Every answer names the offsets it covers; each one must equal the ground
// truth of exactly the events below those offsets: never a double count,
// never a gap.
func TestHotColdExactness(t *testing.T) {
	dir := t.TempDir()
	dev := th.Start(t, "dev", []string{
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=1s",
		"EVENTLAKE_STREAMER_COMMIT_INTERVAL=1s",
		"EVENTLAKE_STREAMER_REAGGREGATE_EVERY=3s",
		"EVENTLAKE_STREAMER_REAGGREGATE_LOOKBACK=10m",
		"EVENTLAKE_STREAMER_ALLOWED_LATENESS=30s",
		"EVENTLAKE_QUERY_REFRESH_INTERVAL=200ms",
		// Compaction rewrites the raw tables' files while they are queried.
		"EVENTLAKE_COMPACTOR_INTERVAL=1s",
		"EVENTLAKE_COMPACTOR_MAX_FILES_PER_PARTITION=4",
		"EVENTLAKE_COMPACTOR_MIN_INPUT_FILES=2",
	}, "dev", "--no-demo", "--data-dir", filepath.Join(dir, "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	broker, api := dev.Ready["kafka"], "http://"+dev.Ready["http"]

	const total = 20000
	prod := th.StartNoWait(t, "produce", nil, "produce", "--brokers", broker, "--rate", "2000", "--count", strconv.Itoa(total),
		"--seed", "11", "--start", "2026-11-26T10:00:00Z", "--step", "6ms",
		"--malformed-fraction", "0.01", "--duplicate-fraction", "0.02", "--late-fraction", "0.05")

	type revenueAnswer struct {
		Watermark map[string]map[string]int64 `json:"watermark"`
		Rows      []struct {
			Minute     string `json:"minute"`
			Revenue    string `json:"revenue"`
			OrderCount int64  `json:"order_count"`
		} `json:"rows"`
	}
	var (
		revenues []revenueAnswer
		sqls     []th.SQLResult
		counts   []th.SQLResult
	)
	revURL := api + "/v1/metrics/order_revenue_minute?from=2026-11-26T09:50:00Z&to=2026-11-26T10:10:00Z"
	poll := func() {
		var r revenueAnswer
		if code := th.GetJSON(t, revURL, &r); code == 200 {
			revenues = append(revenues, r)
		}
		if res, code := th.TrySQL(t, api, "SELECT kafka_partition, count(*), sum(amount) FROM orders GROUP BY 1"); code == 200 {
			sqls = append(sqls, res)
		}
		if res, code := th.TrySQL(t, api, "SELECT kafka_topic, count(*) FROM events GROUP BY 1"); code == 200 {
			counts = append(counts, res)
		}
	}
	for {
		poll()
		if done, err := prod.Exited(); done {
			if err != nil {
				t.Fatalf("producer: %v\n%s", err, prod.Log())
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Keep polling while the last commits and re-aggregations land.
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		poll()
		time.Sleep(50 * time.Millisecond)
	}
	if len(revenues) < 50 || len(sqls) < 50 {
		t.Fatalf("only %d revenue and %d SQL answers collected", len(revenues), len(sqls))
	}

	log := readLog(t, broker, 100_000, "orders.created", "inventory.updated")
	var orders []logEvent
	for _, e := range log {
		if e.topic == "orders.created" && e.isOrder {
			orders = append(orders, e)
		}
	}

	// Revenue API: per minute, the events below the answer's watermark.
	for i, r := range revenues {
		wm := r.Watermark["orders.created"]
		want := map[string][2]int64{}
		for _, e := range orders {
			if below(e, wm) {
				m := time.Unix(e.minute*60, 0).UTC()
				if m.Before(time.Date(2026, 11, 26, 9, 50, 0, 0, time.UTC)) || !m.Before(time.Date(2026, 11, 26, 10, 10, 0, 0, time.UTC)) {
					continue
				}
				k := m.Format(time.RFC3339)
				w := want[k]
				w[0] += e.cents
				w[1]++
				want[k] = w
			}
		}
		if len(r.Rows) != len(want) {
			t.Fatalf("revenue answer %d: %d minutes, ground truth below its watermark %v has %d", i, len(r.Rows), wm, len(want))
		}
		for _, row := range r.Rows {
			w := want[row.Minute]
			if row.Revenue != decimal2(w[0]) || row.OrderCount != w[1] {
				t.Fatalf("revenue answer %d, minute %s: (%s, %d), ground truth below %v is (%s, %d)",
					i, row.Minute, row.Revenue, row.OrderCount, wm, decimal2(w[0]), w[1])
			}
		}
	}
	// SQL over orders: per partition count and sum below the answer's offsets.
	for i, r := range sqls {
		off := offsetsOf(t, r.Offsets["orders_raw"], "orders.created")
		got := map[string][2]string{}
		for _, row := range r.Rows {
			got[fmt.Sprint(row[0])] = [2]string{fmt.Sprint(row[1]), fmt.Sprint(row[2])}
		}
		want := map[string][2]string{}
		per := map[string][2]int64{}
		for _, e := range orders {
			if below(e, off) {
				k := strconv.Itoa(int(e.partition))
				w := per[k]
				w[0]++
				w[1] += e.cents
				per[k] = w
			}
		}
		for k, w := range per {
			want[k] = [2]string{fmt.Sprint(w[0]), decimal2(w[1])}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("SQL answer %d over offsets %v: %v, ground truth %v", i, off, got, want)
		}
	}
	// SQL over events: every event of both topics below the offsets.
	for i, r := range counts {
		for _, row := range r.Rows {
			topic := fmt.Sprint(row[0])
			table := map[string]string{"orders.created": "orders_raw", "inventory.updated": "inventory_raw"}[topic]
			off := offsetsOf(t, r.Offsets[table], topic)
			n := 0
			for _, e := range log {
				if e.topic == topic && below(e, off) {
					n++
				}
			}
			if fmt.Sprint(row[1]) != strconv.Itoa(n) {
				t.Fatalf("events answer %d: %s has %v events, ground truth below %v is %d", i, topic, row[1], off, n)
			}
		}
	}
	// At the end everything is visible.
	last := revenues[len(revenues)-1]
	var sum int64
	for _, row := range last.Rows {
		sum += row.OrderCount
	}
	if sum != int64(len(orders)) {
		t.Fatalf("final revenue answer counts %d orders, the log holds %d", sum, len(orders))
	}
	// The run did cover rewrites of committed read-model rows: every
	// re-aggregation that replaced files forces a full reload.
	metrics := httpGet(t, api+"/metrics")
	reloads := 0
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, `eventlake_streamer_read_model_loads_total{kind="full",table="order_revenue_minute"}`) {
			f := strings.Fields(line)
			reloads, _ = strconv.Atoi(f[len(f)-1])
		}
	}
	if reloads < 2 {
		t.Fatalf("no re-aggregation rewrote the read model during the run (%d full loads); the test did not cover rewrites", reloads)
	}
	replaced := 0.0
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "eventlake_compactor_files_replaced_total") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			replaced += v
		}
	}
	if replaced == 0 {
		t.Fatal("the compactor rewrote no file during the run; the test did not cover compaction")
	}
	t.Logf("checked %d revenue answers, %d order SQL answers and %d event SQL answers against %d orders", len(revenues), len(sqls), len(counts), len(orders))
}

// offsetsOf extracts topic -> {"partition": offset} from an answer's
// offsets JSON.
func offsetsOf(t *testing.T, raw json.RawMessage, topic string) map[string]int64 {
	t.Helper()
	var m map[string]map[string]int64
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("offsets %s: %v", raw, err)
		}
	}
	if m[topic] == nil {
		return map[string]int64{}
	}
	return m[topic]
}
