package pgwire

import (
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

func TestSplitStatements(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"SELECT 1", []string{"SELECT 1"}},
		{"SELECT 1; SELECT 2;", []string{"SELECT 1", "SELECT 2"}},
		{"-- ping", nil},
		{" ; ;/* c */ ", nil},
		{"SELECT ';' AS a; SELECT \"x;y\"", []string{"SELECT ';' AS a", `SELECT "x;y"`}},
		{"SELECT E'a\\';b'; SELECT $$;$$, $t$;$t$", []string{`SELECT E'a\';b'`, "SELECT $$;$$, $t$;$t$"}},
		{"SELECT $1; SELECT 2", []string{"SELECT $1", "SELECT 2"}},
		{"SELECT 1 /* a; /* nested; */ b; */; -- x;\nSELECT 2", []string{"SELECT 1 /* a; /* nested; */ b; */", "-- x;\nSELECT 2"}},
		{"SELECT 'unterminated;", []string{"SELECT 'unterminated;"}},
	} {
		if got := splitStatements(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("split(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzSplitStatements(f *testing.F) {
	for _, s := range []string{"SELECT 1; SELECT 2", "SELECT ';'", "$a$;$a$", "/* ; */", "E'\\''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, st := range splitStatements(s) {
			if st == "" || !strings.Contains(s, st) {
				t.Fatalf("statement %q is not a part of %q", st, s)
			}
		}
		_, _, _ = parseSessionCommand(s)
		_ = matchCatalog(s)
	})
}

func TestStatusCode(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		want   string
	}{
		{400, "bad_sql", "42601"}, {400, "multiple_statements", "42000"}, {401, "", "28P01"}, {403, "read_only", "42501"},
		{429, "rate_limited", "53400"}, {499, "canceled", "57014"}, {504, "timeout", "57014"}, {503, "busy", "53300"},
		{503, "not_ready", "57P03"}, {500, "internal", "XX000"}, {404, "", "42000"},
	} {
		if got := string(statusCode(c.status, c.code)); got != c.want {
			t.Errorf("status %d %s: %s, want %s", c.status, c.code, got, c.want)
		}
	}
}

func TestTypeOf(t *testing.T) {
	for duck, want := range map[string]struct {
		oid  uint32
		name string
	}{
		"BIGINT": {oidInt8, "bigint"}, "INTEGER": {oidInt4, "integer"}, "SMALLINT": {oidInt2, "smallint"},
		"DOUBLE": {oidFloat8, "double precision"}, "FLOAT": {oidFloat4, "real"}, "DECIMAL(18,2)": {oidNumeric, "numeric(18,2)"},
		"VARCHAR": {oidText, "text"}, "BOOLEAN": {oidBool, "boolean"}, "BLOB": {oidBytea, "bytea"},
		"TIMESTAMP WITH TIME ZONE": {oidTimestamptz, "timestamp with time zone"}, "TIMESTAMPTZ": {oidTimestamptz, "timestamp with time zone"},
		"TIMESTAMP": {oidTimestamp, "timestamp without time zone"}, "DATE": {oidDate, "date"}, "VARCHAR[]": {1009, "text[]"},
		"BIGINT[]": {1016, "bigint[]"}, "DECIMAL(10,2)[]": {1231, "numeric(10,2)[]"}, "UUID": {oidUUID, "uuid"}, "JSON": {oidJSON, "json"},
		"INTERVAL": {oidInterval, "interval"}, "HUGEINT": {oidNumeric, "numeric"}, "INTEGER[][]": {oidText, "text"},
		"STRUCT(x INTEGER)": {oidText, "text"}, "MAP(VARCHAR, INTEGER)": {oidText, "text"}, "ENUM": {oidText, "text"},
	} {
		got := typeOf(duck)
		if got.oid != want.oid || got.name != want.name {
			t.Errorf("%s: %d %s, want %d %s", duck, got.oid, got.name, want.oid, want.name)
		}
	}
}

