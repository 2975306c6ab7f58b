package streamer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/readmodel"
)

// Summary keys of backfill snapshots.
const (
	SummaryBackfillID  = "eventlake.backfill-id"
	SummaryBackfillEnd = "eventlake.backfill-done-through"
)

// BackfillConfig says what to re-aggregate.
type BackfillConfig struct {
	// Model is the declared read model to recompute.
	Model *readmodel.Model
	// From and To bound the event-time buckets to recompute, [From, To);
	// both are truncated to whole buckets.
	From, To time.Time
	// Chunk is the span recomputed and replaced by one commit (default 1h;
	// at least one bucket).
	Chunk time.Duration
	// Wait bounds how long to wait for the raw tables to catch up with the
	// read model's offsets (ingest behind the streamer).
	Wait time.Duration
	// DLQTable is the dead-letter table. A raw table whose offsets lag
	// the read model's only by messages that went there holds every
	// event: ingest commits a raw table's offsets with its next rows, so
	// dead letters at the end of a partition leave them behind until then.
	DLQTable string
	// Progress, when set, is told after every chunk how many of total are
	// done and how far in event time (the CLI draws it).
	Progress func(done, total int, through time.Time)
	// Failpoints stop the process between chunks in crash tests.
	Failpoints *failpoint.Set
	// SkipUnchanged leaves chunks whose rows the table already holds as
	// recomputed uncommitted (periodic re-aggregation: an idle lake makes
	// no snapshots). A backfill asked for commits every chunk, which
	// records how far it got.
	SkipUnchanged bool
	// RunID identifies the run for resumption; empty derives it from the
	// model, range and chunk (a rerun with the same arguments resumes).
	// Callers that must recompute a range again (after an erasure) pass a
	// fresh one.
	RunID string
}

// FailAfterChunk is the failpoint hit after every committed chunk.
const FailAfterChunk = "backfill/after-chunk"

// BackfillResult describes a finished backfill.
type BackfillResult struct {
	Chunks, Skipped int
	Rows            int64
	SnapshotID      int64
}

