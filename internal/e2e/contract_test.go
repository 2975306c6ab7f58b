package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventlake/eventlake/demo"
	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/schema"
)

// TestEnvelopeContract produces, with kcat, every input that did lasting
// harm before the envelope contract was hardened, between good orders,
// into a running `eventlake dev`; then checks that each bad input is in
// the dead-letter table with its own reason and that nothing after it is
// harmed: the read models keep committing (and /readyz says so), the
// revenue API and SQL over the orders count exactly the good orders,
// /v1/windows answers with the watermark where the good events put it,
// and JSON functions over every payload of the table work.
func TestEnvelopeContract(t *testing.T) {
	kcat := th.Kcat(t)
	dir := t.TempDir()
	dev := th.Start(t, "dev", []string{
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=200ms",
		"EVENTLAKE_QUERY_REFRESH_INTERVAL=100ms",
		"EVENTLAKE_STREAMER_COMMIT_INTERVAL=300ms",
		"EVENTLAKE_STREAMER_ALLOWED_LATENESS=1m",
	}, "dev", "--no-demo", "--data-dir", filepath.Join(dir, "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	broker, api := dev.Ready["kafka"], "http://"+dev.Ready["http"]

	// Good orders in the last minutes (event time close to now, so the
	// watermark they make is the real one).
	now := time.Now().UTC().Truncate(time.Second)
	good := func(i int) []byte {
		e := schema.Envelope{EventID: fmt.Sprintf("good-%d", i), Source: "shop", Type: demo.TypeOrderCreated,
			Timestamp: now.Add(-time.Duration(60-i) * time.Second),
			Payload:   fmt.Appendf(nil, `{"order_id":"o-%d","user_id":"u-%d","product_id":"p-1","quantity":1,"amount":"1.%02d"}`, i, i%3, i)}
		return e.AppendJSON(nil)
	}
	ts := now.Add(-30 * time.Second).Format(time.RFC3339)
	order := func(id, payload string, extra ...string) string {
		return `{"event_id":"` + id + `","source":"shop","type":"order.created","timestamp":"` + ts + `","payload":` + payload + strings.Join(extra, "") + `}`
	}
	okPayload := `{"order_id":"o","user_id":"u","product_id":"p","quantity":1,"amount":"1.00"}`
	bad := []struct {
		name   string
		value  string
		reason schema.Reason
	}{
		{"an amount that overflowed the read model's sum", order("h1", `{"order_id":"o","user_id":"u","product_id":"p","quantity":1,"amount":9999999999999999.99}`), schema.ReasonSchema},
		{"year 9999", strings.Replace(order("h2", okPayload), ts, "9999-12-31T23:59:59Z", 1), schema.ReasonFutureTime},
		{"year 2100", strings.Replace(order("h3", okPayload), ts, "2100-01-01T00:00:00Z", 1), schema.ReasonFutureTime},
		{"a lone surrogate in the payload", order("h4", `{"order_id":"o\ud800","user_id":"u","product_id":"p","quantity":1,"amount":"1.00"}`), schema.ReasonLoneSurrogate},
		{"duplicate keys", order("h5", `{"order_id":"o","user_id":"u","product_id":"p","quantity":1,"amount":999999.00,"amount":1.00}`), schema.ReasonDuplicateKey},
		{"a 700 KB event_id", order(strings.Repeat("x", 700<<10), okPayload), schema.ReasonIDTooLong},
		{"NUL inside an id", order(`h6\u0000`, okPayload), schema.ReasonNULCharacter},
		{"a control character in an id", order(`h7\n`, okPayload), schema.ReasonBadIdentifier},
		{"quantity -5", order("h8", `{"order_id":"o","user_id":"u","product_id":"p","quantity":-5,"amount":"1.00"}`), schema.ReasonSchema},
		{"type ORDER.CREATED", strings.Replace(order("h9", okPayload), `"order.created"`, `"ORDER.CREATED"`, 1), schema.ReasonUnknownType},
		{"an event before 1970", strings.Replace(order("h10", okPayload), ts, "1969-07-20T20:17:40Z", 1), schema.ReasonTooOld},
	}
	var buf bytes.Buffer
	const goodN = 40
	for i := range goodN {
		fmt.Fprintf(&buf, "k%d\t%s\n", i, good(i))
		if i < len(bad) {
			fmt.Fprintf(&buf, "bad%d\t%s\n", i, bad[i].value)
		}
	}
	f := filepath.Join(dir, "orders.txt")
	if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// Each line is one message (kcat's default 1 MB limit is raised for
	// the 700 KB id).
	runKcat(t, kcat, nil, "-b", broker, "-t", demo.TopicOrders, "-P", "-K", "\t", "-l", "-X", "message.max.bytes=2000000", f)

	th.Eventually(t, 60*time.Second, "good orders and dead letters in the lake", func() (bool, string) {
		r, code := th.TrySQL(t, api, "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM dlq)")
		if code != 200 || len(r.Rows) != 1 {
			return false, fmt.Sprintf("HTTP %d %s", code, r.Error)
		}
		return fmt.Sprint(r.Rows[0]) == fmt.Sprintf("[%d %d]", goodN, len(bad)), fmt.Sprint(r.Rows[0])
	})

	// Each bad input is a dead letter with its own reason.
	r := th.SQL(t, api, "SELECT reason, count(*) FROM dlq GROUP BY 1 ORDER BY 1")
	want := map[string]int{}
	for _, b := range bad {
		want[string(b.reason)]++
	}
	got := map[string]int{}
	for _, row := range r.Rows {
		var n int
		fmt.Sscan(fmt.Sprint(row[1]), &n)
		got[fmt.Sprint(row[0])] = n
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dead letters by reason %v, want %v", got, want)
	}
	r = th.SQL(t, api, "SELECT subject, schema_version, field FROM dlq WHERE reason = 'schema_violation' ORDER BY field")
	if fmt.Sprint(r.Rows) != "[[order.created 1 /amount] [order.created 1 /quantity]]" {
		t.Fatalf("schema violations name the subject, version and field: %v", r.Rows)
	}

	// Nothing after them is harmed. The lake's orders are the good ones,
	// JSON functions work over every payload of the table.
	r = th.SQL(t, api, "SELECT count(*), sum(amount), count(DISTINCT payload->>'order_id') FROM orders_raw WHERE type = 'order.created'")
	var sum int
	for i := range goodN {
		sum += 100 + i
	}
	if w := fmt.Sprintf("[%d %d.%02d %d]", goodN, sum/100, sum%100, goodN); fmt.Sprint(r.Rows[0]) != w {
		t.Fatalf("orders: %v, want %s", r.Rows[0], w)
	}
	r = th.SQL(t, api, "SELECT count(*) FROM orders_raw WHERE json_valid(payload) AND (payload->>'amount') IS NOT NULL")
	if fmt.Sprint(r.Rows[0][0]) != fmt.Sprint(goodN) {
		t.Fatalf("JSON over the raw table's payloads: %v", r.Rows)
	}

	// The read models commit the good orders (and keep committing), and
	// the revenue API counts exactly them.
	th.Eventually(t, 30*time.Second, "the read model to commit every good order", func() (bool, string) {
		r, code := th.TrySQL(t, api, "SELECT coalesce(sum(order_count), 0), coalesce(sum(revenue), 0) FROM order_revenue_minute")
		if code != 200 {
			return false, fmt.Sprintf("HTTP %d %s", code, r.Error)
		}
		return fmt.Sprint(r.Rows[0]) == fmt.Sprintf("[%d %d.%02d]", goodN, sum/100, sum%100), fmt.Sprint(r.Rows[0])
	})
	var rev struct {
		Rows []struct {
			Revenue    string `json:"revenue"`
			OrderCount int    `json:"order_count"`
		} `json:"rows"`
	}
	url := fmt.Sprintf("%s/v1/metrics/order_revenue_minute?from=%s&to=%s", api, now.Add(-time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	if code := th.GetJSON(t, url, &rev); code != 200 {
		t.Fatalf("revenue API: HTTP %d", code)
	}
	n := 0
	for _, row := range rev.Rows {
		n += row.OrderCount
	}
	if n != goodN {
		t.Fatalf("revenue API counts %d orders, want %d", n, goodN)
	}

	// Windows answer, with the watermark where the good events put it
	// (not in year 2100 or 9999), and no good event counted late.
	var win struct {
		Watermark  string            `json:"watermark"`
		LateEvents int64             `json:"late_events"`
		Open       []json.RawMessage `json:"open"`
	}
	for _, spec := range []string{"1m", "5m", "5m_every_1m"} {
		if code := th.GetJSON(t, api+"/v1/windows?spec="+spec, &win); code != 200 {
			t.Fatalf("/v1/windows?spec=%s: HTTP %d", spec, code)
		}
		wm, err := time.Parse(time.RFC3339Nano, win.Watermark)
		if err != nil || wm.After(now) || wm.Before(now.Add(-5*time.Minute)) {
			t.Fatalf("spec %s: watermark %q (%v), want within the last minutes", spec, win.Watermark, err)
		}
		if win.LateEvents != 0 {
			t.Fatalf("spec %s: %d late events, want 0", spec, win.LateEvents)
		}
	}

	// The hot tier is ready and its read-model committer keeps up.
	code, ready, body := th.GetReadiness(t, api)
	if code != 200 || ready.Status != "ready" || len(ready.Components) == 0 {
		t.Fatalf("/readyz: HTTP %d %s", code, body)
	}
	for _, c := range []string{"hot_tier", "read_models"} {
		if !strings.Contains(body, `"component":"`+c+`","ready":true`) {
			t.Fatalf("/readyz does not report %s ready: %s", c, body)
		}
	}
	if err := dev.Stop(30 * time.Second); err != nil {
		t.Fatalf("dev did not shut down cleanly: %v", err)
	}
}
