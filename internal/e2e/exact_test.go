package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
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

	var (
		revenues []revenueAnswer
		sqls     []th.SQLResult
		counts   []th.SQLResult
		revTally = newTally("revenue API")
		sqlTally = newTally("SQL over orders")
		cntTally = newTally("SQL over events")
	)
	revURL := api + "/v1/metrics/order_revenue_minute?from=2026-11-26T09:50:00Z&to=2026-11-26T10:10:00Z"
	poll := func() {
		var r revenueAnswer
		if revTally.note(askJSON(t, http.MethodGet, revURL, nil, &r), r.Code, r.Error) {
			revenues = append(revenues, r)
		}
		for _, q := range []struct {
			sql   string
			tally *tally
			into  *[]th.SQLResult
		}{
			{"SELECT kafka_partition, count(*), sum(amount) FROM orders GROUP BY 1", sqlTally, &sqls},
			{"SELECT kafka_topic, count(*) FROM events GROUP BY 1", cntTally, &counts},
		} {
			var res th.SQLResult
			body, _ := json.Marshal(map[string]any{"sql": q.sql})
			if q.tally.note(askJSON(t, http.MethodPost, api+"/v1/sql", body, &res), res.Code, res.Error) {
				*q.into = append(*q.into, res)
			}
		}
	}
	pollStart, prodDone, pollEnd := pollWhile(t, prod, poll, 20*time.Millisecond, 6*time.Second)
	t.Logf("polled for %v, the producer ran for the first %v", pollEnd.Sub(pollStart).Round(time.Millisecond), prodDone.Sub(pollStart).Round(time.Millisecond))
	for _, a := range []*tally{revTally, sqlTally, cntTally} {
		a.check(t, pollStart, prodDone, pollEnd)
	}
	// The answers saw the lake move while the producer ran: the hot tier
	// hands the query service every event as soon as it is read, so the
	// offsets an answer covers advance with the producer. One new state
	// per 2 s of producing is lenient (30-100 were seen in a 10 s run) and
	// still catches answers stuck on one view of the lake.
	minStates := int(prodDone.Sub(pollStart) / (2 * time.Second))
	for what, n := range map[string]int{
		"revenue answers":         distinct(revenues, func(r revenueAnswer) any { return r.Watermark }),
		"SQL answers over orders": distinct(sqls, func(r th.SQLResult) any { return string(r.Offsets["orders_raw"]) }),
		"SQL answers over events": distinct(counts, func(r th.SQLResult) any {
			return string(r.Offsets["orders_raw"]) + string(r.Offsets["inventory_raw"])
		}),
	} {
		t.Logf("%s: %d distinct offsets", what, n)
		if n < minStates {
			t.Fatalf("%s covered %d distinct offsets while the producer ran %v; want at least %d (one per 2 s)",
				what, n, prodDone.Sub(pollStart).Round(time.Millisecond), minStates)
		}
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
	// The run did cover rewrites of committed read-model rows: the hot
	// tier followed snapshots others made of its tables (compaction;
	// re-aggregation commits only rows that changed). Both are counters
	// per label set, absent until first counted: 0 fails below.
	if rewrites := metricOrZero(t, dev, `eventlake_streamer_read_model_rewrites_total`); rewrites < 1 {
		t.Fatalf("no other process rewrote a read model during the run (%v followed); the test did not cover rewrites", rewrites)
	}
	if replaced := metricOrZero(t, dev, "eventlake_compactor_files_replaced_total"); replaced == 0 {
		t.Fatal("the compactor rewrote no file during the run; the test did not cover compaction")
	}
	t.Logf("checked %d revenue answers, %d order SQL answers and %d event SQL answers against %d orders", len(revenues), len(sqls), len(counts), len(orders))
}

