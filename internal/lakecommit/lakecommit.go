// Package lakecommit is the commit protocol every eventlake writer uses to
// append data files to a lake table together with the Kafka offsets they
// cover (ingest for raw tables, the streamer for read models). See
// docs/EXACTLY_ONCE.md for why it is safe.
//
// A commit is fenced: it succeeds only if the table still stores, for
// every partition it advances, the offset the writer expects (what it
// loaded when it took the partition, or what its own last commit wrote).
// Conflicts with other writers are resolved by reloading the table and
// committing the same files again with merged offsets; a commit whose
// outcome is unknown is looked up by its commit id before anything is
// retried; catalog or storage failures are retried with back-off until the
// context ends.
package lakecommit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/eventlake/eventlake/catalog"
	"github.com/eventlake/eventlake/internal/logkey"
)

// ErrFenced means another writer committed offsets this writer was about
// to commit: the partition moved to another owner, or this writer is a
// zombie. Nothing was committed; the caller abandons its batch and
// re-reads from the offsets stored in the lake.
var ErrFenced = errors.New("offsets were committed by another writer")

// ErrUnknown means a commit's outcome could not be determined before the
// context ended: its files may be referenced by the table and must not be
// deleted (orphan cleanup removes them later if they are not).
var ErrUnknown = errors.New("commit outcome unknown")

// Hooks observe the protocol (metrics, state gauges); all are optional.
type Hooks struct {
	Conflict func(table string)            // a commit lost a race and is retried
	Error    func(table string, err error) // a commit attempt failed otherwise
	Fenced   func(table string)
	Retrying func(on bool) // entering/leaving back-off
}

// Committer commits files with offsets. It is safe for concurrent use on
// different tables.
type Committer struct {
	Catalog  *catalog.Catalog
	Log      *slog.Logger
	Writer   string        // recorded in snapshot summaries (host/pid)
	RetryMax time.Duration // back-off cap for failing catalogs/storage
	// AttemptTimeout bounds one commit attempt and the reload after it: an
	// answer that never comes is an unknown outcome, resolved by looking
	// the commit up. 0 means 30 s.
	AttemptTimeout time.Duration
	Hooks          Hooks
}

// Append adds files to table name (tbl is the handle the caller last saw)
// with offsets merged into the stored ones, fenced on base, and returns
// the table as committed. extra properties are added to the snapshot
// summary.
func (c *Committer) Append(ctx context.Context, name string, tbl *table.Table, files []iceberg.DataFile,
	offsets, base catalog.Offsets, extra iceberg.Properties) (*table.Table, error) {
	return c.commit(ctx, name, tbl, offsets, base, extra, func(tx *table.Transaction, props iceberg.Properties) error {
		return tx.AddDataFiles(ctx, files, props, table.WithoutDuplicateCheck())
	}, len(files))
}

// Stage applies a change to a fresh transaction; it is called again for
// every attempt, with the summary properties to record.
type Stage func(tx *table.Transaction, props iceberg.Properties) error

// Commit runs stage under the same protocol as Append, for changes other
// than appends (e.g. an overwrite that keeps offsets: pass nil offsets).
func (c *Committer) Commit(ctx context.Context, name string, tbl *table.Table, offsets, base catalog.Offsets,
	extra iceberg.Properties, stage Stage) (*table.Table, error) {
	return c.commit(ctx, name, tbl, offsets, base, extra, stage, 0)
}

