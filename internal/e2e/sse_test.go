package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventlake/eventlake/demo"
	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/schema"
)

type sseUpdate struct {
	id         uint64
	typ        string
	Seq        uint64 `json:"seq"`
	Minute     string `json:"minute"`
	Revenue    string `json:"revenue"`
	OrderCount int64  `json:"order_count"`
	Final      bool   `json:"final"`
	// A declared model's stream (GET /v1/models/{name}/stream).
	Model string         `json:"model"`
	Row   map[string]any `json:"row"`
}

// sseClient reads an SSE stream into a channel.
func sseClient(t *testing.T, ctx context.Context, url, lastID string) <-chan sseUpdate {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	th.Authorize(req)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseUpdate, 100_000)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var u sseUpdate
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				u.id, _ = strconv.ParseUint(strings.TrimPrefix(line, "id: "), 10, 64)
			case strings.HasPrefix(line, "event: "):
				u.typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &u)
			case line == "":
				if u.typ != "" {
					ch <- u
				}
				u = sseUpdate{}
			}
		}
	}()
	return ch
}

// waitHotTier waits until the hot tier of the process at api answers.
func waitHotTier(t *testing.T, api string) {
	t.Helper()
	th.Eventually(t, 30*time.Second, "hot tier ready", func() (bool, string) {
		req, _ := http.NewRequest(http.MethodGet, api+"/v1/metrics/order_revenue_minute?from=2026-11-26T00:00:00Z&to=2026-11-26T01:00:00Z", nil)
		th.Authorize(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
}

// TestLivePush: a client connected before a burst receives every update in
// order and ends with the API's figures; a client that disconnects and
// reconnects with Last-Event-ID misses nothing.
func TestLivePush(t *testing.T) {
	dir := t.TempDir()
	dev := th.Start(t, "dev", []string{"EVENTLAKE_STREAMER_COMMIT_INTERVAL=1s", "EVENTLAKE_INGEST_FLUSH_INTERVAL=1s"},
		"dev", "--no-demo", "--data-dir", filepath.Join(dir, "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	broker, api := dev.Ready["kafka"], "http://"+dev.Ready["http"]
	stream := api + "/v1/stream/order_revenue_minute"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waitHotTier(t, api)

	steady := sseClient(t, ctx, stream, "")
	rctx, rcancel := context.WithCancel(ctx)
	early := sseClient(t, rctx, stream, "")

	burst := func(seed int, start string) {
		out, err := runBinary(t, "produce", "--brokers", broker, "--rate", "3000", "--count", "3000", "--seed", strconv.Itoa(seed),
			"--start", start, "--step", "10ms", "--inventory-fraction", "0")
		if err != nil {
			t.Fatalf("produce: %v\n%s", err, out)
		}
	}
	burst(1, "2026-11-26T10:00:00Z")

	// The early client reads a little, then drops.
	var lastSeen uint64
	for i := 0; i < 5; i++ {
		select {
		case u := <-early:
			lastSeen = u.Seq
		case <-time.After(20 * time.Second):
			t.Fatal("no update reached the early client")
		}
	}
	rcancel()
	burst(2, "2026-11-26T10:00:30Z")

	final := func() map[string]sseUpdate {
		var r struct {
			Rows []struct {
				Minute     string `json:"minute"`
				Revenue    string `json:"revenue"`
				OrderCount int64  `json:"order_count"`
			} `json:"rows"`
		}
		th.GetJSON(t, api+"/v1/metrics/order_revenue_minute?from=2026-11-26T09:00:00Z&to=2026-11-26T11:00:00Z", &r)
		m := map[string]sseUpdate{}
		for _, row := range r.Rows {
			m[row.Minute] = sseUpdate{Revenue: row.Revenue, OrderCount: row.OrderCount}
		}
		return m
	}
	// drain reads updates until the figures match the API's and checks
	// they arrive in sequence order without a gap.
	drain := func(name string, ch <-chan sseUpdate, want uint64) map[string]sseUpdate {
		last := map[string]sseUpdate{}
		next := want
		deadline := time.After(60 * time.Second)
		for {
			select {
			case u, ok := <-ch:
				if !ok {
					t.Fatalf("%s: stream ended", name)
				}
				if u.typ != "minute" {
					t.Fatalf("%s: unexpected %s event", name, u.typ)
				}
				if next != 0 && u.Seq != next {
					t.Fatalf("%s: update %d arrived where %d was due (a gap or a reorder)", name, u.Seq, next)
				}
				if prev, ok := last[u.Minute]; ok && u.OrderCount < prev.OrderCount {
					t.Fatalf("%s: minute %s went from %d to %d orders", name, u.Minute, prev.OrderCount, u.OrderCount)
				}
				next = u.Seq + 1
				last[u.Minute] = u
			case <-time.After(2 * time.Second):
				want := final()
				match := len(want) == len(last)
				for m, w := range want {
					match = match && last[m].Revenue == w.Revenue && last[m].OrderCount == w.OrderCount
				}
				if match && len(want) > 0 {
					return last
				}
			case <-deadline:
				t.Fatalf("%s: the pushed figures never matched the API: pushed %v, API %v", name, last, final())
			}
		}
	}
	got := drain("steady client", steady, 0)
	if len(got) < 2 {
		t.Fatalf("only %d minutes pushed", len(got))
	}
	// Resume: everything after the last update the early client saw.
	resumed := sseClient(t, ctx, stream, strconv.FormatUint(lastSeen, 10))
	drain("resumed client", resumed, lastSeen+1)
}

// TestLivePushCoalesced: 10,000 orders into one minute, produced over a
// few seconds in many small batches (so the hot tier reads them in many
// polls), reach a live client as at most one message of that minute per
// stream.coalesce interval, and the last one carries the exact revenue
// and order count of the 10,000; an order that later closes the minute
// makes its final message, with the same figures.
func TestLivePushCoalesced(t *testing.T) {
	const (
		interval = 400 * time.Millisecond // EVENTLAKE_STREAM_COALESCE, not the default: the override works
		orders   = 10_000
		batch    = 50
	)
	dir := t.TempDir()
	dev := th.Start(t, "dev", []string{"EVENTLAKE_STREAM_COALESCE=" + interval.String()},
		"dev", "--no-demo", "--data-dir", filepath.Join(dir, "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	broker, api := dev.Ready["kafka"], "http://"+dev.Ready["http"]
	waitHotTier(t, api)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := sseClient(t, ctx, api+"/v1/stream/order_revenue_minute", "")

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	minute := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	order := func(id string, ts time.Time, cents int64) *kgo.Record {
		e := schema.Envelope{EventID: id, Source: "e2e-coalesce", Type: demo.TypeOrderCreated, Timestamp: ts,
			Payload: fmt.Appendf(nil, `{"order_id":%q,"user_id":"u%d","product_id":"p%d","quantity":1,"amount":"%d.%02d"}`,
				id, len(id)%17, len(id)%5, cents/100, cents%100)}
		return &kgo.Record{Topic: demo.TopicOrders, Key: []byte(id), Value: e.AppendJSON(nil)}
	}
	// Ground truth: amounts of 0.01 to 99.73, event times 5 ms apart from
	// 10:00:00, all within the minute.
	var total int64 // cents
	start := time.Now()
	for b := 0; b < orders/batch; b++ {
		recs := make([]*kgo.Record, 0, batch)
		for i := b * batch; i < (b+1)*batch; i++ {
			cents := int64(i%9973 + 1)
			total += cents
			recs = append(recs, order(fmt.Sprintf("coalesce-%d", i), minute.Add(time.Duration(i)*5*time.Millisecond), cents))
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	produced := time.Since(start)
	wantMinute, wantRevenue := minute.Format(time.RFC3339), fmt.Sprintf("%d.%02d", total/100, total%100)

	// read takes the stream's messages until until says stop, checking
	// that they are minute updates numbered without a gap; it returns the
	// messages of wantMinute and when the last of them arrived.
	var next uint64
	read := func(what string, wait time.Duration, until func(u sseUpdate) bool) (mine []sseUpdate, lastAt time.Time) {
		deadline := time.After(wait)
		for {
			select {
			case u, ok := <-stream:
				if !ok {
					t.Fatalf("%s: the stream ended", what)
				}
				if u.typ != "minute" {
					t.Fatalf("%s: unexpected %s event", what, u.typ)
				}
				if next != 0 && u.Seq != next {
					t.Fatalf("%s: update %d arrived where %d was due (a gap or a reorder)", what, u.Seq, next)
				}
				next = u.Seq + 1
				if u.Minute == wantMinute {
					if len(mine) > 0 && u.OrderCount < mine[len(mine)-1].OrderCount {
						t.Fatalf("%s: minute %s went from %d to %d orders", what, u.Minute, mine[len(mine)-1].OrderCount, u.OrderCount)
					}
					mine, lastAt = append(mine, u), time.Now()
				}
				if until(u) {
					return mine, lastAt
				}
			case <-deadline:
				return mine, lastAt
			}
		}
	}
	// The burst: until the minute has all its orders, then three quiet
	// intervals for any message still on its way.
	burst, lastAt := read("burst", 60*time.Second, func(u sseUpdate) bool { return u.Minute == wantMinute && u.OrderCount >= orders })
	more, moreAt := read("after the burst", 3*interval, func(sseUpdate) bool { return false })
	if len(more) > 0 {
		burst, lastAt = append(burst, more...), moreAt
	}
	if len(burst) == 0 {
		t.Fatalf("no message for minute %s in 60 s", wantMinute)
	}
	last := burst[len(burst)-1]
	if last.Revenue != wantRevenue || last.OrderCount != orders {
		t.Fatalf("the last message for minute %s carries %s revenue and %d orders, want %s and %d (%d messages)",
			wantMinute, last.Revenue, last.OrderCount, wantRevenue, orders, len(burst))
	}
	// Every message of the minute was sent by a flush at the end of an
	// interval, between the first send and the last message's arrival.
	elapsed := lastAt.Sub(start)
	bound := int(elapsed/interval) + 2
	t.Logf("%d orders produced in %s; %d messages for minute %s until the last arrived %s after the first send (bound %d)",
		orders, produced.Round(time.Millisecond), len(burst), wantMinute, elapsed.Round(time.Millisecond), bound)
	if len(burst) > bound || len(burst) > orders/100 {
		t.Fatalf("%d messages for minute %s in %s: more than one per %s interval (bound %d)", len(burst), wantMinute, elapsed, interval, bound)
	}

	// An order three minutes later moves the watermark (allowed lateness
	// 2m) past the minute's end: the minute is sent once more, final, with
	// the same figures.
	if err := cl.ProduceSync(ctx, order("coalesce-closer", minute.Add(3*time.Minute), 100)).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	final, _ := read("closing", 30*time.Second, func(u sseUpdate) bool { return u.Minute == wantMinute && u.Final })
	if len(final) == 0 || !final[len(final)-1].Final {
		t.Fatalf("minute %s was not sent final after the watermark passed it (sent %+v)", wantMinute, final)
	}
	for _, u := range final {
		if u.Revenue != wantRevenue || u.OrderCount != orders {
			t.Fatalf("minute %s sent as %s revenue and %d orders after the burst, want %s and %d", wantMinute, u.Revenue, u.OrderCount, wantRevenue, orders)
		}
	}
}

// runBinary runs the eventlake binary to completion.
func runBinary(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := th.Command(t, args...).CombinedOutput()
	return string(out), err
}
