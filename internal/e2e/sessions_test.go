package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// sessionsTruth sessionizes the lake's orders in SQL, independently of
// the hot tier's engine: a user's orders of one UTC day at most 30
// minutes apart form a session. The rows are (user, start µs, end µs,
// events, revenue), like those selected from user_sessions by
// sessionsRows.
const sessionsTruth = `WITH e AS (SELECT user_id, epoch_us(ts) AS t, amount FROM orders),
g AS (SELECT *, CASE WHEN lag(t) OVER w IS NULL OR t - lag(t) OVER w > 1800000000 THEN 1 ELSE 0 END AS n
      FROM e WINDOW w AS (PARTITION BY user_id, t // 86400000000 ORDER BY t)),
s AS (SELECT *, sum(n) OVER (PARTITION BY user_id, t // 86400000000 ORDER BY t ROWS UNBOUNDED PRECEDING) AS sid FROM g)
SELECT user_id, min(t) AS a, max(t) AS b, count(*) AS c, sum(amount) AS r FROM s GROUP BY user_id, t // 86400000000, sid`

const sessionsRows = `SELECT user_id, epoch_us(ts) AS a, epoch_us(session_end) AS b, events AS c, revenue AS r FROM user_sessions`

// sessionsDiff counts the sessions the hot tier committed (final and
// open rows) that the orders do not give, and those they give that it
// did not commit; with the totals.
func sessionsDiff(t *testing.T, api string) (extra, missing, truth, have int64, state string) {
	t.Helper()
	q := fmt.Sprintf(`WITH x AS (%s), y AS (%s) SELECT
		(SELECT count(*) FROM (SELECT * FROM y EXCEPT ALL SELECT * FROM x)),
		(SELECT count(*) FROM (SELECT * FROM x EXCEPT ALL SELECT * FROM y)),
		(SELECT count(*) FROM x), (SELECT count(*) FROM y)`, sessionsTruth, sessionsRows)
	r, status := th.TrySQL(t, api, q)
	if status != http.StatusOK || len(r.Rows) != 1 {
		return -1, -1, -1, -1, fmt.Sprintf("HTTP %d %s", status, r.Error)
	}
	n := func(i int) int64 {
		v, err := strconv.ParseInt(fmt.Sprint(r.Rows[0][i]), 10, 64)
		if err != nil {
			t.Fatalf("sessions diff: %v", err)
		}
		return v
	}
	extra, missing, truth, have = n(0), n(1), n(2), n(3)
	return extra, missing, truth, have, fmt.Sprintf("%d sessions committed, %d in the orders; %d committed that the orders do not give, %d not committed",
		have, truth, extra, missing)
}

