package pgwire

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventlake/eventlake/internal/testharness"
)

// TestTLS requires TLS when it is configured: psql connects with
// sslmode=verify-full against the test CA, plaintext is refused before
// the token is asked for, and SIGHUP reloads the certificate.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certs := testharness.NewTestCerts(t, dir)
	s := startServer(t, Config{TLS: TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile}})
	verify := func(ca string) string {
		return strings.Replace(s.dsn("sslmode=verify-full sslrootcert="+ca), "host=127.0.0.1", "host=localhost", 1)
	}

	out := mustPsql(t, verify(certs.CAFile), "-A", "-t", "-c", "SELECT ssl FROM (SELECT true AS ssl)", "-c", `\dt events`)
	wantLines(t, "psql verify-full", out, "t", "main|events|table|eventlake")

	out, err := psql(t, s.dsn("sslmode=disable"), "-c", "SELECT 1")
	if err == nil || !strings.Contains(out, "requires TLS") {
		t.Errorf("plaintext: err=%v out=%s", err, out)
	}
	ctx := context.Background()
	_, err = pgconn.Connect(ctx, s.dsn("sslmode=disable"))
	if pgCode(err) != "28000" {
		t.Errorf("plaintext pgx: %v (code %q), want 28000", err, pgCode(err))
	}

	// pgx over TLS, with a parameter and a cancel request (sent as
	// libpq and pgx send them: on a new plain connection).
	conn := connectPgx(t, s.dsn("sslmode=verify-full sslrootcert="+certs.CAFile))
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM events WHERE quantity > $1", 1).Scan(&n); err != nil || n != 2 {
		t.Errorf("pgx over TLS: %d %v", n, err)
	}
	errc := make(chan error, 1)
	go func() {
		var n int64
		errc <- conn.QueryRow(ctx, "SELECT count(*) FROM range(1000000000000) t(i) WHERE i % 7 = 3").Scan(&n)
	}()
	waitRunning(t, s)
	if err := conn.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if pgCode(err) != "57014" {
			t.Errorf("cancel over TLS: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the query was not canceled")
	}

	// A renewed certificate from another CA, loaded on SIGHUP.
	next := testharness.NewTestCerts(t, t.TempDir())
	for src, dst := range map[string]string{next.CertFile: certs.CertFile, next.KeyFile: certs.KeyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := psql(t, verify(next.CAFile), "-A", "-t", "-c", "SELECT 1")
		if err == nil && out == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate was not served after SIGHUP: %v %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := psql(t, verify(certs.CAFile), "-c", "SELECT 1"); err == nil {
		t.Error("the old CA still verifies after the reload")
	}
}
