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

	th "github.com/eventlake/eventlake/internal/testharness"
)

type sseUpdate struct {
	id         uint64
	typ        string
	Seq        uint64 `json:"seq"`
	Minute     string `json:"minute"`
	Revenue    string `json:"revenue"`
	OrderCount int64  `json:"order_count"`
	Final      bool   `json:"final"`
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
	_ = fmt.Sprint
}

// runBinary runs the eventlake binary to completion.
func runBinary(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := th.Command(t, args...).CombinedOutput()
	return string(out), err
}
