package registry_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	"github.com/twmb/franz-go/pkg/sr"
	_ "modernc.org/sqlite" // driver "sqlite"

	"github.com/eventlake/eventlake/schema/registry"
)

// sqliteDSN is how the catalog opens its SQLite database; the registry
// shares that database.
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
}

func openDB(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openStore(t *testing.T, db *sql.DB, dialect string) *registry.Store {
	t.Helper()
	s, err := registry.Open(context.Background(), db, dialect)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

// sqliteStore opens a Store on a fresh SQLite file.
func sqliteStore(t *testing.T) *registry.Store {
	t.Helper()
	return openStore(t, openDB(t, "sqlite", sqliteDSN(filepath.Join(t.TempDir(), "catalog.db"))), registry.DialectSQLite)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// serve runs the handler over store on a loopback server and returns a
// franz-go client for it.
func serve(t *testing.T, store *registry.Store) (*httptest.Server, *sr.Client) {
	t.Helper()
	srv := httptest.NewServer(registry.NewHandler(store, testLogger(t)))
	t.Cleanup(srv.Close)
	cl, err := sr.NewClient(sr.URLs(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	return srv, cl
}

// wantCode checks that err is a registry error answer with the HTTP status
// and Confluent error code, and a message containing every part.
func wantCode(t *testing.T, err error, status, code int, parts ...string) {
	t.Helper()
	var re *sr.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want error %d/%d, got %v", status, code, err)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("want HTTP %d error_code %d, got %d %d: %s", status, code, re.StatusCode, re.ErrorCode, re.Message)
	}
	for _, p := range parts {
		if !strings.Contains(re.Message, p) {
			t.Errorf("error message %q does not contain %q", re.Message, p)
		}
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
