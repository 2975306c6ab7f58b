package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// benchAccess measures what the door costs: the 24 h revenue API with
// authentication and the audit log against the same API with
// authentication off (the audit log still records) and, with a baseline
// binary, against that build (before tokens and the audit log existed),
// in alternating rounds; and one SQL statement over the Postgres wire
// protocol against the same over HTTP.
func benchAccess(bin, baseBin, baseLabel, dir string, n, rounds int) ([]result, error) {
	step := time.Duration(int64(24*time.Hour) / int64(n))
	_, brk, err := produceAndIngest(bin, filepath.Join(dir, "this"), n, 0, "2026-11-25T00:00:00Z", step.String())
	if err != nil {
		return nil, err
	}
	defer brk.stop()
	// The baseline reads a lake of its own making (table layouts differ
	// between builds), of the same events.
	var baseArgs []string
	if baseBin != "" {
		_, bbrk, err := produceAndIngest(baseBin, filepath.Join(dir, "baseline"), n, 0, "2026-11-25T00:00:00Z", step.String())
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		defer bbrk.stop()
		baseArgs = []string{"query", "--data-dir", filepath.Join(dir, "baseline", "lake"), "--http", "127.0.0.1:0", "--brokers", bbrk.ready["kafka"], "--commit-read-models"}
	}
	lake := filepath.Join(dir, "this", "lake")
	const revenuePath = "/v1/metrics/order_revenue_minute?from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z"
	args := []string{"query", "--data-dir", lake, "--http", "127.0.0.1:0", "--brokers", brk.ready["kafka"], "--commit-read-models"}

	// run starts one query process, waits for the whole day in its
	// answers and times the revenue API.
	var want int64 = -1
	run := func(b string, env []string, withToken bool, extra ...string) ([]time.Duration, *proc, error) {
		a := args
		if b == baseBin {
			a = baseArgs
		}
		q, err := startAs(b, env, withToken, append(slices.Clone(a), extra...)...)
		if err != nil {
			return nil, nil, err
		}
		base := "http://" + q.ready["http"]
		if err := waitReady(base, 10*time.Minute); err != nil {
			q.stop()
			return nil, nil, err
		}
		deadline := time.Now().Add(10 * time.Minute)
		for {
			total, err := revenueTotal(base + revenuePath)
			if err == nil && (want < 0 && total > 0 || total == want) {
				if want < 0 {
					// The first run sets the day's figure once it stops moving.
					time.Sleep(3 * time.Second)
					if again, err := revenueTotal(base + revenuePath); err != nil || again != total {
						continue
					}
					want = total
				}
				break
			}
			if time.Now().After(deadline) {
				q.stop()
				return nil, nil, fmt.Errorf("revenue API never reached %d orders (last %d, %v)", want, total, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		lat, _, _, err := timeRevenue(base+revenuePath, 300)
		return lat, q, err
	}
	lats := map[string][]time.Duration{}
	var pgHTTP, pgWire []time.Duration
	for r := 0; r < rounds; r++ {
		kinds := []string{"auth", "open"}
		if baseBin != "" {
			kinds = append(kinds, "baseline")
		}
		for _, k := range kinds {
			var (
				lat []time.Duration
				q   *proc
				err error
			)
			switch k {
			case "auth":
				lat, q, err = run(bin, []string{noLimits}, true, "--pg-listen", "127.0.0.1:0")
			case "open":
				lat, q, err = run(bin, []string{"EVENTLAKE_AUTH_DISABLED=true", noLimits}, false)
			case "baseline":
				lat, q, err = run(baseBin, nil, false)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			lats[k] = append(lats[k], lat...)
			if k == "auth" {
				h, p, err := sqlBothWays(q)
				if err != nil {
					q.stop()
					return nil, err
				}
				pgHTTP, pgWire = append(pgHTTP, h...), append(pgWire, p...)
			}
			q.stop()
		}
	}
	for _, l := range lats {
		slices.Sort(l)
	}
	slices.Sort(pgHTTP)
	slices.Sort(pgWire)
	p50 := func(l []time.Duration) time.Duration { return l[len(l)/2] }
	how := fmt.Sprintf("%d order.created events over one day; `eventlake query --commit-read-models` (hot tier); %d rounds alternating the builds, 300 timed requests each", n, rounds)
	out := []result{
		{"24 h revenue API with a token and the audit log, p50", ms(p50(lats["auth"])), "", "", how},
		{"24 h revenue API, authentication off (audit log on), p50", ms(p50(lats["open"])), "", "", "the same, `auth.disabled: true`: the token check's share"},
	}
	if baseBin != "" {
		d := p50(lats["auth"]) - p50(lats["baseline"])
		out = append(out, result{"24 h revenue API: this build (token + audit) vs " + baseLabel + ", p50",
			fmt.Sprintf("%s vs %s (%+.2f ms)", ms(p50(lats["auth"])), ms(p50(lats["baseline"])), float64(d.Microseconds())/1000),
			"<= +1 ms", verdict(d <= time.Millisecond), "the same query process of " + baseLabel + ", which has neither"})
	}
	out = append(out,
		result{"24 h revenue SQL over HTTP (POST /v1/sql), p50", ms(p50(pgHTTP)), "", "", "the per-minute aggregate over `orders` (1,440 rows), JSON, with a token"},
		result{"the same SQL over the Postgres wire protocol (pgx), p50", ms(p50(pgWire)), "", "", "extended protocol, text results, the same token; each statement is prepared twice (Describe, then run)"},
	)
	return out, nil
}

// sqlBothWays times the 24 h revenue SQL over HTTP and over Postgres.
func sqlBothWays(q *proc) (httpLat, pgLat []time.Duration, err error) {
	sql := fmt.Sprintf(revenueSQL, "orders", "")
	for i := 0; i < 23; i++ {
		d, err := timeSQLOnce("http://"+q.ready["http"], sql)
		if err != nil {
			return nil, nil, err
		}
		if i >= 3 {
			httpLat = append(httpLat, d)
		}
	}
	tok, _ := tokens.Load(q.ready["http"])
	host, port, _ := strings.Cut(q.ready["postgres"], ":")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s sslmode=disable", host, port, q.tokenName, tok))
	if err != nil {
		return nil, nil, fmt.Errorf("connect over Postgres: %w", err)
	}
	defer conn.Close(ctx)
	for i := 0; i < 23; i++ {
		t0 := time.Now()
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			return nil, nil, err
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
		if n == 0 {
			fmt.Fprintln(os.Stderr, "warning: the Postgres answer is empty")
		}
		if i >= 3 {
			pgLat = append(pgLat, time.Since(t0))
		}
	}
	return httpLat, pgLat, nil
}
