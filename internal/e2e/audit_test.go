package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestAuditLog runs a scripted session against `eventlake dev`, over
// HTTP and the Postgres wire protocol, allowed and refused, and finds
// every request in the audit_log table once, with its fields. The
// process is killed by SIGKILL inside the audit commit twice on the way
// (before the commit at shutdown, then right after the commit of the
// backlog at the next start): nothing is lost and nothing doubled. Only
// compliance and admin read audit_log.
func TestAuditLog(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "eventlake.yaml")
	if err := os.WriteFile(cfgFile, []byte(`auth:
  roles:
    support:
      grants: [{objects: [orders]}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	start := func(env ...string) *th.Proc {
		p := th.Start(t, "dev", env, "dev", "--no-demo", "--config", cfgFile, "--data-dir", data,
			"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pg-listen", "127.0.0.1:0")
		th.Eventually(t, 30*time.Second, "the query service serving", func() (bool, string) {
			r, status := th.TrySQL(t, "http://"+p.Ready["http"], "SELECT 1") // as dev-admin
			return status == 200, r.Error
		})
		return p
	}
	// Run 1: records are made durable, then the process dies before its
	// first audit commit (at shutdown: the interval is an hour).
	dev := start("EVENTLAKE_AUDIT_SHIP_INTERVAL=1h", "EVENTLAKE_FAILPOINTS=lake/before-commit/audit=1")
	ana := th.CreateToken(t, nil, "ana", "analyst", "--config", cfgFile, "--data-dir", data)
	sup := th.CreateToken(t, nil, "sup", "support", "--config", cfgFile, "--data-dir", data)
	comp := th.CreateToken(t, nil, "comp", "compliance", "--config", cfgFile, "--data-dir", data)

	type want struct {
		principal, role, protocol, kind, outcome, marker string
	}
	var wants []want
	httpSQL := func(dev *th.Proc, token, principal, role, marker, sql string, status int, outcome string) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"sql": sql + " /* " + marker + " */"})
		req, _ := http.NewRequest(http.MethodPost, "http://"+dev.Ready["http"]+"/v1/sql", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Fatalf("%s: HTTP %d, want %d", marker, resp.StatusCode, status)
		}
		if token == "" {
			marker = "POST /v1/sql" // the body of a request without a token is not read
		}
		wants = append(wants, want{principal, role, "http", "sql", outcome, marker})
	}
	httpGet := func(dev *th.Proc, token, principal, role, path string, status int, outcome string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+dev.Ready["http"]+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Fatalf("GET %s: HTTP %d, want %d", path, resp.StatusCode, status)
		}
		wants = append(wants, want{principal, role, "http", "model", outcome, path})
	}
	pgSQL := func(dev *th.Proc, user, token, role, marker, sql string, args []any, code, outcome string) {
		t.Helper()
		host, port, _ := strings.Cut(dev.Ready["postgres"], ":")
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s sslmode=disable", host, port, user, token))
		if err != nil {
			var pe *pgconn.PgError
			if code == "28P01" && errors.As(err, &pe) && pe.Code == code {
				wants = append(wants, want{user, "", "postgres", "sql", outcome, ""})
				return
			}
			t.Fatalf("%s: connect: %v", marker, err)
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, sql+" /* "+marker+" */", args...)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
		}
		var pe *pgconn.PgError
		if (code == "" && err != nil) || (code != "" && (!errors.As(err, &pe) || pe.Code != code)) {
			t.Fatalf("%s: %v, want SQLSTATE %q", marker, err, code)
		}
		wants = append(wants, want{user, role, "postgres", "sql", outcome, marker})
	}

	httpSQL(dev, ana, "ana", "analyst", "step-1", "SELECT count(*) FROM orders", 200, "ok")
	httpSQL(dev, sup, "sup", "support", "step-2", "SELECT * FROM dlq", 403, "denied")
	httpSQL(dev, "", "", "", "step-3", "SELECT 1", 401, "denied")
	httpGet(dev, ana, "ana", "analyst", "/v1/metrics/order_revenue_minute?from=2026-11-26T10:00:00Z&to=2026-11-26T11:00:00Z", 200, "ok")
	pgSQL(dev, "ana", ana, "analyst", "step-5", "SELECT count(*) FROM orders WHERE ts > $1", []any{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, "", "ok")
	pgSQL(dev, "sup", sup, "support", "step-6", "SELECT count(*) FROM events", nil, "42501", "denied")
	pgSQL(dev, "sup", "elk_wrong", "", "step-7", "SELECT 1", nil, "28P01", "denied")
	if err := dev.Stop(60 * time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the before-commit failpoint did not fire: dev exited with %v", err)
	}

	// Run 2: the backlog is committed at start, and the process dies right
	// after that commit, before it removes the shipped log segments.
	dev = th.StartNoWait(t, "dev", []string{"EVENTLAKE_FAILPOINTS=lake/after-commit/audit=1", "EVENTLAKE_POSTGRES_LISTEN=127.0.0.1:0"},
		"dev", "--no-demo", "--config", cfgFile, "--data-dir", data, "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	th.Eventually(t, 60*time.Second, "the after-commit failpoint to kill dev", func() (bool, string) {
		exited, err := dev.Exited()
		return exited, fmt.Sprint(err)
	})
	if _, err := dev.Exited(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("run 2 did not die at the after-commit failpoint: %v", err)
	}

	// Run 3: carries on; more requests, then the table is read.
	dev = start()
	api := "http://" + dev.Ready["http"]
	httpSQL(dev, ana, "ana", "analyst", "step-8", "SELECT count(*) FROM events", 200, "ok")
	httpSQL(dev, ana, "ana", "analyst", "step-9", "SELECT * FROM audit_log", 403, "denied")
	th.SetToken(dev.Ready["http"], comp)
	type row struct {
		principal, role, client, protocol, kind, outcome, statement, objects, snapshots, requestID string
		rows                                                                                       int64
	}
	var got []row
	th.Eventually(t, 60*time.Second, "every request in audit_log", func() (bool, string) {
		r, status := th.TrySQL(t, api, `SELECT coalesce(principal, ''), coalesce(role, ''), coalesce(client, ''), protocol, kind, outcome,
			coalesce(statement, ''), coalesce(objects, ''), coalesce(snapshot_ids, ''), coalesce(request_id, ''), rows_returned
			FROM audit_log WHERE principal IS NULL OR principal NOT IN ('comp', 'dev-admin') ORDER BY ts, log_seq`)
		if status != 200 {
			return false, fmt.Sprintf("HTTP %d %s", status, r.Error)
		}
		got = got[:0]
		for _, v := range r.Rows {
			n, _ := v[10].(json.Number).Int64()
			got = append(got, row{v[0].(string), v[1].(string), v[2].(string), v[3].(string), v[4].(string), v[5].(string),
				v[6].(string), v[7].(string), v[8].(string), v[9].(string), n})
		}
		return len(got) >= len(wants), fmt.Sprintf("%d of %d records: %v", len(got), len(wants), got)
	})
	if len(got) != len(wants) {
		t.Fatalf("audit_log holds %d records, want %d (none lost, none doubled):\n%v", len(got), len(wants), got)
	}
	for i, w := range wants {
		g := got[i]
		if g.principal != w.principal || g.role != w.role || g.protocol != w.protocol || g.kind != w.kind || g.outcome != w.outcome ||
			!strings.Contains(g.statement, w.marker) || (w.protocol == "http" && (g.client == "" || g.requestID == "")) {
			t.Errorf("record %d: %+v, want %+v", i, g, w)
		}
	}
	if g := got[0]; g.objects != `["orders"]` || g.rows != 1 {
		t.Errorf("the first query's record: %+v", g)
	}
	// The tables behind the views read, with their snapshots (orders_raw
	// and inventory_raw exist once ingest committed; none has yet here,
	// but the audit log itself has).
	th.SQL(t, api, "SELECT count(*) FROM audit_log /* step-10 */")
	th.Eventually(t, 30*time.Second, "the compliance query recorded with the audit_log snapshot", func() (bool, string) {
		// (the marker spelled apart: this query is recorded too)
		r := th.SQL(t, api, "SELECT snapshot_ids FROM audit_log WHERE statement LIKE '%step' || '-10%'")
		if len(r.Rows) != 1 {
			return false, fmt.Sprint(r.Rows)
		}
		s, _ := r.Rows[0][0].(string)
		return strings.HasPrefix(s, `{"audit_log":`) && !strings.Contains(s, "orders"), s
	})
}
