package e2e

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventlake/eventlake/internal/hll"
	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/zeebo/xxh3"
)

// modelsConfig declares the shipped models and one of the test's own,
// grouped by a column, with a WHERE clause.
const modelsConfig = `read_models:
  models:
    - name: order_revenue_minute
    - name: order_metrics
    - name: product_revenue_hour
    - name: big_orders_by_source_hour
      sql: |
        SELECT time_bucket(INTERVAL '1 hour', ts) AS hour, source,
               count(*) AS orders, sum(amount) AS revenue,
               min(amount) AS smallest, max(amount) AS largest
        FROM orders
        WHERE quantity >= 2
        GROUP BY ALL
`

// modelAnswer is GET /v1/models/{name}'s answer.
type modelAnswer struct {
	SnapshotID *string                     `json:"snapshot_id"`
	Watermark  map[string]map[string]int64 `json:"watermark"`
	Rows       []map[string]any            `json:"rows"`
	Error      string                      `json:"error"`
	Code       string                      `json:"code"`
}

// TestDeclaredModels: models added in the configuration over a lake that
// already holds a day of orders are built from that history when the
// process restarts, then kept exact while orders flow: every answer of
// three models (one grouped by a column, one the test declares with a
// WHERE) equals the ground truth of exactly the orders below the offsets
// it names. Their distinct counts merge over 1, 60 and 1440 buckets
// within the stated error, through the API and through SQL alike.
func TestDeclaredModels(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	env := []string{
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=1s",
		"EVENTLAKE_STREAMER_COMMIT_INTERVAL=1s",
		"EVENTLAKE_STREAMER_REAGGREGATE_EVERY=3s",
		"EVENTLAKE_STREAMER_REAGGREGATE_LOOKBACK=2h",
		"EVENTLAKE_COMPACTOR_INTERVAL=2s",
		"EVENTLAKE_COMPACTOR_MIN_INPUT_FILES=2",
	}
	start := func(cfg string) *th.Proc {
		file := filepath.Join(dir, fmt.Sprintf("eventlake-%d.yaml", len(cfg)))
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return th.Start(t, "dev", env, "dev", "--no-demo", "--config", file, "--data-dir", data,
			"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pg-listen", "off")
	}

	// A day of orders in the lake, with only the revenue model declared.
	dev := start("read_models:\n  models:\n    - name: order_revenue_minute\n")
	const history = 12000
	if out, err := runBinary(t, "produce", "--brokers", dev.Ready["kafka"], "--rate", "0", "--count", strconv.Itoa(history),
		"--seed", "21", "--start", "2026-11-25T00:00:00Z", "--step", "7200ms"); err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}
	api := "http://" + dev.Ready["http"]
	th.Eventually(t, 60*time.Second, "the day in the lake", func() (bool, string) {
		r, status := th.TrySQL(t, api, "SELECT count(*) FROM events")
		if status != http.StatusOK || len(r.Rows) == 0 {
			return false, fmt.Sprintf("HTTP %d %s", status, r.Error)
		}
		return fmt.Sprint(r.Rows[0][0]) == strconv.Itoa(history), fmt.Sprintf("%v events", r.Rows[0][0])
	})
	lk := openLake(t, data)
	th.Eventually(t, 60*time.Second, "the day committed", func() (bool, string) {
		n := tableRowCount(t, lk, "orders_raw") + tableRowCount(t, lk, "inventory_raw")
		return n == history, fmt.Sprint(n)
	})
	if err := dev.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, dev.Log())
	}

	// The new models are built from that history at start.
	dev = start(modelsConfig)
	api, broker := "http://"+dev.Ready["http"], dev.Ready["kafka"]
	for _, m := range []string{"order_metrics", "product_revenue_hour", "big_orders_by_source_hour"} {
		th.Eventually(t, 30*time.Second, m+" built from the lake's history", func() (bool, string) {
			return strings.Contains(dev.Log(), `msg="read model built from the lake" component=streamer table=`+m), "not logged yet"
		})
	}
	if strings.Contains(dev.Log(), `msg="read model built from the lake" component=streamer table=order_revenue_minute`) {
		t.Fatal("order_revenue_minute was built again although its table holds the day")
	}

	// Orders flow while the models are polled, and one model's rows are
	// followed live.
	sctx, stopStream := context.WithCancel(context.Background())
	defer stopStream()
	stream := sseClient(t, sctx, api+"/v1/models/product_revenue_hour/stream", "")
	prod := th.StartNoWait(t, "produce", nil, "produce", "--brokers", broker, "--rate", "1500", "--count", "9000",
		"--seed", "22", "--start", "2026-11-25T11:00:00Z", "--step", "400ms", "--late-fraction", "0.05", "--duplicate-fraction", "0.02")
	day := "from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z"
	models := []string{"order_metrics", "product_revenue_hour", "big_orders_by_source_hour"}
	answers := map[string][]modelAnswer{}
	tallies := map[string]*tally{}
	for _, m := range models {
		tallies[m] = newTally(m)
	}
	poll := func() {
		for _, m := range models {
			var a modelAnswer
			if tallies[m].note(askJSON(t, http.MethodGet, api+"/v1/models/"+m+"?"+day, nil, &a), a.Code, a.Error) {
				answers[m] = append(answers[m], a)
			}
		}
	}
	pollStart, prodDone, pollEnd := pollWhile(t, prod, poll, 30*time.Millisecond, 5*time.Second)
	for _, m := range models {
		tallies[m].check(t, pollStart, prodDone, pollEnd)
	}

	var orders []logEvent
	for _, e := range readLog(t, broker, 100_000, "orders.created") {
		if e.isOrder {
			orders = append(orders, e)
		}
	}
	dayStart := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).UnixMicro()
	inDay := func(e logEvent) bool { return e.ts >= dayStart && e.ts < dayStart+24*3600e6 }
	hourOf := func(e logEvent) string {
		return time.UnixMicro(e.ts).UTC().Truncate(time.Hour).Format(time.RFC3339Nano)
	}
	minuteOf := func(e logEvent) string { return time.Unix(e.minute*60, 0).UTC().Format(time.RFC3339Nano) }
	checked := 0
	for _, m := range models {
		if n := distinct(answers[m], func(a modelAnswer) any { return a.Watermark }); n < 3 {
			t.Fatalf("%s: answers covered %d distinct offsets while orders flowed; want several", m, n)
		}
		for i, a := range answers[m] {
			wm := a.Watermark["orders.created"]
			want := map[string]map[string]any{}
			switch m {
			case "order_metrics":
				type agg struct {
					n, cents int64
					users    map[string]bool
				}
				per := map[string]*agg{}
				for _, e := range orders {
					if inDay(e) && below(e, wm) {
						k := minuteOf(e)
						if per[k] == nil {
							per[k] = &agg{users: map[string]bool{}}
						}
						per[k].n++
						per[k].cents += e.cents
						per[k].users[e.user] = true
					}
				}
				for k, g := range per {
					want[k] = map[string]any{"orders": g.n, "revenue": decimal2(g.cents), "avg_order_value": avgOf(g.cents, g.n, 2, 6),
						"users": sketchOf(g.users)}
				}
			case "product_revenue_hour":
				per := map[string][3]int64{}
				for _, e := range orders {
					if inDay(e) && below(e, wm) {
						k := hourOf(e) + "|" + e.product
						w := per[k]
						w[0] += e.cents
						w[1]++
						w[2] += e.quantity
						per[k] = w
					}
				}
				for k, w := range per {
					want[k] = map[string]any{"revenue": decimal2(w[0]), "orders": w[1], "units": strconv.FormatInt(w[2], 10)}
				}
			case "big_orders_by_source_hour":
				per := map[string][4]int64{}
				for _, e := range orders {
					if inDay(e) && below(e, wm) && e.quantity >= 2 {
						k := hourOf(e) + "|" + e.source
						w, ok := per[k]
						if !ok {
							w[2], w[3] = math.MaxInt64, math.MinInt64
						}
						w[0]++
						w[1] += e.cents
						w[2], w[3] = min(w[2], e.cents), max(w[3], e.cents)
						per[k] = w
					}
				}
				for k, w := range per {
					want[k] = map[string]any{"orders": w[0], "revenue": decimal2(w[1]), "smallest": decimal2(w[2]), "largest": decimal2(w[3])}
				}
			}
			if len(a.Rows) != len(want) {
				t.Fatalf("%s answer %d: %d rows, ground truth below its watermark %v has %d", m, i, len(a.Rows), wm, len(want))
			}
			for _, row := range a.Rows {
				var k string
				switch m {
				case "order_metrics":
					k = fmt.Sprint(row["minute"])
				case "product_revenue_hour":
					k = fmt.Sprint(row["hour"]) + "|" + fmt.Sprint(row["product_id"])
				default:
					k = fmt.Sprint(row["hour"]) + "|" + fmt.Sprint(row["source"])
				}
				w, ok := want[k]
				if !ok {
					t.Fatalf("%s answer %d: row %s is not in the ground truth below %v", m, i, k, wm)
				}
				// The orders of the row's key in the log, to tell a
				// mismatch's missing or extra events apart.
				explain := func() string {
					var b strings.Builder
					fmt.Fprintf(&b, "row %v; orders of %s in the log (partition/offset, event time, below the watermark):", row, k)
					for _, e := range orders {
						ek := minuteOf(e)
						switch m {
						case "product_revenue_hour":
							ek = hourOf(e) + "|" + e.product
						case "big_orders_by_source_hour":
							ek = hourOf(e) + "|" + e.source
						}
						if ek == k {
							fmt.Fprintf(&b, " %d/%d %s %v;", e.partition, e.offset, time.UnixMicro(e.ts).UTC().Format("15:04:05.000"), below(e, wm))
						}
					}
					return b.String()
				}
				for col, v := range w {
					got := fmt.Sprint(row[col])
					if col == "users" {
						// A distinct count: the estimate of a sketch of
						// exactly the users below the answer's offsets
						// (sketches merge losslessly), and so within the
						// sketch's error of their number.
						want := v.(estimate)
						if got != strconv.FormatUint(want.est, 10) {
							t.Fatalf("%s answer %d, %s: users %s; a sketch of the %d users below its offsets estimates %d\n%s",
								m, i, k, got, want.exact, want.est, explain())
						}
						continue
					}
					if got != fmt.Sprint(v) {
						t.Fatalf("%s answer %d, %s: %s = %s, ground truth below %v is %v\n%s", m, i, k, col, got, wm, v, explain())
					}
				}
			}
			checked++
		}
	}
	t.Logf("checked %d model answers against %d orders", checked, len(orders))

	// Distinct users merged over 1, 60 and 1440 minutes: the API's merge of
	// the sketches and SQL's merge of the committed sketches (hll_count)
	// give the estimate of one sketch of all the users, within the stated
	// error (3 sigma: 4.9%) of the truth.
	th.Eventually(t, 30*time.Second, "every order committed to order_metrics", func() (bool, string) {
		r, status := th.TrySQL(t, api, "SELECT sum(orders) FROM order_metrics")
		if status != http.StatusOK || len(r.Rows) == 0 {
			return false, fmt.Sprintf("HTTP %d %s", status, r.Error)
		}
		n := 0
		for _, e := range orders {
			if inDay(e) {
				n++
			}
		}
		return fmt.Sprint(r.Rows[0][0]) == strconv.Itoa(n), fmt.Sprintf("%v of %d", r.Rows[0][0], n)
	})
	for _, span := range []struct {
		from time.Time
		n    int
	}{
		{time.Date(2026, 11, 25, 11, 30, 0, 0, time.UTC), 1},
		{time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC), 60},
		{time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), 1440},
	} {
		to := span.from.Add(time.Duration(span.n) * time.Minute)
		users := map[string]bool{}
		for _, e := range orders {
			if e.ts >= span.from.UnixMicro() && e.ts < to.UnixMicro() {
				users[e.user] = true
			}
		}
		var a modelAnswer
		url := fmt.Sprintf("%s/v1/models/order_metrics?from=%s&to=%s&every=all", api, span.from.Format(time.RFC3339), to.Format(time.RFC3339))
		if st := askJSON(t, http.MethodGet, url, nil, &a); st.status != http.StatusOK || len(a.Rows) != 1 {
			t.Fatalf("GET %s: HTTP %d, %d rows: %s", url, st.status, len(a.Rows), a.Error)
		}
		apiEst := fmt.Sprint(a.Rows[0]["users"])
		r := th.SQL(t, api, fmt.Sprintf("SELECT hll_count(users_sketch) FROM order_metrics WHERE minute >= '%s' AND minute < '%s'",
			span.from.Format(time.RFC3339), to.Format(time.RFC3339)))
		sqlEst := fmt.Sprint(r.Rows[0][0])
		est, _ := strconv.ParseFloat(apiEst, 64)
		t.Logf("%d minutes: %d distinct users, API %s, SQL %s", span.n, len(users), apiEst, sqlEst)
		if apiEst != sqlEst {
			t.Fatalf("%d minutes: the API estimates %s distinct users, SQL's hll_count %s", span.n, apiEst, sqlEst)
		}
		if want := sketchOf(users); apiEst != strconv.FormatUint(want.est, 10) {
			t.Fatalf("%d minutes: the API estimates %s distinct users; one sketch of all %d estimates %d", span.n, apiEst, want.exact, want.est)
		}
		if d := math.Abs(est - float64(len(users))); d > math.Max(1, 0.049*float64(len(users))) {
			t.Fatalf("%d minutes: estimate %s, exactly %d: beyond the stated error", span.n, apiEst, len(users))
		}
	}

	// The live stream's last row of each hour and product is the figure
	// the model answers once everything is committed.
	var final modelAnswer
	if st := askJSON(t, http.MethodGet, api+"/v1/models/product_revenue_hour?"+day, nil, &final); st.status != http.StatusOK {
		t.Fatalf("product_revenue_hour: HTTP %d %s", st.status, final.Error)
	}
	time.Sleep(time.Second) // a coalescing interval (250 ms) and more
	stopStream()
	streamed := map[string]map[string]any{}
	messages := 0
	for u := range stream {
		if u.typ != "row" || u.Model != "product_revenue_hour" {
			t.Fatalf("stream of product_revenue_hour sent %q of model %q", u.typ, u.Model)
		}
		messages++
		streamed[fmt.Sprint(u.Row["hour"], "|", u.Row["product_id"])] = u.Row
	}
	if len(streamed) == 0 {
		t.Fatal("the stream of product_revenue_hour sent no row while orders flowed")
	}
	for _, row := range final.Rows {
		k := fmt.Sprint(row["hour"], "|", row["product_id"])
		if got, ok := streamed[k]; ok && (fmt.Sprint(got["revenue"]) != fmt.Sprint(row["revenue"]) || fmt.Sprint(got["orders"]) != fmt.Sprint(row["orders"])) {
			t.Fatalf("the stream's last row of %s is %v, the model answers %v", k, got, row)
		}
	}
	t.Logf("stream of product_revenue_hour: %d messages, %d rows", messages, len(streamed))

	// A closed range is cacheable and revalidates with its ETag; times may
	// be relative or epoch milliseconds.
	// Six hours well before the watermark (the orders run to 12:00).
	req, _ := http.NewRequest(http.MethodGet, api+"/v1/models/product_revenue_hour?from=2026-11-25T00:00:00Z&to=2026-11-25T06:00:00Z&product_id=p-1&group=", nil)
	th.Authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || etag == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("closed range: HTTP %d, ETag %q, Cache-Control %q", resp.StatusCode, etag, resp.Header.Get("Cache-Control"))
	}
	req.Header.Set("If-None-Match", etag)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation with the ETag: HTTP %d, want 304", resp.StatusCode)
	}
	for _, q := range []string{"from=now-1h", "from=now-2d&to=now", "from=" + strconv.FormatInt(time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC).UnixMilli(), 10) + "&to=now"} {
		var a modelAnswer
		if st := askJSON(t, http.MethodGet, api+"/v1/models/order_revenue_minute?"+q, nil, &a); st.status != http.StatusOK {
			t.Fatalf("?%s: HTTP %d %s", q, st.status, a.Error)
		}
	}
	var bad modelAnswer
	if st := askJSON(t, http.MethodGet, api+"/v1/models/order_revenue_minute?from=yesterday", nil, &bad); st.status != http.StatusBadRequest ||
		!strings.Contains(bad.Error, "now-1h") {
		t.Fatalf("from=yesterday: HTTP %d %q, want 400 naming the accepted forms", st.status, bad.Error)
	}
	var list struct {
		Models []struct {
			Name       string  `json:"name"`
			SQL        string  `json:"sql"`
			SnapshotID *string `json:"snapshot_id"`
		} `json:"models"`
	}
	if st := askJSON(t, http.MethodGet, api+"/v1/models", nil, &list); st.status != http.StatusOK || len(list.Models) != 4 ||
		!slices.ContainsFunc(list.Models, func(m struct {
			Name       string  `json:"name"`
			SQL        string  `json:"sql"`
			SnapshotID *string `json:"snapshot_id"`
		}) bool {
			return m.Name == "big_orders_by_source_hour" && strings.Contains(m.SQL, "quantity >= 2") && m.SnapshotID != nil
		}) {
		t.Fatalf("GET /v1/models: HTTP %d %+v", st.status, list)
	}
}

