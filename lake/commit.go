package lake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/logkey"
)

// The commit protocol. Every change eventlake makes to a lake table goes
// through Committer.Commit: ingest's appends, the read-model committer's
// deltas, the compactor's rewrites, tiering, retention, erasure and
// snapshot expiry, backfills and schema evolution. docs/EXACTLY_ONCE.md
// argues why it is safe; in short:
//
//   - Offsets: every snapshot summary carries the Kafka offsets the table
//     covers (SummaryOffsets): the offsets stored by the snapshot the
//     change is built on, with the change's own Offsets merged on top. A
//     change without offsets (maintenance) carries the stored ones
//     forward, so that expiring older snapshots never loses them.
//   - Fencing: a change with Offsets succeeds only if the table still
//     stores, for every partition it advances, the offset in Fence (what
//     the writer loaded when it took the partition, or what its own last
//     commit wrote). Otherwise ErrFenced: another writer owns them now.
//   - Conflicts: when the table moved underneath (another writer
//     committed first), the table is reloaded and the change is staged
//     again on the fresh table, with freshly merged offsets. Stage is
//     called once per attempt for that reason.
//   - Unknown outcomes: when a commit fails (a timeout after sending, a
//     catalog that restarted), the table is reloaded and searched for the
//     change's commit id before anything is retried, so that a change is
//     never applied twice.
//   - Failures other than conflicts are retried with back-off, bounded by
//     CommitConfig.MaxFailures (0: until the context ends).

// Snapshot summary keys written by every commit.
const (
	// SummaryTask names what made a snapshot: ingest, read-model, compact,
	// tier, retention, erase, backfill, ... (Change.Task).
	SummaryTask = "eventlake.task"
	// SummaryErasedSubject is the SHA-256 (hex) of the data subject whose
	// rows an erasure removed from a table derived per subject: a writer
	// holding state of that table in memory drops the subject's.
	SummaryErasedSubject = "eventlake.erased-subject-sha256"
)

// SubjectHash is how erasures name a data subject outside the erasure
// log: the SHA-256 of its id, in hex.
func SubjectHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// Failpoints of the protocol, armed per task as "<point>/<task>" (e.g.
// "lake/before-commit/compact"): crash tests stop the process there.
const (
	// FailBeforeCommit: the change is staged (its data files written),
	// nothing is committed.
	FailBeforeCommit = "lake/before-commit"
	// FailAfterCommit: the change is committed; the caller has not seen
	// it (nothing after the commit ran).
	FailAfterCommit = "lake/after-commit"
)

// ErrFenced means another writer committed offsets this writer was about
// to commit: the partition moved to another owner, or this writer is a
// zombie. Nothing was committed; the caller abandons its batch and
// re-reads from the offsets stored in the lake.
var ErrFenced = errors.New("offsets were committed by another writer")

// ErrCommitUnknown means a commit's outcome could not be determined before
// the context ended or the failure budget ran out: its files may be
// referenced by the table and must not be deleted (orphan cleanup removes
// them later if they are not).
var ErrCommitUnknown = errors.New("commit outcome unknown")

// ErrBusy means a change lost the race to concurrent commits
// Change.MaxConflicts times in a row; nothing was committed.
var ErrBusy = errors.New("table too busy: every attempt lost to a concurrent commit")

// ErrNothingToCommit is returned by a Stage whose change the table already
// holds (e.g. columns another process added first): Commit then returns
// the table as it is, without committing.
var ErrNothingToCommit = errors.New("nothing to commit")

// CommitConfig tunes the protocol.
type CommitConfig struct {
	// Writer names the process in snapshot summaries (host/pid/role).
	Writer string
	// RetryMax caps the back-off between attempts that failed for a reason
	// other than a conflict (a catalog or storage outage). Default 10 s.
	RetryMax time.Duration
	// AttemptTimeout bounds one commit attempt and the reload after it: an
	// answer that never comes is an unknown outcome, resolved by looking
	// the commit up. Default 30 s.
	AttemptTimeout time.Duration
	// MaxFailures bounds attempts that failed for a reason other than a
	// conflict; 0 retries until the context ends.
	MaxFailures int
}

// CommitHooks observe the protocol (metrics, state gauges); all optional.
type CommitHooks struct {
	Conflict  func(table string)            // a commit lost a race and is staged again
	Error     func(table string, err error) // a commit attempt failed otherwise
	Fenced    func(table string)
	Retrying  func(on bool) // entering/leaving back-off
	Committed func(table, task string, d time.Duration)
}

// Committer commits changes to the lake's tables. It is safe for
// concurrent use on different tables.
type Committer struct {
	cat   *Catalog
	cfg   CommitConfig
	hooks CommitHooks
	log   *slog.Logger
	fp    *failpoint.Set
}

