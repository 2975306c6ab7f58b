package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/eventlake/eventlake/internal/failpoint"
	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/streamer"
)

// readModelRows reads order_revenue_minute directly (iceberg-go): minute
// -> list of (revenue, count) rows.
func readModelRows(t *testing.T, cat *lake.Catalog) map[string][]string {
	t.Helper()
	tbl, err := cat.LoadTable(context.Background(), lake.TableOrderRevenueMinute)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	if tbl.CurrentSnapshot() == nil {
		return out
	}
	at, err := tbl.Scan().ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	mc, rc, cc := at.Column(0).Data(), at.Column(1).Data(), at.Column(2).Data()
	for k := range mc.Chunks() {
		ms, rs, cs := mc.Chunk(k).(*array.Timestamp), rc.Chunk(k).(*array.Decimal128), cc.Chunk(k).(*array.Int64)
		for j := 0; j < ms.Len(); j++ {
			m := time.UnixMicro(int64(ms.Value(j))).UTC().Format("15:04")
			out[m] = append(out[m], fmt.Sprintf("%s/%d", decimal2(int64(rs.Value(j).LowBits())), cs.Value(j)))
		}
	}
	return out
}

// TestLateEventsAndBackfill: an order that arrives after the watermark
// closed its minute is left out of the event-time windows (and counted as
// late) but is in the lake; the exact revenue API counts it; `eventlake
// backfill` recomputes the minute from the raw events into one row that
// includes it, resumes after a kill, and is idempotent.
func TestLateEventsAndBackfill(t *testing.T) {
	kcat := th.Kcat(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	dev := th.Start(t, "dev", []string{
		"EVENTLAKE_STREAMER_ALLOWED_LATENESS=5s", "EVENTLAKE_STREAMER_COMMIT_INTERVAL=300ms",
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=300ms", "EVENTLAKE_STREAMER_REAGGREGATE_EVERY=-1s",
	}, "dev", "--no-demo", "--data-dir", data, "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	broker, api := dev.Ready["kafka"], "http://"+dev.Ready["http"]
	order := func(n int, ts, amount string) string {
		return fmt.Sprintf(`o%d	{"event_id":"e%d","source":"shop","type":"order.created","timestamp":"2026-11-26T%sZ","payload":{"order_id":"o%d","user_id":"u%d","product_id":"p1","quantity":1,"amount":%q}}`,
			n, n, ts, n, n, amount)
	}
	send := func(lines ...string) {
		runKcat(t, kcat, []byte(strings.Join(lines, "\n")+"\n"), "-b", broker, "-t", "orders.created", "-P", "-K", "\t", "-p", "0")
	}
	send(order(1, "10:00:10", "10.00"), order(2, "10:00:20", "20.00"), order(3, "10:01:30", "5.00"))
	// The watermark is now 10:01:25: minute 10:00 is closed.
	type windowsAnswer struct {
		Closed []struct {
			Start   time.Time `json:"start"`
			Revenue string    `json:"revenue"`
		} `json:"closed"`
		LateEvents int64 `json:"late_events"`
	}
	th.Eventually(t, 30*time.Second, "minute 10:00 closed", func() (bool, string) {
		var w windowsAnswer
		th.GetJSON(t, api+"/v1/windows?spec=1m", &w)
		return len(w.Closed) == 1 && w.Closed[0].Revenue == "30.00", fmt.Sprintf("%+v", w)
	})
	send(order(4, "10:00:40", "40.00")) // beyond the allowed lateness
	th.Eventually(t, 30*time.Second, "the late event counted", func() (bool, string) {
		var w windowsAnswer
		th.GetJSON(t, api+"/v1/windows?spec=1m", &w)
		return w.LateEvents == 1 && w.Closed[0].Revenue == "30.00", fmt.Sprintf("%+v", w)
	})
	revenue := func() map[string]string {
		var r struct {
			Rows []struct {
				Minute  string `json:"minute"`
				Revenue string `json:"revenue"`
			} `json:"rows"`
		}
		th.GetJSON(t, api+"/v1/metrics/order_revenue_minute?from=2026-11-26T10:00:00Z&to=2026-11-26T10:02:00Z", &r)
		m := map[string]string{}
		for _, row := range r.Rows {
			m[row.Minute[11:16]] = row.Revenue
		}
		return m
	}
	if got := revenue(); got["10:00"] != "70.00" || got["10:01"] != "5.00" {
		t.Fatalf("the exact revenue API left out the late event: %v", got)
	}
	// Wait for the read model and the raw table to hold all four orders.
	cat := openLake(t, data)
	th.Eventually(t, 30*time.Second, "read model and raw table committed", func() (bool, string) {
		rm := storedOffsets(t, cat, lake.TableOrderRevenueMinute)
		raw := storedOffsets(t, cat, "orders_raw")
		a, _ := rm.Get("orders.created", 0)
		b, _ := raw.Get("orders.created", 0)
		return a == 4 && b == 4, fmt.Sprintf("read model %d, raw %d", a, b)
	})

	// A backfill in one-minute chunks, killed after its first chunk ...
	args := []string{"backfill", "--data-dir", data, "--table", lake.TableOrderRevenueMinute,
		"--from", "2026-11-26T09:58:00Z", "--to", "2026-11-26T10:02:00Z", "--chunk", "1m"}
	cmd := th.Command(t, args...)
	cmd.Env = append(cmd.Env, failpoint.EnvVar+"="+streamer.FailAfterChunk+"=1")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("the backfill was not killed by its failpoint:\n%s", out)
	}
	// ... resumes after the chunk it committed ...
	out, err := runBinary(t, args...)
	if err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	if !strings.Contains(out, "3 chunks recomputed (1 already done)") {
		t.Fatalf("the backfill did not resume after the killed run's chunk:\n%s", out)
	}
	rows := readModelRows(t, cat)
	if fmt.Sprint(rows["10:00"]) != "[70.00/3]" || fmt.Sprint(rows["10:01"]) != "[5.00/1]" {
		t.Fatalf("read model after backfill: %v (want one row per minute, with the late event)", rows)
	}
	// ... and a second run of the same backfill changes nothing.
	if out, err := runBinary(t, args...); err != nil || !strings.Contains(out, "0 chunks recomputed (4 already done)") {
		t.Fatalf("repeat backfill: %v\n%s", err, out)
	}
	args[len(args)-1] = "2m" // a new backfill (other chunks) recomputes the same figures
	if out, err := runBinary(t, args...); err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	if rows := readModelRows(t, cat); fmt.Sprint(rows["10:00"]) != "[70.00/3]" || fmt.Sprint(rows["10:01"]) != "[5.00/1]" {
		t.Fatalf("read model after a second backfill: %v", rows)
	}
	// The hot tier followed the rewrite: the API is unchanged.
	th.Eventually(t, 10*time.Second, "API after the backfill", func() (bool, string) {
		got := revenue()
		return got["10:00"] == "70.00" && got["10:01"] == "5.00", fmt.Sprint(got)
	})
}