func (c *Committer) commit(ctx context.Context, name string, tbl *table.Table, offsets, base catalog.Offsets,
	extra iceberg.Properties, stage Stage, nfiles int) (*table.Table, error) {
	commitID := uuid.NewString()
	backoff := 50 * time.Millisecond
	retryMax := c.RetryMax
	if retryMax <= 0 {
		retryMax = 10 * time.Second
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for n := 1; ; n++ {
		stored, err := catalog.StoredOffsets(tbl)
		if err != nil {
			return nil, fmt.Errorf("read offsets of %s: %w", name, err)
		}
		if err := fence(name, offsets, base, stored); err != nil {
			if c.Hooks.Fenced != nil {
				c.Hooks.Fenced(name)
			}
			return nil, err
		}
		enc, err := stored.Merge(offsets).MarshalJSON()
		if err != nil {
			return nil, err
		}
		props := iceberg.Properties{
			catalog.SummaryOffsets:  string(enc),
			catalog.SummaryCommitID: commitID,
			catalog.SummaryWriter:   c.Writer,
		}
		for k, v := range extra {
			props[k] = v
		}
		tx := tbl.NewTransaction()
		if err := stage(tx, props); err != nil {
			// Staging failed before anything was sent: the change does not
			// fit the table. Retrying cannot help.
			return nil, fmt.Errorf("stage commit to %s: %w", name, err)
		}
		attempt := c.AttemptTimeout
		if attempt <= 0 {
			attempt = 30 * time.Second
		}
		cctx, cancel := context.WithTimeout(ctx, attempt)
		newTbl, cerr := tx.Commit(cctx)
		cancel()
		if cerr == nil {
			return newTbl, nil
		}
		// A conflict, or an outcome we cannot know (the catalog may have
		// applied it before failing). Reload and look for our commit.
		lctx, cancel := context.WithTimeout(ctx, attempt)
		fresh, lerr := c.Catalog.LoadTable(lctx, name)
		cancel()
		if lerr == nil {
			if _, ok := catalog.FindCommit(fresh, commitID); ok {
				return fresh, nil
			}
			tbl = fresh
		}
		if ctx.Err() != nil {
			if lerr != nil {
				return nil, fmt.Errorf("%w: commit %d files to %s: %v; reload: %v", ErrUnknown, nfiles, name, cerr, lerr)
			}
			return nil, fmt.Errorf("commit %d files to %s: %w (last error: %v)", nfiles, name, ctx.Err(), cerr)
		}
		if lerr == nil && IsConflict(cerr) {
			if c.Hooks.Conflict != nil {
				c.Hooks.Conflict(name)
			}
			log.Info("commit conflict, re-committing on the refreshed table", logkey.Table, name, logkey.Attempt, n)
			continue
		}
		if c.Hooks.Error != nil {
			c.Hooks.Error(name, cerr)
		}
		if c.Hooks.Retrying != nil {
			c.Hooks.Retrying(true)
		}
		log.Warn("commit failed, retrying", logkey.Table, name, logkey.Attempt, n, logkey.Err, cerr, "reload_err", lerr)
		select {
		case <-ctx.Done():
			if c.Hooks.Retrying != nil {
				c.Hooks.Retrying(false)
			}
			if lerr != nil {
				return nil, fmt.Errorf("%w: commit %d files to %s: %v; reload: %v", ErrUnknown, nfiles, name, cerr, lerr)
			}
			return nil, fmt.Errorf("commit %d files to %s: %w (last error: %v)", nfiles, name, ctx.Err(), cerr)
		case <-time.After(backoff):
		}
		if c.Hooks.Retrying != nil {
			c.Hooks.Retrying(false)
		}
		backoff = min(backoff*2, retryMax)
	}
}

// fence checks that the table stores base for every partition in offsets.
func fence(name string, offsets, base, stored catalog.Offsets) error {
	for t, m := range offsets {
		for p := range m {
			want, wok := base.Get(t, p)
			got, gok := stored.Get(t, p)
			if wok != gok || want != got {
				return fmt.Errorf("%w: table %s partition %s/%d stores offset %d (present=%v), this writer expected %d (present=%v)",
					ErrFenced, name, t, p, got, gok, want, wok)
			}
		}
	}
	return nil
}

// IsConflict reports whether err says the table moved underneath a commit.
func IsConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, table.ErrCommitFailed) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "requirement failed") || strings.Contains(s, "has changed") ||
		strings.Contains(s, "moved underneath")
}
