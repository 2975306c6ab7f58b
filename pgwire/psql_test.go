package pgwire

import (
	"strings"
	"testing"
)

// mustPsql runs psql and fails the test when it fails.
func mustPsql(t *testing.T, conninfo string, args ...string) string {
	t.Helper()
	out, err := psql(t, conninfo, args...)
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", args, err, out)
	}
	return out
}

// squash collapses runs of blanks, so that psql's aligned tables compare
// without their padding.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func wantLines(t *testing.T, what, got string, want ...string) {
	t.Helper()
	sq := squash(got)
	for _, w := range want {
		if !strings.Contains(sq, w) {
			t.Errorf("%s: missing %q in\n%s", what, w, got)
		}
	}
}

// TestPsqlDescribe runs psql 15's describe commands, whose catalog
// queries DuckDB cannot run as sent.
func TestPsqlDescribe(t *testing.T) {
	s := startServer(t, Config{})
	dsn := s.dsn("")
	wantLines(t, `\dt`, mustPsql(t, dsn, "-c", `\dt`),
		"Schema | Name | Type | Owner",
		"audit | Query Log | table | eventlake",
		"main | events | table | eventlake",
		"main | orders | table | eventlake",
		"(3 rows)")
	wantLines(t, `\d`, mustPsql(t, dsn, "-c", `\d`), "main | orders | table | eventlake")
	wantLines(t, `\dt ev*`, mustPsql(t, dsn, "-c", `\dt ev*`), "main | events | table | eventlake", "(1 row)")
	wantLines(t, `\dt audit.*`, mustPsql(t, dsn, "-c", `\dt audit.*`), "audit | Query Log | table | eventlake", "(1 row)")
	wantLines(t, `\d events`, mustPsql(t, dsn, "-c", `\d events`),
		`Table "main.events"`,
		"Column | Type | Collation | Nullable | Default",
		"event_id | text | | |",
		"ts | timestamp with time zone | | |",
		"amount | numeric(18,2) | | |",
		"quantity | bigint | | |",
		"paid | boolean | | |",
		"payload | bytea | | |",
		"tags | text[] | | |",
		"counts | bigint[] | | |")
	wantLines(t, `\d+ orders`, mustPsql(t, dsn, "-c", `\d+ orders`),
		`Table "main.orders"`, "Storage", "order_id | text | | | | extended |", "amount | numeric(18,2) | | | | extended |")
	wantLines(t, `\d audit."Query Log"`, mustPsql(t, dsn, "-c", `\d audit."Query Log"`),
		`Table "audit.Query Log"`, "User | text", "logged_at | timestamp with time zone")
	wantLines(t, `\dn`, mustPsql(t, dsn, "-c", `\dn`), "audit | eventlake", "main | eventlake")
	wantLines(t, `\l`, mustPsql(t, dsn, "-c", `\l`), "eventlake | eventlake | UTF8")
	wantLines(t, `\dv`, mustPsql(t, dsn, "-c", `\dv`), "Did not find any relations.")

	out, err := psql(t, dsn, "-c", `\d nosuch`)
	if err == nil || !strings.Contains(out, `Did not find any relation named "nosuch"`) {
		t.Errorf(`\d nosuch: err=%v, %s`, err, out)
	}
}

