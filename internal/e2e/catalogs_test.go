package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestCatalogsEndToEnd runs the same ingest and query cases against every
// catalog and warehouse this machine can start: SQLite with a local
// warehouse (the embedded default), SQLite and PostgreSQL with an S3
// warehouse (versitygw). Two ingest processes share one consumer group;
// the query service reads the S3-resident files through its local cache.
// Every event must be in the lake once, every answer must match the
// generator's ground truth, and no process may log a credential.
//
// With EVENTLAKE_TEST_REST_URI set (`make test-rest`), the same case runs
// against that REST catalog and its warehouse.
func TestCatalogsEndToEnd(t *testing.T) {
	cases := []struct {
		name string
		opts lakeOpts
	}{
		{"sqlite-local", lakeOpts{}},
		{"sqlite-s3", lakeOpts{s3: true}},
		{"postgres-s3", lakeOpts{postgres: true, s3: true}},
	}
	if os.Getenv("EVENTLAKE_TEST_REST_URI") != "" {
		cases = append(cases, struct {
			name string
			opts lakeOpts
		}{"rest", lakeOpts{rest: true}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLake(t, tc.opts)
			prod := l.produce(7, 6000, 0)
			a := l.startIngest("a", true)
			b := l.startIngest("b", true)
			l.waitProduced(prod, 60*time.Second)
			cat := l.open()
			t0 := time.Now()
			l.waitCaughtUp(cat, 90*time.Second)
			t.Logf("caught up in %v", time.Since(t0))

			// The query service with its hot tier, which also commits the
			// read models to the same catalog and warehouse.
			tok := th.CreateToken(t, l.catEnv, "e2e", "analyst", "--data-dir", filepath.Join(l.dir, "data"))
			q := th.Start(t, "query", append(l.catEnv, "EVENTLAKE_QUERY_REFRESH_INTERVAL=100ms"), "query",
				"--data-dir", filepath.Join(l.dir, "data"), "--http", "127.0.0.1:0", "--brokers", l.addr, "--commit-read-models")
			th.SetToken(q.Ready["http"], tok)
			base := "http://" + q.Ready["http"]
			want := l.truth()
			th.Eventually(t, 60*time.Second, "query service to see every event", func() (bool, string) {
				res, status := th.TrySQL(t, base, "SELECT count(*) FROM events")
				if status != 200 {
					return false, res.Error
				}
				n := fmt.Sprint(res.Rows[0][0])
				return n == fmt.Sprint(len(want.orders)+len(want.inventory)), "events: " + n
			})
			res := th.SQL(t, base, "SELECT count(*), count(DISTINCT event_id) FROM orders")
			if fmt.Sprint(res.Rows[0][0]) != fmt.Sprint(len(want.orders)) || fmt.Sprint(res.Rows[0][1]) != fmt.Sprint(len(want.orders)) {
				t.Fatalf("orders view: %v rows / distinct, want %d", res.Rows[0], len(want.orders))
			}
			checkRevenue(t, base, want)

			t.Logf("queried after %v", time.Since(t0))
			l.stopAll()
			t.Logf("stopped after %v", time.Since(t0))
			l.assertExactlyOnce(cat)
			for _, p := range []*th.Proc{a, b, q} {
				assertNoSecrets(t, p.Log(), l)
			}
		})
	}
}

// checkRevenue compares order_revenue_minute over the produced range with
// the ground truth, minute by minute.
func checkRevenue(t *testing.T, base string, want truth) {
	t.Helper()
	var lo, hi int64 = 1 << 62, 0
	for m := range want.ordersByMinute {
		lo, hi = min(lo, m), max(hi, m)
	}
	from := time.Unix(lo*60, 0).UTC()
	to := time.Unix((hi+1)*60, 0).UTC()
	var body struct {
		Rows []struct {
			Minute     string `json:"minute"`
			Revenue    string `json:"revenue"`
			OrderCount int64  `json:"order_count"`
		} `json:"rows"`
	}
	url := base + "/v1/metrics/order_revenue_minute?from=" + from.Format(time.RFC3339) + "&to=" + to.Format(time.RFC3339)
	// The API answers 503 with Retry-After until its hot tier has read the
	// lake (warm-up, shown by /readyz): wait that out, and fail on any
	// other answer, or on a 503 that lasts.
	th.Eventually(t, 60*time.Second, "revenue API to answer", func() (bool, string) {
		var raw json.RawMessage
		switch status := th.GetJSON(t, url, &raw); status {
		case 200:
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("revenue: %v", err)
			}
			return true, ""
		case 503:
			return false, "HTTP 503: " + string(raw)
		default:
			t.Fatalf("revenue: HTTP %d: %s", status, raw)
			return false, ""
		}
	})
	if len(body.Rows) != len(want.ordersByMinute) {
		t.Fatalf("revenue: %d minutes, want %d", len(body.Rows), len(want.ordersByMinute))
	}
	for _, r := range body.Rows {
		ts, err := time.Parse(time.RFC3339, r.Minute)
		if err != nil {
			t.Fatal(err)
		}
		w := want.ordersByMinute[ts.Unix()/60]
		if r.OrderCount != int64(w.count) || r.Revenue != fmt.Sprintf("%d.%02d", w.cents/100, w.cents%100) {
			t.Fatalf("minute %s: %d orders, %s revenue; want %d, %d.%02d", r.Minute, r.OrderCount, r.Revenue, w.count, w.cents/100, w.cents%100)
		}
	}
}

// assertNoSecrets fails if a process logged the catalog password or the
// S3 secret key.
func assertNoSecrets(t *testing.T, log string, l *testLake) {
	t.Helper()
	var secrets []string
	if l.pg != nil {
		secrets = append(secrets, l.pg.Password)
	}
	if l.s3 != nil {
		secrets = append(secrets, l.s3.SecretKey)
	}
	if l.restSecret != "" {
		secrets = append(secrets, l.restSecret)
	}
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Fatalf("a process logged a credential")
		}
	}
}