// revenueAnswer is order_revenue_minute's answer (the revenue endpoint's
// and GET /v1/models's).
type revenueAnswer struct {
	Watermark map[string]map[string]int64 `json:"watermark"`
	Rows      []struct {
		Minute     string `json:"minute"`
		Revenue    string `json:"revenue"`
		OrderCount int64  `json:"order_count"`
	} `json:"rows"`
	Error string `json:"error"`
	Code  string `json:"code"`
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

// pollWhile calls poll every pause while the producer runs, and for
// after more once it has exited (the last commits and re-aggregations
// land meanwhile). It fails the test if the producer fails.
func pollWhile(t *testing.T, prod *th.Proc, poll func(), pause, after time.Duration) (start, prodDone, end time.Time) {
	t.Helper()
	start = time.Now()
	for {
		poll()
		if done, err := prod.Exited(); done {
			if err != nil {
				t.Fatalf("producer: %v\n%s", err, prod.Log())
			}
			prodDone = time.Now()
			break
		}
		time.Sleep(pause)
	}
	for stop := time.Now().Add(after); time.Now().Before(stop); {
		poll()
		time.Sleep(pause)
	}
	return start, prodDone, time.Now()
}

// tally counts one endpoint's answers during the polling.
type tally struct {
	what     string
	good     int
	first    time.Time // of the first good answer
	notReady int       // 503 not_ready with Retry-After before the first good answer
	bad      map[string]int
	firstBad string
}

func newTally(what string) *tally { return &tally{what: what, bad: map[string]int{}} }

// note records one answer and reports whether it is a good one (200).
//
// The only other answer accepted is the one the service gives while it
// starts, before it has read the lake: 503 with code not_ready and a
// Retry-After, and only before this endpoint's first good answer. Once a
// generation of the lake is in service the service never goes back to
// not_ready (a failed refresh keeps the tables it has), so a not_ready
// after a good answer is a fault. Everything else is a fault at any time:
// a 503 busy cannot happen to a test that sends one query at a time, and
// table_unavailable, a timeout or a 500 is what the test is looking for.
func (a *tally) note(ans answer, code, msg string) bool {
	switch {
	case ans.status == http.StatusOK:
		if a.good == 0 {
			a.first = time.Now()
		}
		a.good++
		return true
	case a.good == 0 && ans.status == http.StatusServiceUnavailable && code == "not_ready" && ans.retryAfter != "":
		a.notReady++
		return false
	}
	k := fmt.Sprintf("HTTP %d %s", ans.status, code)
	if a.good > 0 {
		k += " after a good answer"
	}
	if a.firstBad == "" {
		a.firstBad = fmt.Sprintf("%s (Retry-After %q): %s", k, ans.retryAfter, msg)
	}
	a.bad[k]++
	return false
}

// check fails the test on any unexpected answer, and unless the endpoint
// answered all along: its first good answer must come while the producer
// still ran (or the answers never saw the lake change), and then at least
// one good answer per second of polling. Ingest, the streamer and the
// compactor commit every second here, so fewer answers would leave
// generations of the lake unchecked; the test polls every 20-50 ms, and a
// working service answered 4-11 times a second per endpoint on a loaded
// 2-core machine.
func (a *tally) check(t *testing.T, pollStart, prodDone, pollEnd time.Time) {
	t.Helper()
	if len(a.bad) > 0 {
		t.Fatalf("%s: unexpected answers %v; the first: %s", a.what, a.bad, a.firstBad)
	}
	if a.good == 0 || !a.first.Before(prodDone) {
		t.Fatalf("%s: no good answer while the producer ran (%d good answers, %d not ready)", a.what, a.good, a.notReady)
	}
	t.Logf("%s: %d not ready, then %d good answers from %v on", a.what, a.notReady, a.good, a.first.Sub(pollStart).Round(time.Millisecond))
	if want := int(pollEnd.Sub(a.first) / time.Second); a.good < want {
		t.Fatalf("%s: %d good answers in the %v after the first; want at least one a second (%d)",
			a.what, a.good, pollEnd.Sub(a.first).Round(time.Millisecond), want)
	}
}

// answer is the status and Retry-After header of one HTTP answer.
type answer struct {
	status     int
	retryAfter string
}

// askJSON sends a request (a JSON body when body is not nil) and decodes
// the JSON answer into v whatever its status; a transport error or an
// answer that is not JSON fails the test.
func askJSON(t *testing.T, method, url string, body []byte, v any) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	th.Authorize(req)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s %s (HTTP %d): %v", method, url, resp.StatusCode, err)
	}
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
}

func distinct[T any](s []T, key func(T) any) int {
	seen := map[string]bool{}
	for _, v := range s {
		seen[fmt.Sprint(key(v))] = true
	}
	return len(seen)
}