// Backfill recomputes a declared model's rows of [From, To) from the raw
// events in the lake and replaces them atomically, one chunk per commit
// (delete the chunk's rows and append the recomputed ones in one
// transaction). The model's stored offsets are kept: a chunk is
// recomputed from exactly the raw events below them (the raw tables must
// cover them), so the replaced rows count exactly what the rows they
// replace counted, plus any event the hot tier missed (late, replayed);
// the hot tier's offset boundary stays exact. It is idempotent (a chunk
// recomputed twice gives the same rows) and resumable: every commit
// records the backfill's id and how far it got, and a new run with the
// same arguments continues after the last chunk done.
func Backfill(ctx context.Context, cat *lake.Catalog, com *lake.Committer, cfg BackfillConfig, log *slog.Logger) (BackfillResult, error) {
	var res BackfillResult
	m := cfg.Model
	if m == nil {
		return res, errors.New("backfill: no read model")
	}
	w := m.Bucket.Width
	if cfg.Chunk <= 0 {
		cfg.Chunk = time.Hour
	}
	cfg.Chunk = max(cfg.Chunk, w).Truncate(w)
	if cfg.Wait <= 0 {
		cfg.Wait = time.Minute
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	from := time.UnixMicro(m.Bucket.Of(cfg.From.UnixMicro())).UTC()
	to := time.UnixMicro(m.Bucket.Of(cfg.To.UnixMicro())).UTC()
	if !to.After(from) {
		return res, fmt.Errorf("backfill: --to must be at least one bucket (%s) after --from", m.WidthName())
	}
	tbl, err := cat.LoadTable(ctx, m.Name)
	if errors.Is(err, icecat.ErrNoSuchTable) {
		return res, fmt.Errorf("backfill: read model %s has no table yet: the hot tier creates and builds it when it starts with the model declared", m.Name)
	}
	if err != nil {
		return res, err
	}
	if err := m.Compatible(tbl.Properties(), tbl.Schema()); err != nil {
		return res, err
	}
	id := cfg.RunID
	if id == "" {
		sum := sha256.Sum256([]byte(strings.Join([]string{m.Name, m.Canonical, from.Format(time.RFC3339), to.Format(time.RFC3339), cfg.Chunk.String()}, "|")))
		id = hex.EncodeToString(sum[:8])
	}

	// Resume after the last chunk a previous run with the same arguments
	// committed.
	start := from
	if done, ok := backfillProgress(tbl, id); ok && done.After(start) {
		log.Info("backfill resumes", logkey.Table, m.Name, "after", done.Format(time.RFC3339))
		start = done
	}
	total := int((to.Sub(from) + cfg.Chunk - 1) / cfg.Chunk)
	res.Skipped = int(start.Sub(from) / cfg.Chunk)
	if cfg.Progress != nil {
		cfg.Progress(res.Skipped, total, start)
	}
	for a := start; a.Before(to); a = a.Add(cfg.Chunk) {
		b := a.Add(cfg.Chunk)
		if b.After(to) {
			b = to
		}
		rows, sid, err := backfillChunk(ctx, cat, com, cfg, a, b, id)
		if err != nil {
			return res, fmt.Errorf("backfill %s [%s, %s): %w", m.Name, a.Format(time.RFC3339), b.Format(time.RFC3339), err)
		}
		res.Chunks++
		res.Rows += rows
		res.SnapshotID = sid
		if cfg.Progress != nil {
			cfg.Progress(res.Skipped+res.Chunks, total, b)
		}
		cfg.Failpoints.Hit(FailAfterChunk)
	}
	return res, nil
}

// backfillProgress finds how far backfill id got in the table's history.
func backfillProgress(tbl *table.Table, id string) (time.Time, bool) {
	md := tbl.Metadata()
	for s := md.CurrentSnapshot(); s != nil; {
		if s.Summary != nil && s.Summary.Properties[SummaryBackfillID] == id {
			t, err := time.Parse(time.RFC3339, s.Summary.Properties[SummaryBackfillEnd])
			return t, err == nil
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	return time.Time{}, false
}

// TaskBackfill is the commit task of backfill chunks.
const TaskBackfill = "backfill"

// errRawBehind means the raw table does not hold every event the read
// model counts yet (ingest is behind the hot tier).
var errRawBehind = errors.New("raw table behind the read model")

// backfillChunk recomputes and replaces one chunk. The commit protocol
// stages it again on the fresh tables after a conflict with a concurrent
// commit (the streamer's deltas), which recomputes it.
func backfillChunk(ctx context.Context, cat *lake.Catalog, com *lake.Committer, cfg BackfillConfig, a, b time.Time, id string) (int64, int64, error) {
	deadline := time.Now().Add(cfg.Wait)
	for {
		var rows int64
		m := cfg.Model
		nt, err := com.Commit(ctx, lake.Change{
			Table: m.Name, Task: TaskBackfill, MaxConflicts: 20,
			Summary: iceberg.Properties{SummaryBackfillID: id, SummaryBackfillEnd: b.Format(time.RFC3339)},
			Stage: func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
				staged, err := tx.StagedTable()
				if err != nil {
					return err
				}
				rmOff, err := lake.StoredOffsets(staged.Table)
				if err != nil {
					return err
				}
				raws, err := readmodel.SourceTables(ctx, cat, m)
				if err != nil {
					return err
				}
				st := m.NewState()
				rawOff, err := m.Scan(ctx, raws, readmodel.Range{From: a.UnixMicro(), To: b.UnixMicro()}, rmOff,
					func(c readmodel.Contribution) { st.Apply(c) })
				if err != nil {
					return err
				}
				behind, err := rawBehind(ctx, cat, cfg.DLQTable, rmOff, rawOff)
				if err != nil {
					return err
				}
				if behind != "" {
					return fmt.Errorf("%w: the raw tables do not yet hold every event the read model counts (%s); is ingest running?",
						errRawBehind, behind)
				}
				span := readmodel.Range{From: a.UnixMicro(), To: b.UnixMicro()}
				if cfg.SkipUnchanged {
					cur, err := m.ReadRange(ctx, staged.Table, span)
					if err != nil {
						return err
					}
					if readmodel.Same(cur, st) {
						return lake.ErrNothingToCommit
					}
				}
				var out []*readmodel.Row
				st.Each(func(r *readmodel.Row) { out = append(out, r) })
				rows = int64(len(out))
				return m.ReplaceStage(out, m.RangeFilter(span))(ctx, tx, props)
			},
		})
		if errors.Is(err, errRawBehind) && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return 0, 0, ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		var sid int64
		if s := nt.CurrentSnapshot(); s != nil {
			sid = s.SnapshotID
		}
		return rows, sid, nil
	}
}

// rawBehind says which partition the raw tables have not reached yet.
func rawBehind(ctx context.Context, cat *lake.Catalog, dlqTable string, rm, raw lake.Offsets) (string, error) {
	for topic, parts := range rm {
		for p, o := range parts {
			r, _ := raw.Get(topic, p)
			if r >= o {
				continue
			}
			dead, err := deadLettered(ctx, cat, dlqTable, topic, p, o)
			if err != nil {
				return "", err
			}
			if !dead {
				return fmt.Sprintf("%s partition %d: raw table at offset %d, read model at %d", topic, p, r, o), nil
			}
		}
	}
	return "", nil
}

// deadLettered reports whether the partition's offsets the raw table lacks, up to to,
// went to the dead-letter table: ingest commits the dead letters first,
// with the end offsets of every partition of the batch, then the raw
// tables, whose offsets ride along with their next rows when a batch has
// none for them. A raw table behind a dead-letter table that committed
// at least deadLetterSettle ago therefore lags by dead letters only (the
// raw commit of the same batch follows at once), unless ingest crashed
// between the two commits: then it re-reads the batch from the raw
// table's offsets when it restarts, and the periodic re-aggregation
// counts those orders again. The rows are not counted instead, because
// erasure may have removed some of them.
func deadLettered(ctx context.Context, cat *lake.Catalog, dlqTable, topic string, p int32, to int64) (bool, error) {
	if dlqTable == "" {
		return false, nil
	}
	dlq, err := cat.LoadTable(ctx, dlqTable)
	if err != nil || dlq.CurrentSnapshot() == nil {
		return false, nil // no dead letters (or none readable): not caught up
	}
	stored, err := lake.StoredOffsets(dlq)
	if err != nil {
		return false, err
	}
	if got, _ := stored.Get(topic, p); got < to {
		return false, nil
	}
	age := time.Since(time.UnixMilli(dlq.CurrentSnapshot().TimestampMs))
	return age >= deadLetterSettle, nil
}

// deadLetterSettle is how long after a dead-letter commit a raw table
// still behind it is taken to lag by dead letters only.
const deadLetterSettle = 5 * time.Second