// TestPsqlTypes reads every column type through psql's text format, as
// Postgres writes it.
func TestPsqlTypes(t *testing.T) {
	s := startServer(t, Config{})
	out := mustPsql(t, s.dsn(""), "-A", "-t", "-F", "|", "-c",
		"SELECT event_id, ts, amount, quantity, paid, payload, tags, counts FROM events ORDER BY event_id")
	want := strings.Join([]string{
		`e-1|2026-12-01 10:00:05+00|19.98|2|t|\xaabb|{a,"b c"}|{1,2}`,
		`e-2|2026-12-01 10:00:45+00|0.01|1|f||{}|{NULL,3}`,
		`e-3|2026-12-01 10:01:10.123456+00|12345678901234.56|-5||\x||`,
		`e-4|2026-12-01 10:02:00+00|-3.50|7|t|\x78|{"{x}","NULL","\"q\""}|{}`,
	}, "\n")
	if out != want {
		t.Errorf("rows:\n%s\nwant:\n%s", out, want)
	}
	out = mustPsql(t, s.dsn(""), "-A", "-t", "-F", "|", "-c",
		`SELECT 1::SMALLINT, 2::INTEGER, 1.5::FLOAT, 0.1::DOUBLE, 1e20::DOUBLE, DATE '2026-12-01', TIMESTAMP '2026-12-01 10:00:00.5',
		INTERVAL '1 year 2 months 3 days 04:05:06.5', '4bf92f35-77b3-4da6-a3ce-0000000000ab'::UUID, '{"a":[1,2]}'::JSON,
		170141183460469231731687303715884105727::HUGEINT, {'x': 1}, TIME '10:11:12'`)
	want = `1|2|1.5|0.1|1e+20|2026-12-01|2026-12-01 10:00:00.5|1 year 2 mons 3 days 04:05:06.5|4bf92f35-77b3-4da6-a3ce-0000000000ab|{"a":[1,2]}|170141183460469231731687303715884105727|{"x":1}|10:11:12`
	if out != want {
		t.Errorf("scalars:\n%s\nwant:\n%s", out, want)
	}
}

// TestPsqlSession answers session statements without DuckDB.
func TestPsqlSession(t *testing.T) {
	s := startServer(t, Config{})
	dsn := s.dsn("")
	out := mustPsql(t, dsn, "-A", "-t",
		"-c", "SET application_name = 'dash board'; SHOW application_name",
		"-c", "SET TIME ZONE 'UTC'", "-c", "SHOW TimeZone",
		"-c", "SET extra_float_digits TO 3", "-c", "SHOW extra_float_digits",
		"-c", "SET search_path TO public, main", "-c", "SHOW search_path",
		"-c", "SET DateStyle = 'ISO'", "-c", "SET client_encoding = 'UTF8'",
		"-c", "SHOW server_version", "-c", "SHOW transaction_isolation", "-c", "SHOW TRANSACTION ISOLATION LEVEL",
		"-c", "BEGIN", "-c", "SELECT count(*) FROM events", "-c", "COMMIT", "-c", "ROLLBACK",
		"-c", "RESET ALL", "-c", "SHOW application_name")
	want := strings.Join([]string{"SET", "dash board", "SET", "UTC", "SET", "3", "SET", "public, main", "SET", "SET",
		"15.0 (eventlake)", "read committed", "read committed", "BEGIN", "4", "COMMIT", "ROLLBACK", "RESET"}, "\n")
	if out != want {
		t.Errorf("session:\n%s\nwant:\n%s", out, want)
	}
	for _, c := range []struct{ sql, want string }{
		{"SET TimeZone = 'Europe/Berlin'", "only UTC is supported"},
		{"SET work_mem = '1MB'", `unrecognized configuration parameter "work_mem"`},
		{"SET server_version = '16'", "cannot be changed"},
		{"CREATE TABLE t (i INTEGER)", "only SELECT statements are allowed"},
		{"SELEC 1", "syntax error"},
	} {
		out, err := psql(t, dsn, "-c", c.sql)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: err=%v out=%s, want %q", c.sql, err, out, c.want)
		}
	}
}

func TestPsqlWrongPassword(t *testing.T) {
	s := startServer(t, Config{})
	out, err := psql(t, strings.Replace(s.dsn(""), testToken, "wrong", 1), "-c", "SELECT 1")
	if err == nil || !strings.Contains(out, `password authentication failed for user "analyst-1"`) {
		t.Errorf("wrong password: err=%v out=%s", err, out)
	}
}
