package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/internal/dedupe"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/tracing"
	"github.com/eventlake/eventlake/lake"
)

// ErrFenced means another writer committed offsets this process was about
// to commit: the partition moved to another group member (or this process
// is a zombie). The batch is abandoned and the partitions are re-read from
// the offsets stored in the lake.
var ErrFenced = lake.ErrFenced

// TaskIngest is the commit task of ingest's appends.
const TaskIngest = "ingest"

// Failpoint names on the commit path, in protocol order.
const (
	FailBeforeCommit      = "ingest/before-commit"       // files written, nothing committed
	FailAfterDLQCommit    = "ingest/after-dlq-commit"    // dead letters committed, raw tables not
	FailAfterRawCommit    = "ingest/after-raw-commit"    // one raw table committed
	FailBeforeKafkaCommit = "ingest/before-kafka-commit" // lake committed, Kafka offsets not
)

// flushLocked closes the batch's files and commits them: first the
// dead-letter table, then every raw table, each with the Kafka offsets it
// covers in the snapshot summary; then Kafka's own offsets (for lag
// monitoring only). Called with mu held.
//
// Why the order is safe (docs/EXACTLY_ONCE.md has the full argument): each
// table records the offsets it covers, and on restart a record is written
// to a table only if its offset is beyond what that table stores. The
// dead-letter table is committed first so that the raw tables' offsets,
// where consumption resumes, never run ahead of it.
func (ing *Ingester) flushLocked(ctx context.Context) error {
	b := &ing.b
	if b.records == 0 {
		return nil
	}
	ctx = ing.batchContext(ctx)
	start := ing.deps.Now()
	ing.m.setState(stateCommitting)
	defer ing.m.setState(stateConsuming)

	// Hand the last chunks to the encoder, which closes each file after
	// its last rows, and wait for it.
	ing.dlq.closeOpen()
	for _, ts := range ing.topics {
		ts.w.closeOpen()
	}
	ing.enc.drain()
	closed := ing.deps.Now()

	dlqFiles, err := ing.dlq.finishFiles()
	if err != nil {
		return ing.abort(ctx, &storageError{fmt.Errorf("close dead-letter files: %w", err)})
	}
	rawFiles := map[string][]iceberg.DataFile{}
	for topic, ts := range ing.topics {
		files, err := ts.w.finishFiles()
		if err != nil {
			return ing.abort(ctx, &storageError{fmt.Errorf("close files of %s: %w", ts.w.name, err)})
		}
		rawFiles[topic] = files
	}
	ing.deps.Failpoints.Hit(FailBeforeCommit)

	// 1. Dead letters, with the end offsets of every partition in the batch.
	if len(dlqFiles) > 0 {
		if err := ing.commitTable(ctx, ing.dlq, dlqFiles, ing.b.end, ing.baseDLQ); err != nil {
			return ing.abort(ctx, err)
		}
		for t, m := range ing.b.end {
			for p, off := range m {
				ing.baseDLQ.Set(t, p, off)
			}
		}
		ing.dlq.reset()
		for r, n := range ing.b.reasons {
			ing.m.dlq.WithLabelValues(string(r)).Add(float64(n))
		}
		ing.deps.Failpoints.Hit(FailAfterDLQCommit)
	}

	// 2. Raw tables, concurrently: they are independent of each other.
	var (
		g    errgroup.Group
		errs = make(map[string]error, len(ing.topics))
		emu  sync.Mutex
	)
	for topic, ts := range ing.topics {
		files := rawFiles[topic]
		if len(files) == 0 {
			continue // offsets stay dirty and ride along with the next commit
		}
		g.Go(func() error {
			err := ing.commitTable(ctx, ts.w, files, ts.dirty, ts.base)
			if err == nil {
				ing.deps.Failpoints.Hit(FailAfterRawCommit)
			}
			emu.Lock()
			errs[topic] = err
			emu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	var failed []error
	for topic, err := range errs {
		if err == nil {
			ing.advance(ing.topics[topic])
		} else {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		// The tables that committed keep their commit; abort drops the
		// files of the others and re-reads their records.
		return ing.abort(ctx, errors.Join(failed...))
	}

	// 3. Kafka offsets, for lag monitoring and tools; never read back.
	ing.deps.Failpoints.Hit(FailBeforeKafkaCommit)
	ing.commitKafka(ctx)
	ing.publishDeadLetters(ctx)

	ing.m.batchRows.Observe(float64(b.records))
	ing.m.batchBytes.Observe(float64(b.bytes))
	ing.m.flushDuration.Observe(ing.deps.Now().Sub(start).Seconds())
	end := ing.deps.Now()
	ing.progress.Committed(end)
	ing.lagt.committed()
	ing.log.Debug("batch committed", logkey.Rows, b.records, logkey.Bytes, b.bytes, logkey.Duration, end.Sub(start),
		"close_files", closed.Sub(start), "commit", end.Sub(closed), "batch_age", end.Sub(b.started))
	ing.endBatchTrace(nil)
	b.reset()
	return nil
}

// advance moves a topic's fence after its raw commit.
func (ing *Ingester) advance(ts *topicState) {
	for t, m := range ts.dirty {
		for p, off := range m {
			ts.base.Set(t, p, off)
			ing.m.committedOffset.WithLabelValues(t, strconv.Itoa(int(p))).Set(float64(off))
		}
	}
	ts.dirty = lake.Offsets{}
	ts.w.reset()
}

// commitTable appends files to w's table with offsets merged into the
// stored ones, fenced on base (the commit protocol of lake/commit.go),
// and adds the batch's events per source to the table's counts.
func (ing *Ingester) commitTable(ctx context.Context, w *tableWriter, files []iceberg.DataFile, offsets, base lake.Offsets) error {
	start := time.Now()
	var rows, size int64
	for _, f := range files {
		rows += f.Count()
		size += f.FileSizeBytes()
	}
	ctx, span := ing.commitSpan(ctx, w.name, files, rows)
	// The sources of the batch's events are counted in the same commit
	// (nothing to count for the dead-letter table).
	stage := lake.AppendCountingSources(files, w.sources.counts(), ing.deps.Now())
	tbl, err := ing.committer.Commit(ctx, lake.Change{Table: w.name, Task: TaskIngest, Base: w.tbl,
		Offsets: offsets, Fence: base, Stage: stage})
	tracing.EndSpan(span, err)
	if err != nil {
		return err
	}
	w.tbl = tbl
	ing.m.commitDuration.WithLabelValues(w.name).Observe(time.Since(start).Seconds())
	ing.m.committed.WithLabelValues(w.name).Add(float64(rows))
	ing.m.filesWritten.WithLabelValues(w.name).Add(float64(len(files)))
	ing.m.bytesWritten.WithLabelValues(w.name).Add(float64(size))
	now := ing.deps.Now()
	ing.m.lastCommit.WithLabelValues(w.name).Set(float64(now.UnixNano()) / 1e9)
	if len(w.eventTimes) > 0 {
		fresh, nowMicros := ing.m.freshness.WithLabelValues(w.name), now.UnixMicro()
		for _, ts := range w.eventTimes {
			fresh.Observe(max(float64(nowMicros-ts)/1e6, 0)) // an event time ahead of this clock is fresh
		}
	}
	var sid int64
	if s := tbl.CurrentSnapshot(); s != nil {
		sid = s.SnapshotID
	}
	ing.log.Debug("committed", logkey.Table, w.name, logkey.SnapshotID, sid, logkey.Files, len(files), logkey.Rows, rows)
	return nil
}

// ErrCommitUnknown means a commit's outcome could not be determined before
// the context ended: its files may be referenced by the table and must not
// be deleted (orphan cleanup removes them later if they are not).
var ErrCommitUnknown = lake.ErrCommitUnknown

// abort abandons what is left of the batch: it removes files that were
// not committed, forgets pending dedupe ids, and rewinds every owned
// partition to the offsets stored in the lake, reloaded fresh. cause is
// returned unless it is a fence, which is an expected part of rebalancing.
// Called with mu held.
func (ing *Ingester) abort(ctx context.Context, cause error) error {
	keepFiles := errors.Is(cause, ErrCommitUnknown)
	switch {
	case errors.Is(cause, ErrFenced):
		ing.log.Warn("batch fenced, re-reading from the offsets stored in the lake", logkey.Err, cause)
	case ctx.Err() != nil && errors.Is(cause, context.Canceled) && !keepFiles:
		// Shutting down: the batch is read again from the stored offsets
		// (by the final flush, or the next start).
		ing.log.Info("batch not committed before shutdown; it is read again from the offsets stored in the lake", logkey.Err, cause)
	default:
		ing.log.Error("batch abandoned", logkey.Err, cause)
		ing.progress.Failed(cause)
	}
	// The encoder may still write or close files of the batch.
	ing.enc.drain()
	var errs []error
	drop := func(w *tableWriter) {
		if keepFiles {
			w.reset()
			return
		}
		if err := w.abort(context.WithoutCancel(ctx)); err != nil {
			errs = append(errs, err)
		}
	}
	drop(ing.dlq)
	for _, ts := range ing.topics {
		drop(ts.w)
		ts.dirty = lake.Offsets{}
	}
	ing.endBatchTrace(cause)
	ing.b.reset()
	if len(errs) > 0 {
		ing.noteOrphans(errs)
		ing.log.Warn("could not remove uncommitted files; orphan cleanup will", logkey.Err, errors.Join(errs...))
	}
	if err := ing.rewind(ctx); err != nil {
		return errors.Join(cause, err)
	}
	if errors.Is(cause, ErrFenced) {
		return nil
	}
	return cause
}

// rewind reloads the stored offsets of every owned partition and seeks the
// consumer there. Called with mu held.
func (ing *Ingester) rewind(ctx context.Context) error {
	owned := map[string][]int32{}
	for t, ps := range ing.assigned {
		for p := range ps {
			owned[t] = append(owned[t], p)
		}
	}
	seek, err := ing.loadBases(ctx, owned)
	if err != nil {
		return err
	}
	if ing.cl != nil && len(seek) > 0 {
		set := map[string]map[int32]kgo.EpochOffset{}
		for t, m := range seek {
			set[t] = map[int32]kgo.EpochOffset{}
			for p, off := range m {
				set[t][p] = kgo.EpochOffset{Epoch: -1, Offset: off.EpochOffset().Offset}
			}
		}
		ing.cl.SetOffsets(set)
	}
	return nil
}

// loadBases reads the offsets stored in the raw and dead-letter tables for
// the given partitions, records them as the fence, and returns where to
// start consuming each partition. Called with mu held.
func (ing *Ingester) loadBases(ctx context.Context, parts map[string][]int32) (map[string]map[int32]kgo.Offset, error) {
	dlqTbl, err := ing.deps.Catalog.LoadTable(ctx, ing.cfg.DLQTable)
	if err != nil {
		return nil, err
	}
	dlqStored, err := lake.StoredOffsets(dlqTbl)
	if err != nil {
		return nil, err
	}
	if !ing.dlq.pending() {
		if err := ing.dlq.setTable(dlqTbl); err != nil {
			return nil, err
		}
	}
	out := map[string]map[int32]kgo.Offset{}
	for topic, ps := range parts {
		ts, err := ing.topic(ctx, topic)
		if err != nil {
			return nil, err
		}
		if ts == nil {
			continue // a topic the layout does not take
		}
		stored := lake.Offsets{}
		tbl, err := ing.deps.Catalog.LoadTable(ctx, ts.w.name)
		switch {
		case errors.Is(err, icecat.ErrNoSuchTable):
			// Created on its first event.
		case err != nil:
			return nil, err
		default:
			if stored, err = lake.StoredOffsets(tbl); err != nil {
				return nil, err
			}
			if !ts.w.pending() {
				if err := ts.w.setTable(tbl); err != nil {
					return nil, err
				}
			}
		}
		out[topic] = map[int32]kgo.Offset{}
		for _, p := range ps {
			// The partition is (re)read from scratch: its dedupe window is
			// rebuilt from the dedupe_window records before the stored
			// offset (read again, not written), so that decisions match
			// those of any other reader of the partition.
			ing.dd.Reset(dedupe.Key{Topic: topic, Partition: p})
			if off, ok := stored.Get(topic, p); ok {
				ts.base.Set(topic, p, off)
				out[topic][p] = kgo.NewOffset().At(max(0, off-ing.dd.Window())).WithEpoch(-1)
			} else {
				delete(ts.base[topic], p)
				out[topic][p] = kgo.NewOffset().AtStart()
			}
			if off, ok := dlqStored.Get(topic, p); ok {
				ing.baseDLQ.Set(topic, p, off)
			} else {
				delete(ing.baseDLQ[topic], p)
			}
			delete(ts.dirty[topic], p)
		}
	}
	return out, nil
}

// adjustOffsets replaces the group's committed offsets with the offsets
// stored in the lake for newly assigned partitions.
func (ing *Ingester) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := map[string][]int32{}
	for t, m := range offsets {
		for p := range m {
			parts[t] = append(parts[t], p)
		}
	}
	ing.mu.Lock()
	defer ing.mu.Unlock()
	out, err := ing.loadBases(ctx, parts)
	if err != nil {
		ing.log.Error("load stored offsets for assigned partitions", logkey.Err, err)
		return nil, err
	}
	for t, m := range out {
		for p := range m {
			start := "earliest"
			if off, ok := ing.topics[t].base.Get(t, p); ok {
				start = strconv.FormatInt(off, 10)
			}
			ing.log.Info("partition assigned", logkey.Topic, t, logkey.Partition, p, "start_offset", start)
		}
	}
	return out, nil
}

func (ing *Ingester) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	ing.mu.Lock()
	defer ing.mu.Unlock()
	for t, ps := range assigned {
		if ing.assigned[t] == nil {
			ing.assigned[t] = map[int32]bool{}
		}
		for _, p := range ps {
			ing.assigned[t][p] = true
			ing.lagt.own(t, p)
		}
	}
}

// onRevoked commits what the batch holds before the partitions move, so
// that the next owner starts exactly where this process stopped.
func (ing *Ingester) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	ing.mu.Lock()
	defer ing.mu.Unlock()
	if err := ing.flushLocked(ctx); err != nil {
		ing.log.Warn("flush on revoke failed; the next owner re-reads from the lake's offsets", logkey.Err, err)
	}
	ing.forget(revoked)
}

// onLost drops the batch: the partitions may already be owned by another
// member, and the fence would refuse the commit anyway.
func (ing *Ingester) onLost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	ing.mu.Lock()
	defer ing.mu.Unlock()
	ing.forget(lost)
	if ing.b.records > 0 {
		_ = ing.abort(ctx, fmt.Errorf("%w: partitions lost", ErrFenced))
	}
}

