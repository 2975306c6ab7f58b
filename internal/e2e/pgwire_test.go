package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestPostgresWire serves a running `eventlake dev` to psql and pgx as
// independent clients: tokens as passwords, the same grants, masks and
// row filters as over HTTP, exact decimals and timestamps, parameters,
// `\d`, and a long query canceled.
func TestPostgresWire(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "eventlake.yaml")
	if err := os.WriteFile(cfgFile, []byte(`auth:
  roles:
    dashboard:
      grants:
        - objects: [orders]
          masks: {user_id: hash}
          row_filter: "amount >= 100"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	dev := th.Start(t, "dev", nil, "dev", "--no-demo", "--config", cfgFile, "--data-dir", data,
		"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pg-listen", "127.0.0.1:0")
	api, pgAddr := "http://"+dev.Ready["http"], dev.Ready["postgres"]
	if out, err := th.Command(t, "produce", "--brokers", dev.Ready["kafka"], "--count", "300", "--rate", "0", "--seed", "11",
		"--late-fraction", "0", "--inventory-fraction", "0").CombinedOutput(); err != nil {
		t.Fatalf("produce: %v: %s", err, out)
	}
	th.Eventually(t, 60*time.Second, "300 orders served", func() (bool, string) {
		r, status := th.TrySQL(t, api, "SELECT count(*) FROM orders")
		return status == 200 && fmt.Sprint(r.Rows[0][0]) == "300", fmt.Sprintf("%d %v %s", status, r.Rows, r.Error)
	})
	admin := th.Token(api)
	dash := th.CreateToken(t, nil, "dash", "dashboard", "--config", cfgFile, "--data-dir", data)
	ctx := context.Background()
	connect := func(user, token string) (*pgx.Conn, error) {
		host, port, _ := strings.Cut(pgAddr, ":")
		return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=eventlake sslmode=disable", host, port, user, token))
	}

	// A wrong token or a token under another name is refused (28P01).
	for _, c := range [][2]string{{"dev-admin", "elk_wrong"}, {"dash", admin}} {
		_, err := connect(c[0], c[1])
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Fatalf("user %s with a wrong token: %v", c[0], err)
		}
	}
	adminConn, err := connect("dev-admin", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer adminConn.Close(ctx)
	dashConn, err := connect("dash", dash)
	if err != nil {
		t.Fatal(err)
	}
	defer dashConn.Close(ctx)

	// Decimals and timestamps exactly as over HTTP; a parameter bound.
	const q = "SELECT order_id, user_id, amount, ts FROM orders WHERE amount >= $1 ORDER BY order_id LIMIT 50"
	httpRows := func(token, minAmount string) [][]string {
		t.Helper()
		th.SetToken(dev.Ready["http"], token)
		defer th.SetToken(dev.Ready["http"], admin)
		r := th.SQL(t, api, strings.Replace(q, "$1", minAmount, 1))
		var out [][]string
		for _, row := range r.Rows {
			ts, err := time.Parse(time.RFC3339Nano, row[3].(string))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, []string{row[0].(string), row[1].(string), fmt.Sprint(row[2]), ts.UTC().Format(time.RFC3339Nano)})
		}
		return out
	}
	pgRows := func(conn *pgx.Conn, minAmount string) [][]string {
		t.Helper()
		rows, err := conn.Query(ctx, q, minAmount)
		if err != nil {
			t.Fatal(err)
		}
		var out [][]string
		for rows.Next() {
			var (
				id, user string
				amount   pgtype.Numeric
				ts       time.Time
			)
			if err := rows.Scan(&id, &user, &amount, &ts); err != nil {
				t.Fatal(err)
			}
			v, err := amount.Value()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, []string{id, user, v.(string), ts.UTC().Format(time.RFC3339Nano)})
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	viaHTTP, viaPG := httpRows(admin, "0"), pgRows(adminConn, "0")
	if len(viaHTTP) != 50 || !reflect.DeepEqual(viaHTTP, viaPG) {
		t.Fatalf("admin over HTTP and Postgres differ:\n%v\n%v", viaHTTP[:3], viaPG[:min(3, len(viaPG))])
	}
	// The dashboard: orders of at least 100 only, user ids hashed; the
	// same over both protocols.
	dHTTP, dPG := httpRows(dash, "0"), pgRows(dashConn, "0")
	if len(dHTTP) == 0 || !reflect.DeepEqual(dHTTP, dPG) {
		t.Fatalf("dashboard over HTTP and Postgres differ:\n%v\n%v", dHTTP, dPG)
	}
	for _, r := range dPG {
		if strings.HasPrefix(r[1], "u-") || len(r[1]) != 64 {
			t.Fatalf("dashboard saw user id %q", r[1])
		}
		var amount float64
		fmt.Sscan(r[2], &amount)
		if amount < 100 {
			t.Fatalf("dashboard saw an order of %s", r[2])
		}
	}
	// Refusals keep their meaning: 42501 for what the role may not read.
	for _, sql := range []string{"SELECT count(*) FROM events", "SELECT * FROM read_parquet('" + data + "/warehouse/**/*.parquet')"} {
		_, err := dashConn.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Fatalf("dashboard %s: %v", sql, err)
		}
	}

	// The distinct-count macros (internal/hll) over Postgres, as the
	// dashboard: the admin's answer over HTTP under the same row filter.
	const distinct = "SELECT hll_count(regs) FROM (SELECT [CAST(64 * (hash(order_id) %% 4096) + 1 AS INTEGER)] AS regs FROM orders%s)"
	var pgDistinct int64
	if err := dashConn.QueryRow(ctx, fmt.Sprintf(distinct, "")).Scan(&pgDistinct); err != nil {
		t.Fatalf("hll_count over Postgres: %v", err)
	}
	if r := th.SQL(t, api, fmt.Sprintf(distinct, " WHERE amount >= 100")); pgDistinct == 0 || fmt.Sprint(r.Rows[0][0]) != fmt.Sprint(pgDistinct) {
		t.Fatalf("hll_count: %d over Postgres as the dashboard, %v over HTTP", pgDistinct, r.Rows)
	}

	// A long query is canceled when the client gives up (CancelRequest).
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	start := time.Now()
	_, err = adminConn.Exec(cctx, "SELECT count(*) FROM range(1000000000000)")
	cancel()
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("long query: %v after %v", err, time.Since(start))
	}
	var one int64
	if err := adminConn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil && !adminConn.IsClosed() {
		t.Fatalf("after a cancel: %v", err)
	}

	// What Grafana's Postgres data source sends for a time-series panel,
	// $__timeGroupAlias(ts, '1m') and $__timeFilter(ts) expanded, as the
	// dashboard role: the answer is the HTTP one.
	grafana := `SELECT floor(extract(epoch from ts)/60)*60 AS "time", sum(amount) AS revenue FROM orders ` +
		`WHERE ts BETWEEN '2000-01-01T00:00:00Z' AND '2100-01-01T00:00:00Z' GROUP BY 1 ORDER BY 1`
	rows, err := dashConn.Query(ctx, grafana)
	if err != nil {
		t.Fatal(err)
	}
	var panel []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		panel = append(panel, fmt.Sprint(vals))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	th.SetToken(dev.Ready["http"], dash)
	ref := th.SQL(t, api, grafana)
	th.SetToken(dev.Ready["http"], admin)
	if len(panel) == 0 || len(panel) != len(ref.Rows) {
		t.Fatalf("Grafana's panel query: %d rows over Postgres, %d over HTTP", len(panel), len(ref.Rows))
	}

	// psql: \d of a view, and a query.
	if _, err := exec.LookPath("psql"); err != nil {
		t.Fatal("psql is required (apt-get install postgresql-client)")
	}
	host, port, _ := strings.Cut(pgAddr, ":")
	psql := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("psql", append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", "dev-admin", "-d", "eventlake"}, args...)...)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+admin, "PGCONNECT_TIMEOUT=10")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("psql %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := psql("-c", `\d orders`); !strings.Contains(out, "amount") || !strings.Contains(out, "numeric(") || !strings.Contains(out, "timestamp with time zone") {
		t.Fatalf(`\d orders: %s`, out)
	}
	if out := psql("-c", `\d events`); !strings.Contains(out, "payload") || !strings.Contains(out, "kafka_offset") {
		t.Fatalf(`\d events: %s`, out)
	}
	if out := psql("-c", `\dt`); !strings.Contains(out, "orders_raw") || !strings.Contains(out, "audit_log") {
		t.Fatalf(`\dt: %s`, out)
	}
	if out := psql("-At", "-c", "SELECT count(*) FROM orders"); strings.TrimSpace(out) != "300" {
		t.Fatalf("psql count: %q", out)
	}
}

// TestPostgresWireTLS: with postgres.tls set, psql connects with
// sslmode=verify-full against the test CA, and a plaintext connection is
// refused before any token is asked for.
func TestPostgresWireTLS(t *testing.T) {
	dir := t.TempDir()
	certs := th.NewTestCerts(t, dir)
	dev := th.Start(t, "dev", []string{"EVENTLAKE_POSTGRES_TLS_CERT_FILE=" + certs.CertFile, "EVENTLAKE_POSTGRES_TLS_KEY_FILE=" + certs.KeyFile},
		"dev", "--no-demo", "--data-dir", filepath.Join(dir, "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pg-listen", "127.0.0.1:0")
	_, port, _ := strings.Cut(dev.Ready["postgres"], ":")
	token := th.Token(dev.Ready["http"])
	psql := func(sslmode string) (string, error) {
		cmd := exec.Command("psql", "-X", "-At", "-c", "SELECT 40 + 2",
			fmt.Sprintf("host=localhost port=%s user=dev-admin dbname=eventlake sslmode=%s sslrootcert=%s", port, sslmode, certs.CAFile))
		cmd.Env = append(os.Environ(), "PGPASSWORD="+token, "PGCONNECT_TIMEOUT=10")
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	th.Eventually(t, 30*time.Second, "psql over verify-full TLS", func() (bool, string) {
		out, err := psql("verify-full")
		return err == nil && out == "42", fmt.Sprint(out, err)
	})
	if out, err := psql("disable"); err == nil || !strings.Contains(out, "requires TLS") {
		t.Fatalf("plaintext was not refused as such: %s %v", out, err)
	}
}