// TestDeclaredModelRefused: a declaration outside the form stops the
// start with a message that names the model, the part and why.
func TestDeclaredModelRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "eventlake.yaml")
	if err := os.WriteFile(file, []byte(`read_models:
  models:
    - name: medians
      sql: SELECT time_bucket(INTERVAL '1 minute', ts) AS minute, median(amount) AS m FROM orders GROUP BY ALL
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runBinary(t, "dev", "--no-demo", "--config", file, "--data-dir", filepath.Join(dir, "data"),
		"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pg-listen", "off")
	if err == nil || !strings.Contains(out, "read model medians: select item 2: median is neither the bucket nor one of the form's aggregates") {
		t.Fatalf("dev with a refused declaration: %v\n%s", err, out)
	}
}

// avgOf is sum/n of unscaled values of scale in, rounded half away from
// zero to scale out, as text.
func avgOf(sum, n int64, in, out int) string {
	num := new(big.Int).Mul(big.NewInt(sum), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(out-in)), nil))
	q, r := new(big.Int).QuoRem(num, big.NewInt(n), new(big.Int))
	if new(big.Int).Mul(new(big.Int).Abs(r), big.NewInt(2)).Cmp(big.NewInt(n)) >= 0 {
		q.Add(q, big.NewInt(int64(num.Sign())))
	}
	s := q.String()
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for len(s) <= out {
		s = "0" + s
	}
	s = s[:len(s)-out] + "." + s[len(s)-out:]
	if neg {
		s = "-" + s
	}
	return s
}

// estimate is a distinct count: exact, and as a sketch of the same items
// estimates it.
type estimate struct{ exact, est uint64 }

// sketchOf is the distinct count of users, and the estimate a read
// model's sketch of them gives (approx_count_distinct adds the xxh3 hash
// of each string).
func sketchOf(users map[string]bool) estimate {
	sk := hll.New()
	for u := range users {
		sk.Add(xxh3.HashString(u))
	}
	return estimate{exact: uint64(len(users)), est: sk.Estimate()}
}

// TestModelWithoutEvents: a declared model whose type the lake has never
// held (inventory_health where only orders are produced) commits no
// snapshot, so its table stores no offsets; a restarted hot tier must
// still start at the offsets the lake covers, not read every topic from
// its start again.
func TestModelWithoutEvents(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "eventlake.yaml")
	// Sessions off: their table's offsets (committed at shutdown, or not
	// when a slow process misses the deadline) are another start.
	if err := os.WriteFile(cfg, []byte("read_models:\n  sessions:\n    off: true\n  models:\n    - name: order_revenue_minute\n    - name: inventory_health\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"EVENTLAKE_INGEST_FLUSH_INTERVAL=500ms", "EVENTLAKE_STREAMER_COMMIT_INTERVAL=500ms",
		// The hot tier reads again the dedupe window below where it starts.
		"EVENTLAKE_INGEST_DEDUPE_WINDOW=10"}
	start := func() *th.Proc {
		return th.Start(t, "dev", env, "dev", "--no-demo", "--config", cfg, "--data-dir", filepath.Join(dir, "data"),
			"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pg-listen", "off")
	}
	dev := start()
	const orders = 3000
	if out, err := runBinary(t, "produce", "--brokers", dev.Ready["kafka"], "--rate", "0", "--count", strconv.Itoa(orders),
		"--seed", "5", "--start", "2026-11-25T10:00:00Z", "--step", "1s", "--inventory-fraction", "0"); err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}
	api := "http://" + dev.Ready["http"]
	th.Eventually(t, 60*time.Second, "the orders in the lake and in order_revenue_minute", func() (bool, string) {
		r, status := th.TrySQL(t, api, "SELECT (SELECT count(*) FROM orders_raw), (SELECT sum(order_count) FROM order_revenue_minute)")
		if status != http.StatusOK || len(r.Rows) == 0 {
			return false, fmt.Sprintf("HTTP %d %s", status, r.Error)
		}
		return fmt.Sprint(r.Rows[0][0]) == strconv.Itoa(orders) && fmt.Sprint(r.Rows[0][1]) == strconv.Itoa(orders), fmt.Sprint(r.Rows[0])
	})
	if err := dev.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, dev.Log())
	}

	dev = start()
	api = "http://" + dev.Ready["http"]
	waitHotTier(t, api)
	// Read to the end of every partition (the gauge is set per partition
	// as it is read: absent ones have not been read yet).
	th.Eventually(t, 30*time.Second, "the hot tier at the end of orders.created", func() (bool, string) {
		n, lag := 0, 0.0
		for p := range 6 {
			v, ok := scrapeMetric(t, dev, fmt.Sprintf(`eventlake_streamer_lag_records{partition="%d",topic="orders.created"}`, p))
			if ok {
				n++
				lag += v
			}
		}
		return n == 6 && lag == 0, fmt.Sprintf("%d of 6 partitions read, %v records behind", n, lag)
	})
	read := metric(t, dev, `eventlake_streamer_events_total{topic="orders.created"}`)
	t.Logf("the restarted hot tier read %v of the %d orders again", read, orders)
	if read > 6*10 {
		t.Fatalf("the restarted hot tier read %v events of orders.created again; it should start at the lake's offsets less the dedupe window (6 partitions x 10)", read)
	}
}
