package pgwire

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

func connectPgx(t *testing.T, s *testServer, extra string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn(extra))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestPgxSmoke(t *testing.T) {
	s := startServer(t, Config{})
	ctx := context.Background()
	for _, mode := range []string{"", "default_query_exec_mode=simple_protocol", "default_query_exec_mode=exec"} {
		conn := connectPgx(t, s, mode)
		var (
			id     string
			ts     time.Time
			amount pgtype.Numeric
			amtStr string
			qty    int64
			paid   *bool
			pl     []byte
			tags   []string
			counts []*int64
		)
		err := conn.QueryRow(ctx, `SELECT event_id, ts, amount, amount::VARCHAR, quantity, paid, payload, tags, counts FROM events WHERE quantity > $1 AND event_id = $2`, 1, "e-1").
			Scan(&id, &ts, &amount, &amtStr, &qty, &paid, &pl, &tags, &counts)
		t.Logf("mode=%q err=%v id=%s ts=%v amount=%v %s qty=%d paid=%v pl=%x tags=%q counts=%v", mode, err, id, ts, amount, amtStr, qty, paid, pl, tags, counts)
	}
}
