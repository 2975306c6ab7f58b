package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventlake/eventlake/demo"
	"github.com/eventlake/eventlake/schema"
)

// benchFreshness measures how soon a produced event is visible: in the live
// push stream and in SQL over the events view, on `eventlake dev` with
// default settings.
func benchFreshness(bin, dir string, samples int) ([]result, error) {
	dev, err := start(bin, nil, "dev", "--no-demo", "--data-dir", filepath.Join(dir, "data"),
		"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer dev.stop()
	base := "http://" + dev.ready["http"]
	if err := waitReady(base, 2*time.Minute); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(dev.ready["kafka"]), kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx := context.Background()
	send := func(id string, ts time.Time) error {
		e := schema.Envelope{EventID: id, Source: "bench", Type: demo.TypeOrderCreated, Timestamp: ts,
			Payload: []byte(`{"order_id":"` + id + `","user_id":"u","product_id":"p","quantity":1,"amount":"1.00"}`)}
		return cl.ProduceSync(ctx, &kgo.Record{Topic: "orders.created", Key: []byte(id), Value: e.AppendJSON(nil)}).FirstErr()
	}
	// Warm up: the hot tier and ingest are running and caught up.
	if err := send("warmup", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second)

	// Live push: each event goes to a minute of its own; the latency is
	// from the send to the update of that minute.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, base+"/v1/stream/order_revenue_minute", nil)
	resp, err := (&http.Client{Transport: authTransport{}}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	seen := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "data: ") {
				var u struct {
					Minute string `json:"minute"`
				}
				if json.Unmarshal([]byte(line[6:]), &u) == nil {
					seen <- u.Minute
				}
			}
		}
	}()
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	var sse []time.Duration
	for i := 0; i < samples; i++ {
		minute := t0.Add(time.Duration(i) * time.Minute)
		start := time.Now()
		if err := send(fmt.Sprintf("sse-%d", i), minute.Add(time.Second)); err != nil {
			return nil, err
		}
		want := minute.Format(time.RFC3339)
	wait:
		for {
			select {
			case m := <-seen:
				if m == want {
					sse = append(sse, time.Since(start))
					break wait
				}
			case <-time.After(10 * time.Second):
				return nil, fmt.Errorf("the update of minute %s was never pushed", want)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	// SQL: poll until the event is in the events view.
	var sqlLat []time.Duration
	for i := 0; i < samples/2; i++ {
		id := fmt.Sprintf("sql-%d", i)
		start := time.Now()
		if err := send(id, t0); err != nil {
			return nil, err
		}
		body, _ := json.Marshal(map[string]string{"sql": "SELECT count(*) FROM events WHERE event_id = '" + id + "'"})
		for {
			r, err := client.Post(base+"/v1/sql", "application/json", bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			var res struct {
				Rows [][]any `json:"rows"`
			}
			err = json.NewDecoder(r.Body).Decode(&res)
			r.Body.Close()
			if err == nil && len(res.Rows) == 1 && fmt.Sprint(res.Rows[0][0]) == "1" {
				sqlLat = append(sqlLat, time.Since(start))
				break
			}
			if time.Since(start) > 30*time.Second {
				return nil, fmt.Errorf("event %s not visible in SQL after 30 s", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	slices.Sort(sse)
	slices.Sort(sqlLat)
	p := func(l []time.Duration, q int) time.Duration { return l[min(len(l)-1, len(l)*q/100)] }
	how := "`eventlake dev --no-demo` with default settings (ingest commits every 2 s, read models every 5 s); one event at a time produced with acks=all"
	return []result{
		{"produce -> visible in the live push (SSE), p50", ms(p(sse, 50)), "", "", how + fmt.Sprintf("; %d events, each in a minute of its own, timed from the send to the pushed update of its minute", len(sse))},
		{"produce -> visible in the live push (SSE), p99", ms(p(sse, 99)), "<= 100 ms", verdict(p(sse, 99) <= 100*time.Millisecond), ""},
		{"produce -> visible in SQL over `events`, p50", ms(p(sqlLat, 50)), "", "", fmt.Sprintf("%d events, polling POST /v1/sql every 5 ms from the send until the event's row is returned", len(sqlLat))},
		{"produce -> visible in SQL over `events`, p99", ms(p(sqlLat, 99)), "<= 1 s", verdict(p(sqlLat, 99) <= time.Second), ""},
	}, nil
}