func TestTextFormats(t *testing.T) {
	text := func(v any) string {
		t.Helper()
		switch x := v.(type) {
		case numericCell:
			s, _ := x.TextValue()
			return s.String
		case floatCell:
			s, _ := x.TextValue()
			return s.String
		case intervalCell:
			s, _ := x.TextValue()
			return s.String
		case tstzCell:
			s, _ := x.TextValue()
			return s.String
		case timeCell:
			s, _ := x.TextValue()
			return s.String
		}
		t.Fatalf("%T has no text", v)
		return ""
	}
	for _, c := range []struct {
		v    any
		want string
	}{
		{numericCell{n: big.NewInt(1998), scale: 2}, "19.98"},
		{numericCell{n: big.NewInt(-5), scale: 3}, "-0.005"},
		{numericCell{n: big.NewInt(7), scale: 0}, "7"},
		{floatCell{f: 1796119200, bits: 64}, "1796119200"},
		{floatCell{f: 1e20, bits: 64}, "1e+20"},
		{floatCell{f: 0.00001, bits: 64}, "1e-05"},
		{floatCell{f: 0.1, bits: 32}, "0.1"},
		{intervalCell{months: 14, days: 3, micros: 4*3600e6 + 5*60e6 + 6.5e6}, "1 year 2 mons 3 days 04:05:06.5"},
		{intervalCell{}, "00:00:00"},
		{intervalCell{days: 1}, "1 day"},
		{intervalCell{micros: -90e6}, "-00:01:30"},
		{tstzCell{t: time.Date(2026, 12, 1, 11, 0, 5, 120000000, time.FixedZone("CET", 3600))}, "2026-12-01 10:00:05.12+00"},
		{timeCell{us: 10*3600e6 + 11*60e6 + 12e6 + 500}, "10:11:12.0005"},
	} {
		if got := text(c.v); got != c.want {
			t.Errorf("%+v: %q, want %q", c.v, got, c.want)
		}
	}
	n, err := convNumeric(duckdb.Decimal{Width: 18, Scale: 2, Value: big.NewInt(-350)})
	if err != nil || text(n) != "-3.50" {
		t.Errorf("decimal: %v %v", n, err)
	}
}

func TestIdents(t *testing.T) {
	if got := parseIdent(`audit."Query Log"`); !reflect.DeepEqual(got, []string{"audit", "Query Log"}) {
		t.Errorf("parseIdent: %q", got)
	}
	if got := parseIdent(`Events`); !reflect.DeepEqual(got, []string{"events"}) {
		t.Errorf("parseIdent: %q", got)
	}
	for in, want := range map[string]string{"events": "events", "Query Log": `"Query Log"`, `a"b`: `"a""b"`, "_x1": "_x1"} {
		if got := quoteIdent(in); got != want {
			t.Errorf("quoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSessionCommands(t *testing.T) {
	for _, c := range []struct {
		sql, tag, show, errPart string
		ok                      bool
	}{
		{sql: "SET application_name = 'x'", ok: true, tag: "SET"},
		{sql: "set session TimeZone to 'Etc/UTC'", ok: true, tag: "SET"},
		{sql: "SET TIME ZONE 'America/New_York'", ok: true, errPart: "only UTC"},
		{sql: "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", ok: true, tag: "SET"},
		{sql: "SET TRANSACTION READ WRITE", ok: true, errPart: "read-only"},
		{sql: "SET search_path TO \"$user\", public", ok: true, tag: "SET"},
		{sql: "SET search_path TO other", ok: true, errPart: "search path"},
		{sql: "SHOW search_path", ok: true, tag: "SHOW", show: "search_path"},
		{sql: "SHOW ALL", ok: true, tag: "SHOW", show: "all"},
		{sql: "SHOW TABLES", ok: false},
		{sql: "START TRANSACTION READ ONLY", ok: true, tag: "BEGIN"},
		{sql: "SELECT 1", ok: false},
	} {
		cmd, ok, err := parseSessionCommand(c.sql)
		if ok != c.ok || (err != nil) != (c.errPart != "") || err != nil && !strings.Contains(err.Error(), c.errPart) ||
			err == nil && (cmd.tag != c.tag || cmd.show != c.show) {
			t.Errorf("%s: %+v ok=%v err=%v", c.sql, cmd, ok, err)
		}
	}
}
