// Package sqldb holds what the stores that share the catalog's SQL
// database (the schema registry, the token store) need from it: the
// placeholder syntax of each dialect, and the retry of transactions that
// lost to another process.
package sqldb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQL dialects of the catalog database (the same names as the catalog
// types).
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// CheckDialect refuses a dialect other than SQLite and Postgres.
func CheckDialect(dialect string) error {
	if dialect != SQLite && dialect != Postgres {
		return fmt.Errorf("dialect %q is not %q or %q", dialect, SQLite, Postgres)
	}
	return nil
}

// Rebind rewrites ? placeholders for PostgreSQL ($1, $2, ...). The query
// must have no ? inside literals.
func Rebind(dialect, query string) string {
	if dialect != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Retryable reports errors that go away when the transaction is retried:
// lock contention and conflicts between processes.
func Retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"55P03", // lock_not_available
			"23505", // unique_violation (tables created concurrently)
			"42P07": // duplicate_table
			return true
		}
		return false
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return true
		}
	}
	return false
}

// MaxAttempts bounds Retry.
const MaxAttempts = 12

// Retry runs fn until it succeeds, fails with an error that is not
// Retryable, or MaxAttempts ran, with jittered exponential backoff.
func Retry(ctx context.Context, fn func(context.Context) error) error {
	wait := 5 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !Retryable(err) || attempt == MaxAttempts {
			if err != nil && Retryable(err) {
				return fmt.Errorf("still conflicting after %d attempts: %w", attempt, err)
			}
			return err
		}
		d := wait/2 + rand.N(wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (while retrying after: %v)", ctx.Err(), err)
		case <-time.After(d):
		}
		wait = min(2*wait, time.Second)
	}
}