// TestSessions: the hot tier keeps user_sessions equal to the orders'
// sessions while they flow, across a kill -9, and corrects by
// re-aggregation a late order that joins two sessions it had closed;
// user_session_summary, declared over it, answers the same as SQL over
// the table.
func TestSessions(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	env := []string{
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=1s",
		"EVENTLAKE_STREAMER_COMMIT_INTERVAL=1s",
		"EVENTLAKE_STREAMER_REAGGREGATE_EVERY=2s",
	}
	start := func() *th.Proc {
		return th.Start(t, "dev", env, "dev", "--no-demo", "--data-dir", data,
			"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pg-listen", "off")
	}
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	file := func(name string, lines ...string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	order := func(id, user string, at time.Duration, amount string) string {
		return fmt.Sprintf(`{"event_id":"sess-%s","source":"shop","type":"order.created","timestamp":%q,"payload":{"order_id":"o-%s","user_id":%q,"product_id":"p-1","quantity":1,"amount":%q}}`,
			id, day.Add(at).Format(time.RFC3339Nano), id, user, amount)
	}
	produce := func(broker string, args ...string) {
		t.Helper()
		if out, err := runBinary(t, append([]string{"produce", "--brokers", broker, "--rate", "0"}, args...)...); err != nil {
			t.Fatalf("produce %v: %v\n%s", args, err, out)
		}
	}
	orderCount := func(api string) int64 {
		r, status := th.TrySQL(t, api, "SELECT count(*) FROM orders")
		if status != http.StatusOK || len(r.Rows) != 1 {
			t.Fatalf("count orders: HTTP %d %s", status, r.Error)
		}
		n, _ := strconv.ParseInt(fmt.Sprint(r.Rows[0][0]), 10, 64)
		return n
	}
	// equal waits until the committed sessions are exactly the orders'.
	equal := func(api, what string, orders int64) {
		t.Helper()
		th.Eventually(t, 90*time.Second, what, func() (bool, string) {
			if n := orderCount(api); n != orders {
				return false, fmt.Sprintf("%d of %d orders in the lake", n, orders)
			}
			extra, missing, _, have, state := sessionsDiff(t, api)
			return extra == 0 && missing == 0 && have > 0, state
		})
	}

	// Phase 1: the generator's orders over the morning (no late ones:
	// those are phase 3's).
	dev := start()
	api, broker := "http://"+dev.Ready["http"], dev.Ready["kafka"]
	produce(broker, "--count", "3000", "--seed", "41", "--start", day.Format(time.RFC3339), "--step", "10s",
		"--late-fraction", "0", "--duplicate-fraction", "0.02", "--inventory-fraction", "0.1")
	orders := orderCount(api) // settles below
	th.Eventually(t, 60*time.Second, "phase 1 in the lake", func() (bool, string) {
		n := orderCount(api)
		ok := n == orders && n > 2500
		orders = n
		return ok, fmt.Sprintf("%d orders", n)
	})
	equal(api, "sessions of phase 1", orders)
	if _, missing, truth, _, _ := sessionsDiff(t, api); missing != 0 || truth < 1000 {
		t.Fatalf("phase 1 gave %d sessions (%d missing); want over a thousand", truth, missing)
	}

	// kill -9 after the commit, then phase 2 across midnight: the restart
	// restores the open sessions and counts nothing twice; the day closes.
	dev.Kill()
	dev = start()
	api, broker = "http://"+dev.Ready["http"], dev.Ready["kafka"]
	th.Eventually(t, 30*time.Second, "the sessions restored", func() (bool, string) {
		return strings.Contains(dev.Log(), `msg="sessions loaded" component=streamer table=user_sessions open=`), "not logged yet"
	})
	produce(broker, "--count", "1200", "--seed", "42", "--start", day.Add(8*time.Hour+20*time.Minute+10*time.Second).Format(time.RFC3339),
		"--step", "15s", "--late-fraction", "0", "--duplicate-fraction", "0", "--inventory-fraction", "0")
	orders += 1200
	equal(api, "sessions after the restart", orders)
	// Two sessions of u-late, 50 minutes apart; then orders of the next
	// day push the watermark past midnight and the gap: the day closes.
	produce(broker, "--file", file("late-1.ndjson",
		order("l1", "u-late", 14*time.Hour, "1.00"), order("l2", "u-late", 14*time.Hour+10*time.Minute, "2.00"),
		order("l3", "u-late", 15*time.Hour, "4.00")))
	orders += 3
	produce(broker, "--count", "200", "--seed", "43", "--start", day.Add(25*time.Hour).Format(time.RFC3339),
		"--step", "10s", "--late-fraction", "0", "--duplicate-fraction", "0", "--inventory-fraction", "0")
	orders += 200
	equal(api, "sessions of the next day", orders)

	// Phase 3: an order of u-late between its two closed sessions. The hot
	// tier cannot apply it (its day is closed); re-aggregation joins them.
	late := metric(t, dev, "eventlake_sessions_late_total")
	fixes := metric(t, dev, "eventlake_sessions_day_rewrites_total")
	r := th.SQL(t, api, "SELECT count(*) FROM user_sessions WHERE user_id = 'u-late' AND NOT open")
	if got := fmt.Sprint(r.Rows); got != "[[2]]" {
		t.Fatalf("u-late's closed sessions before the late order: %s, want 2", got)
	}
	produce(broker, "--file", file("late-2.ndjson", order("l4", "u-late", 14*time.Hour+35*time.Minute, "8.00")))
	orders++
	th.Eventually(t, 30*time.Second, "the late order counted late", func() (bool, string) {
		v := metric(t, dev, "eventlake_sessions_late_total")
		return v == late+1, fmt.Sprintf("late_total %v (was %v)", v, late)
	})
	equal(api, "sessions after re-aggregation", orders)
	if v := metric(t, dev, "eventlake_sessions_day_rewrites_total"); v < fixes+1 {
		t.Fatalf("sessions equal the orders' but no day was re-aggregated (%v, was %v)", v, fixes)
	}
	r = th.SQL(t, api, "SELECT events, orders, revenue, epoch_us(session_end) - epoch_us(ts) FROM user_sessions WHERE user_id = 'u-late'")
	if got := fmt.Sprint(r.Rows); got != "[[4 4 15.00 3600000000]]" {
		t.Fatalf("u-late's sessions after the late order: %s, want one of 4 orders over an hour", got)
	}

	// user_session_summary answers what SQL over user_sessions gives, for
	// the closed day, and has re-aggregated u-late's row.
	from, to := day.Format(time.RFC3339), day.Add(24*time.Hour).Format(time.RFC3339)
	want := map[string]string{}
	r = th.SQL(t, api, fmt.Sprintf(`SELECT user_id, count(*), sum(events), max(session_end), sum(seconds)
		FROM user_sessions WHERE NOT open AND ts >= '%s' AND ts < '%s' GROUP BY user_id`, from, to))
	instant := func(v any) string {
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(v))
		if err != nil {
			t.Fatalf("a time %v: %v", v, err)
		}
		return ts.UTC().Format(time.RFC3339Nano)
	}
	for _, row := range r.Rows {
		want[fmt.Sprint(row[0])] = fmt.Sprintf("%v|%v|%s", row[1], row[2], instant(row[3]))
	}
	if len(want) < 500 {
		t.Fatalf("only %d users with closed sessions on the day", len(want))
	}
	th.Eventually(t, 30*time.Second, "the summary equal to SQL over user_sessions", func() (bool, string) {
		var a modelAnswer
		if st := askJSON(t, http.MethodGet, api+"/v1/models/user_session_summary?from="+from+"&to="+to, nil, &a); st.status != http.StatusOK {
			return false, fmt.Sprintf("HTTP %d %s", st.status, a.Error)
		}
		got := map[string]string{}
		for _, row := range a.Rows {
			got[fmt.Sprint(row["user_id"])] = fmt.Sprintf("%v|%v|%s", row["sessions"], row["events"], instant(row["last_seen"]))
		}
		if g, w := got["u-late"], want["u-late"]; !strings.HasPrefix(w, "1|4|") || g != w {
			return false, fmt.Sprintf("u-late: summary %q, SQL %q; want one session of 4 events", g, w)
		}
		bad := 0
		for u, w := range want {
			if got[u] != w {
				bad++
				if bad == 1 {
					t.Logf("%s: summary %s, SQL %s", u, got[u], w)
				}
			}
		}
		return bad == 0 && len(got) == len(want), fmt.Sprintf("%d users in the summary, %d by SQL, %d differ", len(got), len(want), bad)
	})
}
