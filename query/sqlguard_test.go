package query

import (
	"reflect"
	"strings"
	"testing"
)

func TestScanSQL(t *testing.T) {
	cases := []struct {
		in    string
		body  string
		words []string
		multi bool
	}{
		{"SELECT 1", "SELECT 1", []string{"SELECT", "1"}, false},
		{"select 1;", "select 1", []string{"SELECT", "1"}, false},
		{"SELECT 1; ", "SELECT 1", []string{"SELECT", "1"}, false},
		{"SELECT 1;;", "SELECT 1", []string{"SELECT", "1"}, false},
		{"SELECT 1; -- done\n/* really */", "SELECT 1", []string{"SELECT", "1"}, false},
		{"SELECT 1; SELECT 2", "SELECT 1", []string{"SELECT", "1"}, true},
		{"SELECT ';' AS x", "SELECT ';' AS x", []string{"SELECT", "'", "AS", "X"}, false},
		{"SELECT 'it''s; fine'", "SELECT 'it''s; fine'", []string{"SELECT", "'"}, false},
		{`SELECT E'\'; DROP'`, `SELECT E'\'; DROP'`, []string{"SELECT", "'"}, false},
		{`SELECT "a;b" FROM t`, `SELECT "a;b" FROM t`, []string{"SELECT", `"`, "FROM", "T"}, false},
		{`SELECT "a"";b"`, `SELECT "a"";b"`, []string{"SELECT", `"`}, false},
		{"SELECT $$;$$", "SELECT $$;$$", []string{"SELECT", "'"}, false},
		{"SELECT $tag$ ; $x$ $tag$; DROP", "SELECT $tag$ ; $x$ $tag$", []string{"SELECT", "'"}, true},
		{"SELECT $1", "SELECT $1", []string{"SELECT", "$1"}, false},
		{"/* a /* nested ; */ still ; */ SELECT 1", "/* a /* nested ; */ still ; */ SELECT 1", []string{"SELECT", "1"}, false},
		{"-- ; \nSELECT 1", "-- ; \nSELECT 1", []string{"SELECT", "1"}, false},
		{"SELECT 'unterminated; DROP", "SELECT 'unterminated; DROP", []string{"SELECT", "'"}, false},
		{"(SELECT 1.5e3)", "(SELECT 1.5e3)", []string{"(", "SELECT", "1.5e3", ")"}, false},
		{"", "", nil, false},
	}
	for _, c := range cases {
		got := scanSQL(c.in)
		if got.body != c.body || !reflect.DeepEqual(got.words, c.words) || got.multi != c.multi {
			t.Errorf("scanSQL(%q) = body %q words %q multi %v; want %q %q %v", c.in, got.body, got.words, got.multi, c.body, c.words, c.multi)
		}
	}
}

func TestCheckText(t *testing.T) {
	cases := []struct {
		in      string
		code    string // "" when allowed
		explain bool
	}{
		{"SELECT 1", "", false},
		{"  ((select 1))", "", false},
		{"WITH x AS (SELECT 1) SELECT * FROM x", "", false},
		{"WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM x WHERE n < 3) FROM x", "", false},
		{"WITH x AS MATERIALIZED (SELECT 1), y AS (SELECT 2) SELECT 1", "", false},
		{"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", codeReadOnly, false},
		{"WITH x AS (SELECT 1) DELETE FROM t", codeReadOnly, false},
		{"FROM orders", "", false},
		{"DESCRIBE orders", "", false},
		{"EXPLAIN SELECT 1", "", true},
		{"explain analyze select 1", "", true},
		{"EXPLAIN (FORMAT json) SELECT 1", "", true},
		{"EXPLAIN (SELECT 1)", "", true},
		{"EXPLAIN WITH x AS (SELECT 1) SELECT * FROM x", "", true},
		{"EXPLAIN ANALYZE INSERT INTO t VALUES (1)", codeReadOnly, false},
		{"EXPLAIN ANALYZE WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", codeReadOnly, false},
		{"EXPLAIN (FORMAT json) COPY t TO 'x'", codeReadOnly, false},
		{"INSERT INTO t VALUES (1)", codeReadOnly, false},
		{"/**/insert into t values (1)", codeReadOnly, false},
		{"attach 'x'", codeReadOnly, false},
		{"pragma version", codeReadOnly, false},
		{"SeT threads=1", codeReadOnly, false},
		{"SELECT 1; SELECT 2", codeMultiple, false},
		{"INSERT INTO t VALUES (1); SELECT 1", codeMultiple, false},
		{";", codeBadSQL, false},
		{"-- only a comment", codeBadSQL, false},
		{"(((", codeBadSQL, false},
		{"SELEC 1", "", false}, // DuckDB reports the syntax error
	}
	for _, c := range cases {
		v := checkText(c.in)
		code := ""
		if v.err != nil {
			code = v.err.code
		}
		if code != c.code || (v.err == nil && v.explain != c.explain) {
			t.Errorf("checkText(%q) = code %q explain %v, want %q %v", c.in, code, v.explain, c.code, c.explain)
		}
		if v.err != nil && v.err.code == codeReadOnly && !strings.Contains(v.err.msg, "read-only") {
			t.Errorf("checkText(%q) message %q does not say read-only", c.in, v.err.msg)
		}
	}
}

// FuzzScanSQL checks that the guard never panics and that the statement
// it passes on is a prefix of the input that holds no top-level ';' — so
// text after the first statement never reaches DuckDB.
func FuzzScanSQL(f *testing.F) {
	for _, s := range []string{"SELECT 1", "SELECT ';'; DROP", "/* /* */ */;x", "$a$;$a$", "E'\\';'", `"";""`, "--\n;", "$1;$", "'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc := scanSQL(s)
		if !strings.HasPrefix(s, sc.body) {
			t.Fatalf("body %q is not a prefix of %q", sc.body, s)
		}
		if again := scanSQL(sc.body); again.multi {
			t.Fatalf("body %q of %q holds several statements", sc.body, s)
		}
		_ = checkText(s)
	})
}