// NewCommitter returns a committer on cat. log and fp may be nil.
func NewCommitter(cat *Catalog, cfg CommitConfig, hooks CommitHooks, log *slog.Logger, fp *failpoint.Set) *Committer {
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Second
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 30 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Committer{cat: cat, cfg: cfg, hooks: hooks, log: log, fp: fp}
}

// Writer is the name the committer records in snapshot summaries.
func (c *Committer) Writer() string { return c.cfg.Writer }

// Stage applies a change to a fresh transaction; it is called once per
// attempt, on the table as it is now, with the summary properties to
// record. An error other than ErrNothingToCommit ends the commit: the
// change does not fit the table, and retrying cannot help.
type Stage func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error

// Change is one logical commit to one table.
type Change struct {
	// Table is the table's name in the lake's namespace.
	Table string
	// Task is recorded in the summary (SummaryTask) and names the
	// protocol's failpoints for this change.
	Task string
	// Base is the handle the caller last saw; nil loads the table.
	Base *table.Table
	// Offsets are the Kafka offsets the change advances, merged into the
	// stored ones; Fence is what the writer expects the table to store for
	// each of those partitions. Both nil: offsets are carried forward.
	Offsets, Fence Offsets
	// Summary holds extra snapshot summary properties.
	Summary iceberg.Properties
	// Stage stages the change.
	Stage Stage
	// MaxConflicts bounds how often the change is staged again after a
	// lost race (ErrBusy after that); 0 means no bound.
	MaxConflicts int
	// Applied reports whether a table already holds the change, for
	// changes that make no snapshot (snapshot expiry, schema changes);
	// nil looks for the change's commit id in the table's history.
	Applied func(t *table.Table) bool
}

// Append is the Stage of an append of data files.
func Append(files []iceberg.DataFile) Stage {
	return func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
		return tx.AddDataFiles(ctx, files, props, table.WithoutDuplicateCheck())
	}
}

// Commit commits ch and returns the table as committed.
func (c *Committer) Commit(ctx context.Context, ch Change) (*table.Table, error) {
	commitID := uuid.NewString()
	applied := ch.Applied
	if applied == nil {
		applied = func(t *table.Table) bool { _, ok := FindCommit(t, commitID); return ok }
	}
	start := time.Now()
	tbl := ch.Base
	backoff := 50 * time.Millisecond
	conflicts, failures := 0, 0
	for attempt := 1; ; attempt++ {
		if tbl == nil {
			lctx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
			t, err := c.cat.LoadTable(lctx, ch.Table)
			cancel()
			if errors.Is(err, icecat.ErrNoSuchTable) {
				return nil, err // nothing to commit to; retrying cannot help
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("commit %s to %s: %w (load: %v)", ch.Task, ch.Table, ctx.Err(), err)
				}
				if ferr := c.failed(ctx, ch, &failures, &backoff, attempt, err); ferr != nil {
					return nil, ferr
				}
				continue
			}
			tbl = t
		}
		stored, err := StoredOffsets(tbl)
		if err != nil {
			return nil, fmt.Errorf("read offsets of %s: %w", ch.Table, err)
		}
		if err := fence(ch.Table, ch.Offsets, ch.Fence, stored); err != nil {
			if c.hooks.Fenced != nil {
				c.hooks.Fenced(ch.Table)
			}
			return nil, err
		}
		props := iceberg.Properties{SummaryCommitID: commitID, SummaryWriter: c.cfg.Writer, SummaryTask: ch.Task}
		if merged := stored.Merge(ch.Offsets); len(merged) > 0 {
			enc, err := merged.MarshalJSON()
			if err != nil {
				return nil, err
			}
			props[SummaryOffsets] = string(enc)
		}
		for k, v := range ch.Summary {
			props[k] = v
		}
		tx := tbl.NewTransaction()
		if err := ch.Stage(ctx, tx, props); err != nil {
			if errors.Is(err, ErrNothingToCommit) {
				return tbl, nil
			}
			return nil, fmt.Errorf("stage %s of %s: %w", ch.Task, ch.Table, err)
		}
		c.fp.Hit(FailBeforeCommit + "/" + ch.Task)
		// The catalog writes the new metadata file through the FileIO the
		// context carries: the shared object store client, with its
		// timeouts and server-side encryption.
		cctx, cancel := context.WithTimeout(c.cat.storage(ctx), c.cfg.AttemptTimeout)
		newTbl, cerr := tx.Commit(cctx)
		cancel()
		if cerr == nil {
			c.fp.Hit(FailAfterCommit + "/" + ch.Task)
			if c.hooks.Committed != nil {
				c.hooks.Committed(ch.Table, ch.Task, time.Since(start))
			}
			return newTbl, nil
		}
		// A conflict, or an outcome we cannot know (the catalog may have
		// applied it before failing). Reload and look for the change.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.AttemptTimeout)
		fresh, lerr := c.cat.LoadTable(lctx, ch.Table)
		cancel()
		if lerr == nil {
			if applied(fresh) {
				c.fp.Hit(FailAfterCommit + "/" + ch.Task)
				if c.hooks.Committed != nil {
					c.hooks.Committed(ch.Table, ch.Task, time.Since(start))
				}
				return fresh, nil
			}
			tbl = fresh
		} else {
			tbl = nil
		}
		if ctx.Err() != nil {
			if lerr != nil {
				return nil, fmt.Errorf("%w: %s of %s: %v; reload: %v", ErrCommitUnknown, ch.Task, ch.Table, cerr, lerr)
			}
			return nil, fmt.Errorf("commit %s to %s: %w (last error: %v)", ch.Task, ch.Table, ctx.Err(), cerr)
		}
		if lerr == nil && IsConflict(cerr) {
			conflicts++
			if c.hooks.Conflict != nil {
				c.hooks.Conflict(ch.Table)
			}
			if ch.MaxConflicts > 0 && conflicts >= ch.MaxConflicts {
				return nil, fmt.Errorf("%s of %s: %w (%d attempts, last: %v)", ch.Task, ch.Table, ErrBusy, attempt, cerr)
			}
			// Stage again at once: right after a concurrent commit is when
			// the next one is furthest away.
			c.log.Debug("commit conflict, staging again on the refreshed table", logkey.Table, ch.Table, logkey.Attempt, attempt)
			continue
		}
		if lerr != nil {
			cerr = fmt.Errorf("%w; reload: %v", cerr, lerr)
		}
		if ferr := c.failed(ctx, ch, &failures, &backoff, attempt, cerr); ferr != nil {
			return nil, ferr
		}
	}
}

