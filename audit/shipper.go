package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventlake/eventlake/internal/health"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
)

// TaskAudit is the commit task of the shipper: the protocol's failpoints
// for it are lake/before-commit/audit and lake/after-commit/audit.
const TaskAudit = "audit"

// TopicPrefix starts the pseudo topic under which the audit_log table
// stores how far it holds each log: "audit/<node>", partition 0, the next
// sequence number, in the snapshot summary's Kafka offsets.
const TopicPrefix = "audit/"

// ShipperConfig tunes a Shipper.
type ShipperConfig struct {
	// Table is the audit table's name; default lake.TableAuditLog.
	Table string
	// Interval is how often records are committed; default 1 s. A commit
	// also starts as soon as MaxBatchRecords records are waiting.
	Interval time.Duration
	// MaxBatchRecords and MaxBatchBytes (of the records' JSON form) bound
	// one commit, and so the memory a batch takes; defaults 10,000 and
	// 16 MiB. A backlog is shipped in several commits.
	MaxBatchRecords int
	MaxBatchBytes   int
	// ShutdownTimeout bounds the final flush when Run's context ends;
	// default 10 s. What it does not ship stays in the local log.
	ShutdownTimeout time.Duration
}

// Defaults fills unset fields.
func (c *ShipperConfig) Defaults() {
	if c.Table == "" {
		c.Table = lake.TableAuditLog
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.MaxBatchRecords == 0 {
		c.MaxBatchRecords = 10_000
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 16 << 20
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
}

// Validate checks the configuration.
func (c ShipperConfig) Validate() error {
	var errs []error
	if c.Table == "" {
		errs = append(errs, errors.New("audit table name is required"))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("audit ship interval %v must be positive", c.Interval))
	}
	if c.MaxBatchRecords < 1 || c.MaxBatchBytes < 1 {
		errs = append(errs, errors.New("audit ship batch bounds must be positive"))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("audit ship shutdown timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// ShipperDeps are the shipper's collaborators. Catalog and Committer are
// required; Committer must commit to Catalog.
type ShipperDeps struct {
	Catalog   *lake.Catalog
	Committer *lake.Committer
	Logger    *slog.Logger
	Registry  prometheus.Registerer
}

// Shipper commits the records of a Log to the audit_log table, in
// batches, through the lake's commit protocol, each commit storing the
// log's next sequence number in the table's offsets; it then deletes the
// segments the table holds. It resumes from the table's offsets, so a
// crash at any point neither loses nor repeats a record.
type Shipper struct {
	l     *Log
	cfg   ShipperConfig
	deps  ShipperDeps
	log   *slog.Logger
	m     *shipMetrics
	topic string

	mu     sync.Mutex // one shipment at a time
	loaded bool       // tbl, next and stored reflect the table
	tbl    *table.Table
	next   uint64 // the first record the table does not hold
	stored bool   // the table stores an offset for this log
	// committed mirrors next for the pending gauge.
	committed atomic.Uint64
	// progress says when records wait too long for a shipment (Ready).
	progress *health.Committer
}

// NewShipper returns a shipper of l's records.
func NewShipper(l *Log, cfg ShipperConfig, deps ShipperDeps) (*Shipper, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if l == nil || deps.Catalog == nil || deps.Committer == nil {
		return nil, errors.New("audit shipper: a log, a catalog and a committer are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	s := &Shipper{l: l, cfg: cfg, deps: deps, topic: TopicPrefix + l.Node(),
		// A shipment every Interval, a failed one retried at the next.
		progress: health.NewCommitter("audit shipper", 2*cfg.Interval+30*time.Second, nil),
		log:      deps.Logger.With(logkey.Component, "audit", logkey.Table, cfg.Table, logNode, l.Node())}
	m, err := newShipMetrics(deps.Registry, func() float64 { return float64(s.pending()) })
	if err != nil {
		return nil, err
	}
	s.m = m
	return s, nil
}

// Run ships every Interval (or as soon as a full batch waits) until ctx
// ends, then ships what is left within ShutdownTimeout, and returns. A
// failed shipment is logged and counted and tried again at the next
// interval: the records are safe in the local log meanwhile. Stop the
// appends first and close the log after Run returns.
func (s *Shipper) Run(ctx context.Context) error {
	s.log.Info("audit shipper started", logInterval, s.cfg.Interval)
	t := time.NewTimer(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
			defer cancel()
			if err := s.Flush(fctx); err != nil {
				return fmt.Errorf("final audit shipment (the records stay in the local log and are shipped at the next start): %w", err)
			}
			return nil
		case <-t.C:
		case <-s.l.ready:
			if s.pending() < uint64(s.cfg.MaxBatchRecords) {
				continue // not a full batch yet; the timer still runs
			}
			t.Stop()
		}
		waiting := s.pending() > 0
		if waiting {
			s.progress.Pending(time.Now())
		}
		err := s.Flush(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			s.progress.Failed(err)
			s.log.Warn("audit shipment failed; the records stay in the local log and are shipped again", logkey.Err, err)
		case waiting:
			s.progress.Committed(time.Now())
		default:
			s.progress.Idle()
		}
		t.Reset(s.cfg.Interval)
	}
}

// Ready reports whether shipping keeps up: an error when records have
// waited in the local log for two intervals and half a minute (the
// catalog or storage refuses the commits; every answer still waits for
// its record to be durable locally, so queries go on).
func (s *Shipper) Ready() error { return s.progress.Check() }

// pending is how many durable records the table does not hold, as far as
// this shipper knows.
func (s *Shipper) pending() uint64 {
	durable := s.l.Durable()
	return durable - min(s.committed.Load(), durable)
}

// Flush commits every record that was durable when it was called.
func (s *Shipper) Flush(ctx context.Context) error {
	target := s.l.Durable()
	for {
		s.mu.Lock()
		done, err := s.shipLocked(ctx, target)
		s.mu.Unlock()
		if err != nil || done {
			return err
		}
	}
}

// load reads how far the table holds this log, creating the table if
// needed, and deletes the segments it holds. Called with mu held.
func (s *Shipper) load(ctx context.Context) error {
	// A table of that name made by someone else is refused before
	// EnsureTable would add the audit columns to it.
	tbl, err := s.deps.Catalog.LoadTable(ctx, s.cfg.Table)
	if err == nil {
		err = checkTable(tbl)
	} else if errors.Is(err, icecat.ErrNoSuchTable) {
		err = nil
	}
	if err != nil {
		return err
	}
	tbl, err = s.deps.Catalog.EnsureTable(ctx, lake.AuditLogTableDef(s.cfg.Table))
	if err != nil {
		return fmt.Errorf("open audit table %s: %w", s.cfg.Table, err)
	}
	if err := checkTable(tbl); err != nil {
		return err
	}
	stored, err := lake.StoredOffsets(tbl)
	if err != nil {
		return fmt.Errorf("read offsets of %s: %w", s.cfg.Table, err)
	}
	off, ok := stored.Get(s.topic, 0)
	if off < 0 || uint64(off) > s.l.Durable() {
		return fmt.Errorf("%w: table %s holds records of log %s up to %d, but the log in %s has only %d: its files were lost or replaced",
			ErrCorrupt, s.cfg.Table, s.l.Node(), off, s.l.Dir(), s.l.Durable())
	}
	s.tbl, s.next, s.stored, s.loaded = tbl, uint64(off), ok, true
	s.committed.Store(s.next)
	if err := s.l.release(s.next); err != nil {
		s.log.Warn("delete committed audit log segments", logkey.Err, err)
	}
	return nil
}

// checkTable refuses a table that is not an audit log (a raw table ingest
// made for a topic of that name), or is partitioned otherwise than by
// day(ts): the files written here carry that partition value.
func checkTable(tbl *table.Table) error {
	if kind := tbl.Properties()[lake.PropKind]; kind != lake.KindAuditLog {
		return fmt.Errorf("table %s is a %q table, not the audit log: name the audit table otherwise", tbl.Identifier(), kind)
	}
	spec := tbl.Spec()
	ts, ok := tbl.Schema().FindFieldByName(lake.ColAuditTs)
	if ok && spec.NumFields() == 1 {
		f := spec.Field(0)
		if _, day := f.Transform.(iceberg.DayTransform); day && len(f.SourceIDs) == 1 && f.SourceIDs[0] == ts.ID {
			return nil
		}
	}
	return fmt.Errorf("table %s is partitioned by %s; eventlake writes the audit log partitioned by day(%s)", tbl.Identifier(), spec, lake.ColAuditTs)
}

// shipLocked commits one batch of records, if any are below target, and
// reports whether the table then holds every record below target. Called
// with mu held.
func (s *Shipper) shipLocked(ctx context.Context, target uint64) (bool, error) {
	if !s.loaded {
		if err := s.load(ctx); err != nil {
			return false, err
		}
	}
	if s.next >= target {
		return true, nil
	}
	start := time.Now()
	entries, err := s.l.read(s.next, s.cfg.MaxBatchRecords, s.cfg.MaxBatchBytes)
	if err != nil {
		return false, err
	}
	if len(entries) == 0 {
		return true, nil
	}
	first, last := entries[0].seq, entries[len(entries)-1].seq
	if first != s.next {
		return false, fmt.Errorf("%w: read record %d, expected %d", ErrCorrupt, first, s.next)
	}
	files, err := s.writeFiles(ctx, entries)
	if err != nil {
		return false, err
	}
	offsets, fence := lake.Offsets{}, lake.Offsets{}
	offsets.Set(s.topic, 0, int64(last+1))
	if s.stored {
		fence.Set(s.topic, 0, int64(s.next))
	}
	tbl, err := s.deps.Committer.Commit(ctx, lake.Change{
		Table: s.cfg.Table, Task: TaskAudit, Base: s.tbl,
		Offsets: offsets, Fence: fence, Stage: lake.Append(files),
	})
	if err != nil {
		s.m.commitErrors.Inc()
		// Whatever happened, the table is asked again before the next
		// shipment.
		s.loaded = false
		if !errors.Is(err, lake.ErrCommitUnknown) {
			// Not referenced by the table: remove them. (With an unknown
			// outcome they may be; orphan cleanup removes them if not.)
			for _, f := range files {
				if rerr := lake.RemoveFile(context.WithoutCancel(ctx), s.tbl, f.FilePath()); rerr != nil {
					s.log.Warn("remove uncommitted audit data file", logkey.Path, f.FilePath(), logkey.Err, rerr)
				}
			}
		}
		if errors.Is(err, lake.ErrFenced) {
			// Another process shipped this log (two processes on one log
			// directory cannot happen while the flock holds): reload.
			s.log.Warn("audit records were committed by another writer; re-reading the table's offsets", logkey.Err, err)
		}
		return false, fmt.Errorf("commit audit records %d..%d to %s: %w", first, last, s.cfg.Table, err)
	}
	s.tbl, s.next, s.stored = tbl, last+1, true
	s.committed.Store(s.next)
	s.m.committed.Add(float64(len(entries)))
	s.m.commitDuration.Observe(time.Since(start).Seconds())
	s.m.lastCommit.SetToCurrentTime()
	var sid int64
	if cs := tbl.CurrentSnapshot(); cs != nil {
		sid = cs.SnapshotID
	}
	s.log.Debug("audit records committed", logFromSeq, first, logToSeq, last, logkey.Rows, len(entries),
		logkey.Files, len(files), logkey.SnapshotID, sid)
	if err := s.l.release(s.next); err != nil {
		// The records are committed; the segments go at the next release.
		s.log.Warn("delete committed audit log segments", logkey.Err, err)
	}
	return s.next >= target, nil
}

// fileOptions: ids and statements are nearly unique, the JSON columns are
// useless for pruning; sequence numbers increase.
var fileOptions = lake.FileOptions{
	NoDictionary: []string{lake.ColAuditID, lake.ColAuditStatement, lake.ColAuditRequestID, lake.ColAuditSnapshots},
	NoStats:      []string{lake.ColAuditStatement, lake.ColAuditObjects, lake.ColAuditSnapshots, lake.ColAuditError},
	DeltaColumns: []string{lake.ColAuditTs, lake.ColAuditLogSeq},
}

// writeFiles writes entries as one data file per day of their time.
func (s *Shipper) writeFiles(ctx context.Context, entries []entry) ([]iceberg.DataFile, error) {
	sc, err := table.SchemaToArrowSchema(s.tbl.Schema(), nil, true, false)
	if err != nil {
		return nil, fmt.Errorf("arrow schema of %s: %w", s.cfg.Table, err)
	}
	lp, err := s.tbl.LocationProvider()
	if err != nil {
		return nil, fmt.Errorf("location provider of %s: %w", s.cfg.Table, err)
	}
	byDay := map[int32][]entry{}
	for _, e := range entries {
		d := dayOf(e.rec.Time)
		byDay[d] = append(byDay[d], e)
	}
	var files []iceberg.DataFile
	abort := func(err error) ([]iceberg.DataFile, error) {
		for _, f := range files {
			if rerr := lake.RemoveFile(context.WithoutCancel(ctx), s.tbl, f.FilePath()); rerr != nil {
				s.log.Warn("remove uncommitted audit data file", logkey.Path, f.FilePath(), logkey.Err, rerr)
			}
		}
		return nil, err
	}
	spec := s.tbl.Spec()
	specField := spec.Field(0).FieldID
	for _, day := range slices.Sorted(maps.Keys(byDay)) {
		rec, err := s.batch(sc, byDay[day])
		if err != nil {
			return abort(err)
		}
		value := iceberg.Date(day)
		id, err := uuid.NewV7()
		if err != nil {
			rec.Release()
			return abort(err)
		}
		loc := lp.NewDataLocation("ts_day=" + iceberg.DayTransform{}.ToHumanStr(value) + "/" + id.String() + ".parquet")
		w, err := lake.CreateFile(ctx, s.tbl, loc, sc, map[int]any{specField: value}, fileOptions, memory.DefaultAllocator)
		if err != nil {
			rec.Release()
			return abort(err)
		}
		werr := w.Write(rec)
		rec.Release()
		if werr != nil {
			_ = w.Abort(context.WithoutCancel(ctx), s.tbl)
			return abort(werr)
		}
		df, err := w.Close(s.tbl)
		if err != nil {
			_ = lake.RemoveFile(context.WithoutCancel(ctx), s.tbl, loc)
			return abort(err)
		}
		files = append(files, df)
	}
	return files, nil
}

// dayOf is the day transform of t: days since 1970-01-01, UTC.
func dayOf(t time.Time) int32 {
	sec := t.Unix()
	d := sec / 86400
	if sec < 0 && sec%86400 != 0 {
		d--
	}
	return int32(d)
}

// batch builds the rows of entries in the table's Arrow schema. Columns
// this eventlake does not know (added to the table later) are null.
func (s *Shipper) batch(sc *arrow.Schema, entries []entry) (arrow.RecordBatch, error) {
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	node := s.l.Node()
	for _, e := range entries {
		r := &e.rec
		for i, f := range sc.Fields() {
			fb := b.Field(i)
			var v any // string, int64, time.Time or nil
			switch f.Name {
			case lake.ColAuditID:
				v = idOf(r, node, e.seq)
			case lake.ColAuditTs:
				v = r.Time
			case lake.ColAuditPrincipal:
				v = r.Principal
			case lake.ColAuditRole:
				v = r.Role
			case lake.ColAuditClient:
				v = r.Client
			case lake.ColAuditProtocol:
				v = r.Protocol
			case lake.ColAuditKind:
				v = r.Kind
			case lake.ColAuditStatement:
				v = r.Statement
			case lake.ColAuditObjects:
				if len(r.Objects) > 0 {
					j, err := json.Marshal(r.Objects)
					if err != nil {
						return nil, err
					}
					v = string(j)
				}
			case lake.ColAuditSnapshots:
				if len(r.SnapshotIDs) > 0 {
					j, err := json.Marshal(r.SnapshotIDs)
					if err != nil {
						return nil, err
					}
					v = string(j)
				}
			case lake.ColAuditRows:
				v = r.Rows
			case lake.ColAuditBytes:
				v = r.Bytes
			case lake.ColAuditDuration:
				v = r.Duration.Microseconds()
			case lake.ColAuditOutcome:
				v = r.Outcome
			case lake.ColAuditError:
				v = r.Error
			case lake.ColAuditRequestID:
				v = r.RequestID
			case lake.ColAuditLogNode:
				v = node
			case lake.ColAuditLogSeq:
				v = int64(e.seq)
			}
			if err := lake.AppendValue(fb, f, v); err != nil {
				return nil, fmt.Errorf("audit record %d, column %s: %w", e.seq, f.Name, err)
			}
		}
	}
	return b.NewRecordBatch(), nil
}
