package pgwire

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Grafana's Postgres data source runs its queries with pgx's simple
// protocol (PgConn().Exec) and reads the text results; these are the
// queries it sends, with its macros expanded as it expands them.
const (
	grafanaVersion   = `SELECT current_setting('server_version_num')::int/100 as version`
	grafanaTimescale = `SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'`
	grafanaSchemaIn  = `
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )`
	grafanaTablesSQL = `SELECT
    CASE WHEN ` + grafanaSchemaIn + `
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN ` + grafanaSchemaIn + ` THEN 0 ELSE 1 END, 1`
	grafanaTablesOfSQL = `SELECT quote_ident(table_name) AS "table"
      FROM information_schema.tables
      WHERE quote_ident(table_schema) = 'audit'
      ORDER BY 1`
	grafanaColumnsOfSQL = `SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident(%[1]s),1) = 2
        THEN quote_ident(table_schema) = (parse_ident(%[1]s))[1]
          AND quote_ident(table_name) = (parse_ident(%[1]s))[2]
        ELSE quote_ident(table_name) = %[1]s
          AND ` + grafanaSchemaIn + `
      END`
)

// grafanaRange is the dashboard's time range: $__timeFilter(ts) expands
// to ts BETWEEN from AND to, in RFC 3339 with nanoseconds.
var grafanaFrom, grafanaTo = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC)

func timeFilter(col string) string {
	return fmt.Sprintf("%s BETWEEN '%s' AND '%s'", col, grafanaFrom.Format(time.RFC3339Nano), grafanaTo.Format(time.RFC3339Nano))
}

// timeGroupAlias expands $__timeGroupAlias(col, '1m').
func timeGroupAlias(col string, seconds int) string {
	return fmt.Sprintf(`floor(extract(epoch from %s)/%d)*%d AS "time"`, col, seconds, seconds)
}

func TestGrafanaQueries(t *testing.T) {
	s := startServer(t, Config{})
	ctx := context.Background()
	conn := connectPgx(t, s.dsn("default_query_exec_mode=simple_protocol application_name=Grafana"))
	// run sends sql as Grafana does and returns the column names and
	// the rows, as text.
	run := func(sql string) (cols []string, rows [][]string) {
		t.Helper()
		res, err := conn.PgConn().Exec(ctx, sql).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		for _, r := range res {
			for _, f := range r.FieldDescriptions {
				cols = append(cols, f.Name)
			}
			for _, row := range r.Rows {
				var out []string
				for _, v := range row {
					if v == nil {
						out = append(out, "NULL")
					} else {
						out = append(out, string(v))
					}
				}
				rows = append(rows, out)
			}
		}
		return cols, rows
	}
	check := func(what string, got [][]string, want ...string) {
		t.Helper()
		var lines []string
		for _, r := range got {
			lines = append(lines, strings.Join(r, "|"))
		}
		if strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n%s\nwant:\n%s", what, strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
	}

	// The health check: pgx's ping, then what older versions sent.
	if err := conn.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
	_, rows := run("SELECT 1")
	check("SELECT 1", rows, "1")

	cols, rows := run(grafanaVersion)
	check("version", rows, "1500")
	if len(cols) != 1 || cols[0] != "version" {
		t.Errorf("version columns %q", cols)
	}
	// No TimescaleDB: no rows (pgconn's ReadAll keeps no columns then).
	_, rows = run(grafanaTimescale)
	check("timescaledb", rows)

	_, rows = run(grafanaTablesSQL)
	check("tables", rows, "events", "orders", `audit."Query Log"`)
	_, rows = run(grafanaTablesOfSQL)
	check("tables of audit", rows, `"Query Log"`)
	_, rows = run(fmt.Sprintf(grafanaColumnsOfSQL, "'events'"))
	check("columns of events", rows,
		"event_id|text", "type|text", "ts|timestamp with time zone", "amount|numeric(18,2)", "quantity|bigint",
		"paid|boolean", "payload|bytea", "tags|text[]", "counts|bigint[]")
	_, rows = run(fmt.Sprintf(grafanaColumnsOfSQL, `'audit."Query Log"'`))
	check("columns of audit.Query Log", rows, `"User"|text`, "logged_at|timestamp with time zone")

	// A time series panel: SELECT $__timeGroupAlias(ts,'1m'), sum(amount)
	// FROM events WHERE $__timeFilter(ts) GROUP BY 1 ORDER BY 1.
	cols, rows = run(`SELECT ` + timeGroupAlias("ts", 60) + `, sum(amount) AS revenue, count(*) AS orders
FROM events WHERE ` + timeFilter("ts") + ` AND type = 'order.created' GROUP BY 1 ORDER BY 1`)
	if strings.Join(cols, ",") != "time,revenue,orders" {
		t.Errorf("time series columns %q", cols)
	}
	m := grafanaFrom.Unix()
	check("time series", rows,
		fmt.Sprintf("%d|19.99|2", m), // floor(...)*60 is a DOUBLE, written as Postgres writes float8
		fmt.Sprintf("%d|-3.50|1", m+120))

	// $__time(ts) and $__timeEpoch(ts) in a table panel.
	_, rows = run(`SELECT ts AS "time", event_id, amount FROM events WHERE ` + timeFilter("ts") + ` ORDER BY 1 LIMIT 2`)
	check("$__time", rows, "2026-12-01 10:00:05+00|e-1|19.98", "2026-12-01 10:00:45+00|e-2|0.01")
	_, rows = run(`SELECT extract(epoch from ts) as "time", quantity FROM events WHERE ` + timeFilter("ts") + ` ORDER BY 1 LIMIT 1`)
	check("$__timeEpoch", rows, fmt.Sprintf("%d|2", m+5))
}
