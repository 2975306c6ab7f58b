package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventlake/eventlake/demo"
	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/schema"
)

// badMessage is a malformed message and the reason it must be filed under.
type badMessage struct {
	name   string
	value  []byte
	null   bool // send a Kafka tombstone (NULL value)
	reason schema.Reason
}

// TestDevEndToEnd starts the real `eventlake dev --no-demo` on free ports,
// produces a known set of events with kcat (an independent librdkafka
// client) including duplicates, late events and every malformed kind, and
// checks what the HTTP API returns: exact counts, exact decimal revenue per
// minute, and every malformed message in the dead-letter table with its
// reason.
func TestDevEndToEnd(t *testing.T) {
	kcat := th.Kcat(t)
	dir := t.TempDir()
	dev := th.Start(t, "dev", []string{
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=300ms",
		"EVENTLAKE_INGEST_MAX_MESSAGE_BYTES=4096",
		"EVENTLAKE_QUERY_REFRESH_INTERVAL=200ms",
		"EVENTLAKE_INGEST_DLQ_TOPIC=events.dlq",
	}, "dev", "--no-demo", "--data-dir", filepath.Join(dir, "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	broker, api := dev.Ready["kafka"], "http://"+dev.Ready["http"]

	// Known events: 1,500 from the seeded generator (orders and inventory,
	// 5% late) ...
	start := time.Date(2026, 11, 26, 9, 58, 30, 0, time.UTC)
	g := demo.New(demo.Config{Seed: 99, Start: start, Step: 100 * time.Millisecond, LateFraction: 0.05, InventoryFraction: 0.2})
	type sent struct {
		topic string
		key   string
		value []byte
	}
	var msgs []sent
	var orders, inventory []string
	cents := map[int64]int64{}
	count := map[int64]int{}
	late := 0
	for range 1500 {
		m := g.Next()
		msgs = append(msgs, sent{m.Topic, string(m.Key), bytes.Clone(m.Value)})
		switch m.Kind {
		case demo.KindOrder:
			orders = append(orders, m.EventID)
			min := m.TsMicros / 60_000_000
			cents[min] += m.AmountCents
			count[min]++
		case demo.KindInventory:
			inventory = append(inventory, m.EventID)
		}
		if m.Late {
			late++
		}
	}
	if late == 0 {
		t.Fatal("the generator produced no late events; the test would not cover them")
	}
	// ... 40 producer retries of already sent orders (same event, new offset) ...
	dups := 0
	for i := 0; dups < 40; i++ {
		if msgs[i].topic == demo.TopicOrders {
			msgs = append(msgs, msgs[i])
			dups++
		}
	}
	// ... and every kind of malformed input.
	okTs := start.Format(time.RFC3339)
	bad := []badMessage{
		{"not json", []byte("order 42 created, amount=12.50"), false, schema.ReasonNotJSON},
		{"invalid utf-8", []byte{'{', '"', 'a', 0xff, 0xfe, '"', ':', '1', '}'}, false, schema.ReasonInvalidUTF8},
		{"empty", []byte{}, false, schema.ReasonEmpty},
		{"tombstone", nil, true, schema.ReasonEmpty},
		{"array", []byte(`[{"event_id":"x"}]`), false, schema.ReasonNotObject},
		{"missing event_id", []byte(`{"source":"s","type":"order.created","timestamp":"` + okTs + `","payload":{}}`), false, schema.ReasonMissingEventID},
		{"empty event_id", []byte(`{"event_id":"","source":"s","type":"order.created","timestamp":"` + okTs + `","payload":{}}`), false, schema.ReasonMissingEventID},
		{"bad timestamp", []byte(`{"event_id":"b1","source":"s","type":"order.created","timestamp":"26/11/2026 10:00","payload":{}}`), false, schema.ReasonBadTimestamp},
		{"wrong payload field type", []byte(`{"event_id":"b2","source":"s","type":"order.created","timestamp":"` + okTs + `","payload":{"order_id":"o","user_id":"u","product_id":"p","quantity":"two","amount":"1.50"}}`), false, schema.ReasonSchema},
		{"amount with 3 decimals", []byte(`{"event_id":"b3","source":"s","type":"order.created","timestamp":"` + okTs + `","payload":{"order_id":"o","user_id":"u","product_id":"p","quantity":1,"amount":1.005}}`), false, schema.ReasonSchema},
		{"payload not an object", []byte(`{"event_id":"b4","source":"s","type":"order.created","timestamp":"` + okTs + `","payload":"{}"}`), false, schema.ReasonBadPayload},
		{"oversize", []byte(`{"event_id":"b5","source":"s","type":"x","timestamp":"` + okTs + `","payload":{"pad":"` + strings.Repeat("x", 5000) + `"}}`), false, schema.ReasonOversize},
	}

	// Produce with kcat: one file per topic, key and value separated by a
	// tab; NULL values through a second kcat call with -Z.
	byTopic := map[string]*bytes.Buffer{}
	for _, m := range msgs {
		if byTopic[m.topic] == nil {
			byTopic[m.topic] = &bytes.Buffer{}
		}
		fmt.Fprintf(byTopic[m.topic], "%s\t%s\n", m.key, m.value)
	}
	for i, b := range bad {
		if b.null {
			continue
		}
		fmt.Fprintf(byTopic[demo.TopicOrders], "bad-%d\t%s\n", i, b.value)
	}
	for topic, buf := range byTopic {
		f := filepath.Join(dir, topic+".txt")
		if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		runKcat(t, kcat, nil, "-b", broker, "-t", topic, "-P", "-K", "\t", "-l", f)
	}
	runKcat(t, kcat, []byte("tomb\t\n"), "-b", broker, "-t", demo.TopicOrders, "-P", "-K", "\t", "-Z")

	// Wait for everything to be committed and visible.
	th.Eventually(t, 60*time.Second, "all events and dead letters visible", func() (bool, string) {
		r, code := th.TrySQL(t, api, "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM dlq)")
		if code != 200 || len(r.Rows) != 1 {
			return false, fmt.Sprintf("HTTP %d %s", code, r.Error)
		}
		// The hot tier shows events before ingest commits them, and the
		// dead letters are committed before the raw tables: wait for the
		// raw tables' snapshots too.
		ev, dl := fmt.Sprint(r.Rows[0][0]), fmt.Sprint(r.Rows[0][1])
		committed := r.SnapshotID["orders_raw"] != 0 && r.SnapshotID["inventory_raw"] != 0
		return ev == fmt.Sprint(len(orders)+len(inventory)) && dl == fmt.Sprint(len(bad)) && committed,
			fmt.Sprintf("events=%s dlq=%s snapshots=%v", ev, dl, r.SnapshotID)
	})

	// Exact counts: every event once, duplicates dropped.
	r := th.SQL(t, api, "SELECT count(*), count(DISTINCT event_id) FROM orders")
	if got := fmt.Sprint(r.Rows[0]); got != fmt.Sprintf("[%d %d]", len(orders), len(orders)) {
		t.Fatalf("orders count, distinct = %s, want %d each", got, len(orders))
	}
	r = th.SQL(t, api, "SELECT count(*), count(DISTINCT event_id) FROM events WHERE type = 'inventory.updated'")
	if got := fmt.Sprint(r.Rows[0]); got != fmt.Sprintf("[%d %d]", len(inventory), len(inventory)) {
		t.Fatalf("inventory count, distinct = %s, want %d each", got, len(inventory))
	}
	if r.SnapshotID["orders_raw"] == 0 {
		t.Fatalf("SQL answer names no snapshot of orders_raw: %v", r.SnapshotID)
	}

	// Exact decimal revenue per minute from the metrics endpoint.
	var resp struct {
		Rows []struct {
			Minute     string `json:"minute"`
			Revenue    string `json:"revenue"`
			OrderCount int    `json:"order_count"`
		} `json:"rows"`
	}
	from, to := start.Add(-5*time.Minute), start.Add(10*time.Minute)
	url := fmt.Sprintf("%s/v1/metrics/order_revenue_minute?from=%s&to=%s", api, from.Format(time.RFC3339), to.Format(time.RFC3339))
	if code := th.GetJSON(t, url, &resp); code != 200 {
		t.Fatalf("revenue endpoint HTTP %d", code)
	}
	var wantMinutes []int64
	for m := range cents {
		wantMinutes = append(wantMinutes, m)
	}
	slices.Sort(wantMinutes)
	if len(resp.Rows) != len(wantMinutes) {
		t.Fatalf("revenue endpoint returned %d minutes, want %d", len(resp.Rows), len(wantMinutes))
	}
	for i, m := range wantMinutes {
		row := resp.Rows[i]
		wantMinute := time.UnixMicro(m * 60_000_000).UTC().Format(time.RFC3339)
		wantRevenue := decimal2(cents[m])
		if row.Minute != wantMinute || row.Revenue != wantRevenue || row.OrderCount != count[m] {
			t.Errorf("minute %d: got (%s, %s, %d), want (%s, %s, %d)", i, row.Minute, row.Revenue, row.OrderCount, wantMinute, wantRevenue, count[m])
		}
	}

	// Every malformed message is in the dead-letter table, byte for byte,
	// with its reason.
	r = th.SQL(t, api, "SELECT reason, raw, size FROM dlq ORDER BY kafka_offset")
	type dl struct {
		reason string
		raw    []byte
		null   bool
	}
	var got []dl
	for _, row := range r.Rows {
		d := dl{reason: fmt.Sprint(row[0]), null: row[1] == nil}
		if !d.null {
			b, err := base64.StdEncoding.DecodeString(fmt.Sprint(row[1]))
			if err != nil {
				t.Fatalf("dlq raw is not base64: %v", err)
			}
			d.raw = b
		}
		got = append(got, d)
	}
	for _, b := range bad {
		found := false
		for i, d := range got {
			if d.reason == string(b.reason) && d.null == b.null && bytes.Equal(d.raw, b.value) {
				got = append(got[:i], got[i+1:]...)
				found = true
				break
			}
		}
		if !found {
			t.Errorf("malformed message %q (reason %s) not found in dlq", b.name, b.reason)
		}
	}
	if len(got) != 0 {
		t.Errorf("unexpected dlq rows: %+v", got)
	}

	// The dead letters were also copied to the dead-letter topic, with the
	// reason in a header; read them back with kcat.
	th.Eventually(t, 20*time.Second, "dead letters on the dead-letter topic", func() (bool, string) {
		cmd := exec.Command(kcat, "-b", broker, "-t", "events.dlq", "-C", "-e", "-q", "-o", "beginning", "-f", "%h\n")
		out, err := cmd.Output()
		if err != nil {
			return false, err.Error()
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		reasons := map[string]int{}
		for _, l := range lines {
			for _, h := range strings.Split(l, ",") {
				if r, ok := strings.CutPrefix(h, "eventlake.reason="); ok {
					reasons[r]++
				}
			}
		}
		want := map[string]int{}
		for _, b := range bad {
			want[string(b.reason)]++
		}
		return fmt.Sprint(reasons) == fmt.Sprint(want), fmt.Sprintf("got %v want %v", reasons, want)
	})

	// The read-only SQL endpoint refuses writes with a clear 4xx.
	for _, q := range []string{"DROP TABLE orders", "INSERT INTO t VALUES (1)", "SELECT * FROM read_csv('/etc/passwd')", "ATTACH 'x.db'"} {
		r, code := th.TrySQL(t, api, q)
		if code < 400 || code >= 500 || r.Error == "" {
			t.Errorf("%q: HTTP %d %q, want a 4xx with a message", q, code, r.Error)
		}
	}

	// /metrics reports DLQ counts by reason and consumer lag.
	out := httpGet(t, api+"/metrics")
	for _, want := range []string{`eventlake_ingest_dlq_total{reason="oversize"} 1`, `eventlake_ingest_duplicates_dropped_total{topic="orders.created"} 40`, "eventlake_ingest_consumer_lag_records"} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Ctrl-C drains and exits cleanly.
	if err := dev.Stop(30 * time.Second); err != nil {
		t.Fatalf("dev did not shut down cleanly: %v", err)
	}
}

func runKcat(t *testing.T, kcat string, stdin []byte, args ...string) {
	t.Helper()
	cmd := exec.Command(kcat, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat %v: %v\n%s", args, err, out)
	}
}

func decimal2(cents int64) string {
	r := new(big.Rat).SetFrac64(cents, 100)
	return r.FloatString(2)
}
