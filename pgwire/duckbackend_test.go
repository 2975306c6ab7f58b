package pgwire

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/duck"
)

// duckTestBackend is the test helper behind the server in these tests:
// it runs every statement on a real in-memory DuckDB and accepts one
// token. It stands in for the query service's adapter, which is tested
// with the query service; it is not a fake of DuckDB.
type duckTestBackend struct {
	db    *sql.DB
	user  string
	token string
}

const (
	testUser  = "analyst-1"
	testToken = "el_test_0123456789abcdef"
)

// testStatusError is an error with an HTTP-like status, as the query
// service returns them.
type testStatusError struct {
	status int
	code   string
	msg    string
}

func (e *testStatusError) Error() string  { return e.msg }
func (e *testStatusError) Status() int    { return e.status }
func (e *testStatusError) Code() string   { return e.code }
func (e *testStatusError) Unwrap() error  { return nil }
func (e *testStatusError) String() string { return e.msg }

const testSchema = `
CREATE TABLE events (
	event_id VARCHAR, type VARCHAR, ts TIMESTAMPTZ, amount DECIMAL(18,2), quantity BIGINT,
	paid BOOLEAN, payload BLOB, tags VARCHAR[], counts BIGINT[]
);
INSERT INTO events VALUES
	('e-1', 'order.created', '2026-12-01 10:00:05+00', 19.98, 2, true, '\xAA\xBB'::BLOB, ['a', 'b c'], [1, 2]),
	('e-2', 'order.created', '2026-12-01 10:00:45+00', 0.01, 1, false, NULL, [], [NULL, 3]),
	('e-3', 'order.paid', '2026-12-01 10:01:10.123456+00', 12345678901234.56, -5, NULL, ''::BLOB, NULL, NULL),
	('e-4', 'order.created', '2026-12-01 10:02:00+00', -3.50, 7, true, 'x'::BLOB, ['{x}', 'NULL', '"q"'], [])
;
CREATE VIEW orders AS SELECT event_id AS order_id, ts, amount FROM events WHERE type = 'order.created';
CREATE SCHEMA audit;
CREATE TABLE audit."Query Log" ("User" VARCHAR, logged_at TIMESTAMPTZ);
`

func newDuckTestBackend(t testing.TB) *duckTestBackend {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(testSchema); err != nil {
		t.Fatal(err)
	}
	return &duckTestBackend{db: db, user: testUser, token: testToken}
}

func (b *duckTestBackend) Authenticate(_ context.Context, user, password string) (auth.Principal, error) {
	if user != b.user || password != b.token {
		return auth.Principal{}, ErrAuth
	}
	return auth.Principal{Name: user, Role: auth.RoleAnalyst}, nil
}

// classify turns DuckDB's errors into the statuses the query service
// uses.
func (b *duckTestBackend) classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &testStatusError{status: 499, code: "canceled", msg: "the client went away; the query was canceled"}
	}
	var de *duckdb.Error
	if errors.As(err, &de) {
		return &testStatusError{status: 400, code: "bad_sql", msg: de.Msg}
	}
	return err
}

func (b *duckTestBackend) Describe(ctx context.Context, _ auth.Principal, text string) (Description, error) {
	var d Description
	conn, err := b.db.Conn(ctx)
	if err != nil {
		return d, err
	}
	defer conn.Close()
	var stype duckdb.StmtType
	err = conn.Raw(func(dc any) error {
		ds, err := dc.(*duckdb.Conn).Prepare(text)
		if err != nil {
			return err
		}
		st := ds.(*duckdb.Stmt)
		defer st.Close()
		if stype, err = st.StatementType(); err != nil {
			return err
		}
		for i := 1; i <= st.NumInput(); i++ {
			pt, _ := st.ParamType(i)
			d.Params = append(d.Params, duck.TypeNames[pt])
		}
		n, err := st.ColumnCount()
		if err != nil {
			return err
		}
		for i := range n {
			name, err := st.ColumnName(i)
			if err != nil {
				return err
			}
			info, err := st.ColumnTypeInfo(i)
			if err != nil {
				return err
			}
			d.Columns = append(d.Columns, Column{Name: name, Type: duck.TypeName(info)})
		}
		return nil
	})
	if err != nil {
		return d, b.classify(ctx, err)
	}
	if stype != duckdb.STATEMENT_TYPE_SELECT && stype != duckdb.STATEMENT_TYPE_EXPLAIN {
		return d, &testStatusError{status: 403, code: "read_only", msg: "only SELECT statements are allowed"}
	}
	return d, nil
}

func (b *duckTestBackend) Run(ctx context.Context, _ auth.Principal, st Statement, row func([]driver.Value) error) (Result, error) {
	var res Result
	if st.Protocol != "postgres" {
		return res, fmt.Errorf("protocol %q", st.Protocol)
	}
	rows, err := b.db.QueryContext(ctx, st.SQL, st.Args...)
	if err != nil {
		return res, b.classify(ctx, err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return res, err
	}
	for _, ct := range cts {
		res.Columns = append(res.Columns, Column{Name: ct.Name(), Type: ct.DatabaseTypeName()})
	}
	vals := make([]any, len(cts))
	ptrs := make([]any, len(cts))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	out := make([]driver.Value, len(cts))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return res, err
		}
		for i, v := range vals {
			out[i] = v
		}
		if err := row(out); err != nil {
			return res, err
		}
		res.Rows++
	}
	if err := rows.Err(); err != nil {
		return res, b.classify(ctx, err)
	}
	return res, nil
}

// testServer is a Server on 127.0.0.1:0 in front of a duckTestBackend.
type testServer struct {
	*Server
	backend *duckTestBackend
	port    string
}

func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	b := newDuckTestBackend(t)
	cfg.Listen = "127.0.0.1:0"
	srv, err := New(cfg, b, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return &testServer{Server: srv, backend: b, port: port}
}

// dsn is a libpq connection string for the test user.
func (s *testServer) dsn(extra string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%s user=%s password=%s dbname=eventlake sslmode=disable %s", s.port, testUser, testToken, extra)
}

// psql runs the real psql binary with args; it skips the test when psql
// is not installed (CI installs postgresql-client).
func psql(t testing.TB, conninfo string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql is not installed (apt-get install postgresql-client); .ci/run installs it")
	}
	cmd := exec.Command(bin, append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-d", conninfo}, args...)...)
	cmd.Env = []string{"PGCONNECT_TIMEOUT=10", "PGAPPNAME=pgwire-test", "LANG=C.UTF-8", "PGCLIENTENCODING=UTF8"}
	out, err := cmd.CombinedOutput()
	return strings.TrimRight(string(out), "\n"), err
}
