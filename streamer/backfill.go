package streamer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/zeebo/xxh3"

	"github.com/eventlake/eventlake/internal/eventtime"
	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/hll"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
)

// Summary keys of backfill snapshots.
const (
	SummaryBackfillID  = "eventlake.backfill-id"
	SummaryBackfillEnd = "eventlake.backfill-done-through"
)

// BackfillConfig says what to re-aggregate.
type BackfillConfig struct {
	// Table is order_revenue_minute or user_activity_minute.
	Table string
	// From and To bound the event-time minutes to recompute, [From, To);
	// both are truncated to whole minutes.
	From, To time.Time
	// Chunk is the span recomputed and replaced by one commit (default 1h).
	Chunk time.Duration
	// RawTable is the orders' raw table; Orders says which events and
	// columns of it are counted (read_models.orders).
	RawTable string
	Orders   lake.OrderInputs
	// Wait bounds how long to wait for the raw table to catch up with the
	// read model's offsets (ingest behind the streamer).
	Wait time.Duration
	// DLQTable is the dead-letter table. A raw table whose offsets lag
	// the read model's only by messages that went there holds every
	// order: ingest commits a raw table's offsets with its next rows, so
	// dead letters at the end of a partition leave them behind until then.
	DLQTable string
	// Progress receives a progress bar (Terminal) or progress lines.
	Progress io.Writer
	Terminal bool
	// Failpoints stop the process between chunks in crash tests.
	Failpoints *failpoint.Set
	// RunID identifies the run for resumption; empty derives it from the
	// table, range and chunk (a rerun with the same arguments resumes).
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

// Backfill recomputes read-model rows of [From, To) from the raw events in
// the lake and replaces them atomically, one chunk per commit (delete the
// chunk's rows and append the recomputed ones in one transaction). The
// read model's stored offsets are kept: a chunk is recomputed from exactly
// the raw events below them (the raw table must cover them), so the
// replaced rows count exactly what the rows they replace counted, plus any
// event the deltas missed; the hot tier's offset boundary stays exact. It
// is idempotent (a chunk recomputed twice gives the same rows) and
// resumable: every commit records the backfill's id and how far it got, and
// a new run with the same arguments continues after the last chunk done.
func Backfill(ctx context.Context, cat *lake.Catalog, com *lake.Committer, cfg BackfillConfig, log *slog.Logger) (BackfillResult, error) {
	var res BackfillResult
	if cfg.Table != lake.TableOrderRevenueMinute && cfg.Table != lake.TableUserActivityMinute {
		return res, fmt.Errorf("backfill: table %q is not a re-aggregatable read model (%s or %s)", cfg.Table,
			lake.TableOrderRevenueMinute, lake.TableUserActivityMinute)
	}
	if cfg.Chunk <= 0 {
		cfg.Chunk = time.Hour
	}
	if cfg.Wait <= 0 {
		cfg.Wait = time.Minute
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	from, to := cfg.From.UTC().Truncate(time.Minute), cfg.To.UTC().Truncate(time.Minute)
	if !to.After(from) {
		return res, errors.New("backfill: --to must be at least a minute after --from")
	}
	if cfg.Chunk < time.Minute || cfg.Chunk%time.Minute != 0 {
		return res, errors.New("backfill: the chunk must be a whole number of minutes")
	}
	def := lake.OrderRevenueMinuteDef()
	if cfg.Table == lake.TableUserActivityMinute {
		def = lake.UserActivityMinuteDef()
	}
	if _, err := cat.EnsureTable(ctx, def); err != nil {
		return res, err
	}
	id := cfg.RunID
	if id == "" {
		sum := sha256.Sum256([]byte(strings.Join([]string{cfg.Table, from.Format(time.RFC3339), to.Format(time.RFC3339), cfg.Chunk.String()}, "|")))
		id = hex.EncodeToString(sum[:8])
	}

	// Resume after the last chunk a previous run with the same arguments
	// committed.
	start := from
	if tbl, err := cat.LoadTable(ctx, cfg.Table); err == nil {
		if done, ok := backfillProgress(tbl, id); ok && done.After(start) {
			log.Info("backfill resumes", logkey.Table, cfg.Table, "after", done.Format(time.RFC3339))
			start = done
		}
	}
	total := int((to.Sub(from) + cfg.Chunk - 1) / cfg.Chunk)
	res.Skipped = int(start.Sub(from) / cfg.Chunk)
	bar := progress{w: cfg.Progress, terminal: cfg.Terminal, total: total, table: cfg.Table}
	bar.show(res.Skipped, start)
	for a := start; a.Before(to); a = a.Add(cfg.Chunk) {
		b := a.Add(cfg.Chunk)
		if b.After(to) {
			b = to
		}
		rows, sid, err := backfillChunk(ctx, cat, com, cfg, a, b, id)
		if err != nil {
			bar.done()
			return res, fmt.Errorf("backfill %s [%s, %s): %w", cfg.Table, a.Format(time.RFC3339), b.Format(time.RFC3339), err)
		}
		res.Chunks++
		res.Rows += rows
		res.SnapshotID = sid
		bar.show(res.Skipped+res.Chunks, b)
		cfg.Failpoints.Hit(FailAfterChunk)
	}
	bar.done()
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
		filter := iceberg.NewAnd(
			iceberg.GreaterThanEqual(iceberg.Reference(lake.ColMinute), iceberg.Timestamp(a.UnixMicro())),
			iceberg.LessThan(iceberg.Reference(lake.ColMinute), iceberg.Timestamp(b.UnixMicro())))
		nt, err := com.Commit(ctx, lake.Change{
			Table: cfg.Table, Task: TaskBackfill, MaxConflicts: 20,
			Summary: iceberg.Properties{SummaryBackfillID: id, SummaryBackfillEnd: b.Format(time.RFC3339)},
			Stage: func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
				staged, err := tx.StagedTable()
				if err != nil {
					return err
				}
				rm := staged.Table
				rmOff, err := lake.StoredOffsets(rm)
				if err != nil {
					return err
				}
				raw, err := cat.LoadTable(ctx, cfg.RawTable)
				if err != nil {
					return err
				}
				rawOff, err := lake.StoredOffsets(raw)
				if err != nil {
					return err
				}
				behind, err := rawBehind(ctx, cat, cfg, rmOff, rawOff)
				if err != nil {
					return err
				}
				if behind != "" {
					return fmt.Errorf("%w: the raw table %s does not yet hold every event the read model counts (%s); is ingest running?",
						errRawBehind, cfg.RawTable, behind)
				}
				rec, n, err := recompute(ctx, raw, rm, cfg, rmOff, a, b)
				if err != nil {
					return err
				}
				defer rec.Release()
				rows = n
				if rm.CurrentSnapshot() != nil {
					if err := tx.Delete(ctx, filter, props); err != nil {
						return fmt.Errorf("stage delete of the chunk's rows: %w", err)
					}
				}
				if rec.NumRows() > 0 {
					rdr, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
					if err != nil {
						return err
					}
					defer rdr.Release()
					if err := tx.Append(ctx, rdr, props); err != nil {
						return fmt.Errorf("stage recomputed rows: %w", err)
					}
				}
				return nil
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

// rawBehind says which partition the raw table has not reached yet.
func rawBehind(ctx context.Context, cat *lake.Catalog, cfg BackfillConfig, rm, raw lake.Offsets) (string, error) {
	topic := cfg.Orders.Topic
	for p, o := range rm[topic] {
		r, _ := raw.Get(topic, p)
		if r >= o {
			continue
		}
		dead, err := deadLettered(ctx, cat, cfg.DLQTable, topic, p, o)
		if err != nil {
			return "", err
		}
		if !dead {
			return fmt.Sprintf("partition %d: raw table at offset %d, read model at %d", p, r, o), nil
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

// recompute aggregates the chunk from the raw table: orders with event
// time in [a, b) and an offset below the read model's, per partition.
func recompute(ctx context.Context, raw, rm *table.Table, cfg BackfillConfig, off lake.Offsets, a, b time.Time) (arrow.RecordBatch, int64, error) {
	filter := iceberg.NewAnd(
		iceberg.GreaterThanEqual(iceberg.Reference(lake.ColTs), iceberg.Timestamp(a.UnixMicro())),
		iceberg.LessThan(iceberg.Reference(lake.ColTs), iceberg.Timestamp(b.UnixMicro())))
	scan := raw.Scan(table.WithRowFilter(filter), table.WithSelectedFields(
		lake.ColTs, lake.ColType, cfg.Orders.Amount, cfg.Orders.User, lake.ColKafkaPartition, lake.ColKafkaOffset))
	revenue := map[int64]agg{}
	users := map[int64]*activityAgg{}
	if raw.CurrentSnapshot() != nil {
		_, it, err := scan.ToArrowRecords(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("scan %s: %w", cfg.RawTable, err)
		}
		for rec, err := range it {
			if err != nil {
				return nil, 0, fmt.Errorf("scan %s: %w", cfg.RawTable, err)
			}
			addRaw(rec, cfg.Orders, off, revenue, users)
			rec.Release()
		}
	}
	sc, err := table.SchemaToArrowSchema(rm.Schema(), nil, false, false)
	if err != nil {
		return nil, 0, err
	}
	bld := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer bld.Release()
	var n int64
	if cfg.Table == lake.TableOrderRevenueMinute {
		for _, m := range sortedKeys(revenue) {
			r := revenue[m]
			bld.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(m * eventtime.MicrosPerMinute))
			bld.Field(1).(*array.Decimal128Builder).Append(r.sum)
			bld.Field(2).(*array.Int64Builder).Append(r.count)
			n++
		}
	} else {
		for _, m := range sortedKeys(users) {
			u := users[m]
			enc, err := u.users.MarshalBinary()
			if err != nil {
				return nil, 0, err
			}
			bld.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(m * eventtime.MicrosPerMinute))
			bld.Field(1).(*array.BinaryBuilder).Append(enc)
			bld.Field(2).(*array.Int64Builder).Append(int64(u.users.Estimate()))
			bld.Field(3).(*array.Int64Builder).Append(u.events)
			n++
		}
	}
	return bld.NewRecordBatch(), n, nil
}

func addRaw(rec arrow.RecordBatch, in lake.OrderInputs, off lake.Offsets, revenue map[int64]agg, users map[int64]*activityAgg) {
	col := func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) == 0 {
			return nil
		}
		return rec.Column(idx[0])
	}
	ts, _ := col(lake.ColTs).(*array.Timestamp)
	typ, _ := col(lake.ColType).(*array.String)
	amt, _ := col(in.Amount).(*array.Decimal128)
	uid, _ := col(in.User).(*array.String)
	part, _ := col(lake.ColKafkaPartition).(*array.Int32)
	ko, _ := col(lake.ColKafkaOffset).(*array.Int64)
	if ts == nil || typ == nil || amt == nil || uid == nil || part == nil || ko == nil {
		return
	}
	scale := amt.DataType().(*arrow.Decimal128Type).Scale
	if scale > 2 {
		return // not countable in cents (the hot tier skips them too)
	}
	for i := 0; i < int(rec.NumRows()); i++ {
		if typ.Value(i) != in.Type || amt.IsNull(i) {
			continue
		}
		limit, ok := off.Get(in.Topic, part.Value(i))
		if !ok || ko.Value(i) >= limit {
			continue // not in the read model yet: the hot tier counts it
		}
		m := eventtime.FloorDiv(int64(ts.Value(i)), eventtime.MicrosPerMinute)
		r := revenue[m]
		r.add(amt.Value(i).IncreaseScaleBy(2-scale), 1)
		revenue[m] = r
		u := users[m]
		if u == nil {
			u = &activityAgg{users: hll.New()}
			users[m] = u
		}
		u.users.Add(xxh3.HashString(uid.Value(i))) // "" for null, as the hot tier hashes it
		u.events++
	}
}

// progress shows a bar on a terminal and plain lines otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	total    int
	table    string
}

func (p progress) show(done int, through time.Time) {
	if p.w == nil {
		return
	}
	if p.terminal {
		const width = 30
		filled := width * done / max(p.total, 1)
		fmt.Fprintf(p.w, "\rbackfill %s [%s%s] %d/%d chunks, through %s ", p.table,
			strings.Repeat("#", filled), strings.Repeat(" ", width-filled), done, p.total, through.Format(time.RFC3339))
		return
	}
	fmt.Fprintf(p.w, "backfill %s: %d/%d chunks done, through %s\n", p.table, done, p.total, through.Format(time.RFC3339))
}

func (p progress) done() {
	if p.w != nil && p.terminal {
		fmt.Fprintln(p.w)
	}
}