func (ing *Ingester) forget(parts map[string][]int32) {
	for t, ps := range parts {
		for _, p := range ps {
			delete(ing.assigned[t], p)
			if ts := ing.topics[t]; ts != nil {
				delete(ts.base[t], p)
				delete(ts.dirty[t], p)
			}
			delete(ing.baseDLQ[t], p)
			ing.dd.Reset(dedupe.Key{Topic: t, Partition: p})
			ing.m.lag.DeleteLabelValues(t, strconv.Itoa(int(p)))
			ing.lagt.forget(t, p)
			ing.m.committedOffset.DeleteLabelValues(t, strconv.Itoa(int(p)))
		}
	}
}

// commitKafka stores the batch's end offsets in the consumer group, which
// is what lag monitors and kadm read. The lake's offsets stay authoritative.
func (ing *Ingester) commitKafka(ctx context.Context) {
	if ing.cl == nil {
		return
	}
	set := map[string]map[int32]kgo.EpochOffset{}
	for t, m := range ing.b.end {
		for p, off := range m {
			if !ing.assigned[t][p] {
				continue
			}
			if set[t] == nil {
				set[t] = map[int32]kgo.EpochOffset{}
			}
			set[t][p] = kgo.EpochOffset{Epoch: -1, Offset: off}
		}
	}
	if len(set) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ing.cl.CommitOffsetsSync(cctx, set, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil {
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
						err = e
					}
				}
			}
		}
		if err != nil {
			ing.m.kafkaCommitErrs.Inc()
			ing.log.Debug("kafka offset commit failed (monitoring only)", logkey.Err, err)
		}
	})
}