// failed counts a failed attempt and waits before the next one. It
// returns the error that ends the commit when the budget is spent or ctx
// ends; the outcome is then unknown.
func (c *Committer) failed(ctx context.Context, ch Change, failures *int, backoff *time.Duration, attempt int, cerr error) error {
	*failures++
	if c.hooks.Error != nil {
		c.hooks.Error(ch.Table, cerr)
	}
	if c.cfg.MaxFailures > 0 && *failures >= c.cfg.MaxFailures {
		return fmt.Errorf("%w: %s of %s after %d attempts: %v", ErrCommitUnknown, ch.Task, ch.Table, attempt, cerr)
	}
	if c.hooks.Retrying != nil {
		c.hooks.Retrying(true)
		defer c.hooks.Retrying(false)
	}
	c.log.Warn("commit failed, retrying", logkey.Table, ch.Table, "task", ch.Task, logkey.Attempt, attempt, logkey.Err, cerr)
	t := time.NewTimer(*backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w: %s of %s: %v", ErrCommitUnknown, ch.Task, ch.Table, cerr)
	case <-t.C:
	}
	*backoff = min(*backoff*2, c.cfg.RetryMax)
	return nil
}

// fence checks that the table stores base for every partition in offsets.
func fence(name string, offsets, base, stored Offsets) error {
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

// WriterName names this process and its role in snapshot summaries
// (host/pid/role), so that a snapshot says who made it.
func WriterName(role string) string {
	host, _ := os.Hostname()
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + role
}

// Replace is the Stage that deletes the rows del selects (nil: none) and
// appends the record build makes in the staged table's Arrow schema (a
// nil record: nothing). what names the rows in errors.
func Replace(what string, del iceberg.BooleanExpression, build func(sc *arrow.Schema) (arrow.RecordBatch, error)) Stage {
	return func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
		staged, err := tx.StagedTable()
		if err != nil {
			return err
		}
		if del != nil && staged.CurrentSnapshot() != nil {
			if err := tx.Delete(ctx, del, props); err != nil {
				return fmt.Errorf("stage the replaced rows of %s: %w", what, err)
			}
		}
		sc, err := table.SchemaToArrowSchema(staged.Schema(), nil, true, false)
		if err != nil {
			return err
		}
		rec, err := build(sc)
		if err != nil || rec == nil {
			return err
		}
		defer rec.Release()
		rdr, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
		if err != nil {
			return err
		}
		defer rdr.Release()
		if err := tx.Append(ctx, rdr, props); err != nil {
			return fmt.Errorf("stage the rows of %s: %w", what, err)
		}
		return nil
	}
}