// publishDeadLetters copies the batch's rejected messages to the optional
// dead-letter topic, with the reason and origin in headers, for tools that
// react to bad input. The lake's dead-letter table is the record; the topic
// is at-least-once (a crash between the lake commit and this send repeats
// nothing in the table but may skip or repeat a topic copy).
func (ing *Ingester) publishDeadLetters(ctx context.Context) {
	if ing.cfg.DLQTopic == "" || len(ing.b.dlqRows) == 0 || ing.cl == nil {
		return
	}
	recs := make([]*kgo.Record, 0, len(ing.b.dlqRows))
	for _, r := range ing.b.dlqRows {
		recs = append(recs, &kgo.Record{
			Topic: ing.cfg.DLQTopic, Key: r.key, Value: r.raw,
			Headers: []kgo.RecordHeader{
				{Key: "eventlake.reason", Value: []byte(r.reason)},
				{Key: "eventlake.detail", Value: []byte(r.detail)},
				{Key: "eventlake.topic", Value: []byte(r.topic)},
				{Key: "eventlake.partition", Value: strconv.AppendInt(nil, int64(r.partition), 10)},
				{Key: "eventlake.offset", Value: strconv.AppendInt(nil, r.offset, 10)},
			},
		})
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := ing.cl.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		ing.m.dlqTopicErrors.Inc()
		ing.log.Warn("copy dead letters to topic failed (they are in the dead-letter table)", logkey.Topic, ing.cfg.DLQTopic, logkey.Err, err)
	}
}
