package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/eventlake/eventlake/internal/eventtime"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

const (
	microsPerHour = int64(3600 * 1e6)
	microsPerDay  = 24 * microsPerHour
	// chunkRows is how many rows are built in Arrow before the chunk is
	// handed to the encoder: big enough to amortize per-batch overhead,
	// small enough to keep builders in cache and memory flat.
	chunkRows = 16 * 1024
	// initialRows is the room a new partition's builders start with.
	initialRows = 256
)

// encoder encodes Arrow chunks into Parquet on its own goroutine, so that
// decoding and Parquet encoding/compression use both cores. The queue is
// bounded: when encoding falls behind, the consumer loop waits.
type encoder struct {
	workers []chan encodeJob
	next    int
	// held is the sum of the files' held estimates (charge).
	held atomic.Int64
}

type encodeJob struct {
	pw      *partWriter
	rec     arrow.RecordBatch
	close   *table.Table // close pw's file (written for this table)
	barrier chan struct{}
}

// newEncoder returns an encoder with n workers, each with a queue of depth
// chunks. A file is always encoded by one worker (Parquet writers are not
// concurrent); different files, e.g. of different tables, run in parallel.
func newEncoder(n, depth int) *encoder {
	e := &encoder{}
	for range n {
		e.workers = append(e.workers, make(chan encodeJob, depth))
	}
	return e
}

// assign picks the worker for a new file.
func (e *encoder) assign() int {
	w := e.next
	e.next = (e.next + 1) % len(e.workers)
	return w
}

// run runs worker i until its queue is closed.
func (e *encoder) run(i int) {
	for j := range e.workers[i] {
		if j.rec != nil {
			if j.pw.failed() == nil {
				if err := j.pw.file.Write(j.rec); err != nil {
					j.pw.fail(err)
				} else {
					e.charge(j.pw, j.rec)
				}
			}
			j.rec.Release()
		}
		if j.close != nil {
			if j.pw.failed() == nil {
				if df, err := j.pw.file.Close(j.close); err != nil {
					j.pw.fail(err)
				} else {
					j.pw.df = df
				}
			}
			e.discharge(j.pw)
		}
		if j.barrier != nil {
			close(j.barrier)
		}
	}
}

// writerBytesPerColumn is what an open Parquet writer holds per column
// outside the batch's allocator before its rows: column writers,
// encoders, statistics, level encoders (261 KiB for orders_raw's 19
// columns with one row written).
const writerBytesPerColumn = 14 << 10

// charge updates the estimate of what p's Parquet writer holds outside
// the batch's allocator after it was given rec. arrow-go keeps the rows
// of the row group being written encoded until the group is full or the
// file is closed: the page being filled in pooled buffers of its own
// allocator, copies of it in Go byte slices and, for dictionary columns,
// every page of the group; the batch's allocator sees only the other
// columns' compressed pages. An orders_raw file held 6 MiB so for 4 MiB
// of Arrow data in its group (16Ki rows), 21 for 17 (64Ki), 58 for 71
// (256Ki). The estimate is writerBytesPerColumn per column plus 1.5
// times the Arrow size of the group's rows: the highest ratio measured,
// above what large groups hold. Called by p's worker.
func (e *encoder) charge(p *partWriter, rec arrow.RecordBatch) {
	n := rec.NumRows()
	size := recordBytes(rec) * 3 / 2
	held := p.held + size
	// A group began in rec: the file's first, or the last one was filled
	// (with rec's first rows, if it had room) and written out.
	if rows := p.file.RowGroupRows(); rows <= n {
		held = int64(rec.NumCols())*writerBytesPerColumn + size*rows/max(n, 1)
	}
	e.held.Add(held - p.held)
	p.held = held
}

// recordBytes is the size of rec's buffers.
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, c := range rec.Columns() {
		n += dataBytes(c.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	return n
}

// discharge drops p's estimate: its file is closed, or abandoned with
// the encoder drained.
func (e *encoder) discharge(p *partWriter) {
	e.held.Add(-p.held)
	p.held = 0
}

// drain waits until every job queued so far is done.
func (e *encoder) drain() {
	bs := make([]chan struct{}, len(e.workers))
	for i, w := range e.workers {
		bs[i] = make(chan struct{})
		w <- encodeJob{barrier: bs[i]}
	}
	for _, b := range bs {
		<-b
	}
}

func (e *encoder) close() {
	for _, w := range e.workers {
		close(w)
	}
}

// partWriter collects the rows of one table partition (an hour of event
// time, or a day for dead letters) into one Parquet file.
type partWriter struct {
	key     int32
	worker  int
	rb      *array.RecordBuilder
	pending int  // rows in rb not yet handed to the encoder
	emitted bool // a chunk of rb was handed to the encoder (this file's or its twin's)
	file    *lake.FileWriter
	// closing is set when the file takes no more rows and was handed to
	// the encoder to close (closeOpen): the encoder closes it, into df.
	closing bool
	df      iceberg.DataFile
	// held estimates what the file's Parquet writer holds outside the
	// batch's allocator (encoder.charge), until the file is closed.
	// Written by the file's worker, or by abort once it is drained.
	held int64
	// chunks counts the chunks emitted; twin, once the partition has
	// filled splitAfterChunks chunks in this batch, is a second file of
	// the partition on another worker that takes every other chunk (it
	// has no builder of its own and sits in the table writer's sealed
	// parts).
	chunks int
	twin   *partWriter

	mu  sync.Mutex
	err error
}

func (p *partWriter) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

func (p *partWriter) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// tableWriter accumulates one batch of one table: a raw table (rows
// built by the schema package's Appender) or the dead-letter table.
type tableWriter struct {
	name   string
	topic  string // raw tables: the topic
	dlq    bool
	cat    *lake.Catalog
	tbl    *table.Table // nil: the raw table does not exist yet
	schema *arrow.Schema
	app    *schema.Appender    // raw tables
	types  map[string]bool     // raw tables: event types the table holds columns for
	ready  *schema.TypeVersion // the last version prepare found nothing to do for
	opts   lake.FileOptions
	mem    memory.Allocator
	enc    *encoder
	parts  map[int32]*partWriter
	// sealed are the batch's parts that take no more rows of their own:
	// files handed to the encoder to close (closeOpen), and twins. They
	// are committed with the batch.
	sealed []*partWriter
	c      dlqIdx
	// eventTimes are the event times (unix micros) of the batch's rows,
	// observed as freshness when the batch commits (raw tables; the
	// slice is reused from batch to batch).
	eventTimes []int64
	// sources count the batch's rows per envelope source (raw tables),
	// committed with them (lake.AppendCountingSources).
	sources sourceCounter
}

// sourceCounter counts a batch's events per envelope source without
// allocating per event: an entry is a pointer, so that counting an
// event is one map lookup, and the map is kept from batch to batch (a
// source of the last batch keeps its entry). It counts at most
// lake.MaxSources sources per batch, the events of further ones
// together, so it holds at most twice that many entries.
type sourceCounter struct {
	n     map[string]*int64
	live  int   // entries counted in this batch
	other int64 // events of sources beyond lake.MaxSources in this batch
}

// add counts one event of source src.
func (c *sourceCounter) add(src []byte) {
	if p := c.n[string(src)]; p != nil { // no allocation: a lookup
		if *p == 0 {
			if c.live >= lake.MaxSources {
				c.other++
				return
			}
			c.live++
		}
		*p++
		return
	}
	if c.live >= lake.MaxSources {
		c.other++
		return
	}
	if c.n == nil {
		c.n = map[string]*int64{}
	}
	n := int64(1)
	c.n[string(src)] = &n
	c.live++
}

// counts are the batch's counts.
func (c *sourceCounter) counts() lake.SourceCounts {
	out := lake.SourceCounts{Other: c.other}
	if c.live > 0 {
		out.Events = make(map[string]int64, c.live)
		for src, p := range c.n {
			if *p > 0 {
				out.Events[src] = *p
			}
		}
	}
	return out
}

// reset starts a new batch: sources the last batch did not count are
// forgotten, the others are kept at zero.
func (c *sourceCounter) reset() {
	for src, p := range c.n {
		if *p == 0 {
			delete(c.n, src)
		} else {
			*p = 0
		}
	}
	c.live, c.other = 0, 0
}

// dlqIdx caches field indexes of the dead-letter table's columns (-1:
// absent).
type dlqIdx struct {
	topic, partition, offset, kafkaTs, ingested int
	raw, reason, detail, key, size              int
	subject, version, field                     int
}

// newRawWriter returns the writer of a raw table; tbl may be nil when the
// table does not exist yet (it is created on the first event).
func newRawWriter(name, topic string, cat *lake.Catalog, tbl *table.Table, opts lake.FileOptions, mem memory.Allocator, enc *encoder) (*tableWriter, error) {
	w := &tableWriter{name: name, topic: topic, cat: cat, opts: opts, mem: mem, enc: enc, parts: map[int32]*partWriter{}}
	if tbl != nil {
		if err := w.useTable(tbl); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// newDLQWriter returns the writer of the dead-letter table.
func newDLQWriter(name string, cat *lake.Catalog, tbl *table.Table, opts lake.FileOptions, mem memory.Allocator, enc *encoder) (*tableWriter, error) {
	w := &tableWriter{name: name, dlq: true, cat: cat, opts: opts, mem: mem, enc: enc, parts: map[int32]*partWriter{}}
	return w, w.useTable(tbl)
}

// useTable makes tbl (a newer handle, possibly with a wider schema) the
// table new parts are written to.
func (w *tableWriter) useTable(tbl *table.Table) error {
	w.ready = nil
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		return fmt.Errorf("arrow schema of %s: %w", w.name, err)
	}
	if w.dlq {
		idx := make(map[string]int, sc.NumFields())
		for i, f := range sc.Fields() {
			idx[f.Name] = i
		}
		g := func(n string) int {
			if i, ok := idx[n]; ok {
				return i
			}
			return -1
		}
		c := dlqIdx{
			topic: g(lake.ColKafkaTopic), partition: g(lake.ColKafkaPartition), offset: g(lake.ColKafkaOffset),
			kafkaTs: g(lake.ColKafkaTimestamp), ingested: g(lake.ColIngestedAt),
			raw: g(lake.ColRaw), reason: g(lake.ColReason), detail: g(lake.ColDetail), key: g(lake.ColKey), size: g(lake.ColSize),
			subject: g(lake.ColSubject), version: g(lake.ColVersion), field: g(lake.ColField),
		}
		for name, i := range map[string]int{lake.ColKafkaTopic: c.topic, lake.ColKafkaPartition: c.partition, lake.ColKafkaOffset: c.offset,
			lake.ColKafkaTimestamp: c.kafkaTs, lake.ColIngestedAt: c.ingested, lake.ColRaw: c.raw, lake.ColReason: c.reason,
			lake.ColDetail: c.detail, lake.ColKey: c.key, lake.ColSize: c.size} {
			if i < 0 {
				return fmt.Errorf("table %s: required column %s is missing", w.name, name)
			}
		}
		w.c = c
	} else {
		app, err := schema.NewAppender(sc)
		if err != nil {
			return fmt.Errorf("table %s: %w", w.name, err)
		}
		w.app = app
		w.types = map[string]bool{}
		for _, t := range lake.TypesOf(tbl.Properties()) {
			w.types[t] = true
		}
	}
	w.tbl, w.schema = tbl, sc
	w.opts.BloomFilters = lake.BloomFilterColumns(tbl.Schema(), tbl.Properties())
	return nil
}

// setTable swaps in a refreshed table handle between batches.
func (w *tableWriter) setTable(tbl *table.Table) error {
	if len(w.parts) > 0 || len(w.sealed) > 0 {
		return errors.New("setTable during a batch")
	}
	return w.useTable(tbl)
}

// errConflict is an event whose typed columns the table types differently.
type errConflict struct{ err error }

func (e *errConflict) Error() string { return e.err.Error() }

// prepare makes the table ready for an event of version v (nil: a type
// with no schema): the table exists and has every column of the
// subject's versions (from codecs: a new version's columns are added
// with those of the versions before it), and lists the type; subject
// columns are recorded for erasure.
func (w *tableWriter) prepare(ctx context.Context, v *schema.TypeVersion, codecs schema.Codecs) error {
	if v != nil && v == w.ready {
		return nil // the version of the last event, nothing changed since
	}
	if w.tbl != nil && (v == nil || w.types[v.Subject]) {
		if v == nil {
			return nil
		}
		missing, conflict := w.app.Bind(v)
		if conflict != nil {
			return &errConflict{conflict}
		}
		if len(missing) == 0 {
			w.ready = v
			return nil
		}
	}
	var cols []schema.Column
	if v != nil {
		cols = v.Columns
		if sub := codecs.Set().Subject(v.Subject); sub != nil {
			cols = sub.Columns
		}
	}
	var fields []iceberg.NestedField
	props := iceberg.Properties{}
	if v != nil {
		for _, c := range cols {
			fields = append(fields, c.NestedField())
			if c.Subject {
				props[lake.PropSubjectPrefix+c.Name] = c.Property
			}
		}
		props[lake.PropTypePrefix+v.Subject] = "1"
	}
	var (
		tbl *table.Table
		err error
	)
	if w.tbl == nil {
		tbl, err = w.cat.EnsureTable(ctx, lake.RawTableDef(w.name, w.topic, fields, props))
		if err == nil {
			err = lake.CheckTopic(tbl, w.topic) // another topic's table by the same name
		}
		if err == nil {
			// Created by another process first: make sure it has our columns.
			tbl, err = w.cat.Evolve(ctx, tbl, fields, props)
		}
	} else {
		tbl, err = w.cat.Evolve(ctx, w.tbl, fields, props)
	}
	if err != nil {
		var conflict bool
		for _, c := range cols {
			if f, ok := w.tableField(c.Name); ok && !f.Type.Equals(c.Type) {
				conflict = true
			}
		}
		if conflict {
			return &errConflict{err}
		}
		return fmt.Errorf("evolve table %s for %s: %w", w.name, v, err)
	}
	// The open files hold the old schema: they are closed (and committed
	// with the batch), and new rows go to new files.
	w.closeOpen()
	if err := w.useTable(tbl); err != nil {
		return err
	}
	if v != nil {
		if _, conflict := w.app.Bind(v); conflict != nil {
			return &errConflict{conflict}
		}
		w.ready = v
	}
	return nil
}

func (w *tableWriter) tableField(name string) (iceberg.NestedField, bool) {
	if w.tbl == nil {
		return iceberg.NestedField{}, false
	}
	return w.tbl.Schema().FindFieldByName(name)
}

func (w *tableWriter) part(ctx context.Context, key int32) (*partWriter, error) {
	if p := w.parts[key]; p != nil {
		if p.twin == nil && p.chunks >= splitAfterChunks && len(w.enc.workers) > 1 {
			twin, err := w.newPart(ctx, key, (p.worker+1)%len(w.enc.workers))
			if err != nil {
				return nil, err
			}
			p.twin = twin
			w.sealed = append(w.sealed, twin)
		}
		return p, nil
	}
	p, err := w.newPart(ctx, key, w.enc.assign())
	if err != nil {
		return nil, err
	}
	p.rb = array.NewRecordBuilder(w.mem, w.schema)
	// Builders grow from a few rows: a batch spread over many partitions
	// (a replay of history) holds a few rows in each, not a chunk's room.
	p.rb.Reserve(initialRows)
	w.parts[key] = p
	return p, nil
}

// splitAfterChunks is when a partition's rows start going to two files:
// one worker encodes a file, and a batch of one busy hour (a backlog,
// or a high rate) would otherwise leave the other worker idle while
// the consume loop waits for this one. Smaller batches keep one file
// per partition.
const splitAfterChunks = 4

// newPart opens a new file of partition key, encoded by worker.
func (w *tableWriter) newPart(ctx context.Context, key int32, worker int) (*partWriter, error) {
	var (
		dir   string
		value any
	)
	if w.dlq {
		value = iceberg.Date(key)
		dir = "ingested_day=" + iceberg.DayTransform{}.ToHumanStr(value)
	} else {
		value = key
		dir = "ts_hour=" + iceberg.HourTransform{}.ToHumanStr(value)
	}
	lp, err := w.tbl.LocationProvider()
	if err != nil {
		return nil, fmt.Errorf("location provider of %s: %w", w.name, err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	loc := lp.NewDataLocation(dir + "/" + id.String() + ".parquet")
	spec := w.tbl.Spec()
	specField := spec.Field(0).FieldID
	f, err := lake.CreateFile(ctx, w.tbl, loc, w.schema, map[int]any{specField: value}, w.opts, w.mem)
	if err != nil {
		return nil, err
	}
	return &partWriter{key: key, worker: worker, file: f}, nil
}

// rowAdded hands a full chunk to the encoder.
func (w *tableWriter) rowAdded(p *partWriter) {
	p.pending++
	if p.pending >= chunkRows {
		w.emit(p)
	}
}

func (w *tableWriter) emit(p *partWriter) {
	if p.pending == 0 {
		return
	}
	// Remember how much string data the chunk held, to pre-size the next
	// one: growing builders by doubling copies every value several times.
	var dataLen [32]int
	for i, f := range p.rb.Fields() {
		if bb, ok := f.(interface{ DataLen() int }); ok && i < len(dataLen) {
			dataLen[i] = bb.DataLen()
		}
	}
	if !p.emitted && p.pending < chunkRows {
		// The batch ends with its first chunk (a chunk is emitted early
		// only when the batch is flushed or sealed): the file holds
		// exactly these rows, and its bloom filters are sized for them.
		// The encoder reads it after the send below.
		p.file.ExpectRows(int64(p.pending))
	}
	p.emitted = true
	full := p.pending >= chunkRows
	rec := p.rb.NewRecordBatch()
	p.pending = 0
	to := p
	if p.twin != nil && p.chunks%2 == 1 {
		to = p.twin
	}
	p.chunks++
	if full {
		// A partition that fills chunks gets the room of the next one at
		// once; one emitted at a flush or to free memory gets none.
		p.rb.Reserve(chunkRows)
		for i, f := range p.rb.Fields() {
			if bb, ok := f.(interface{ ReserveData(int) }); ok && i < len(dataLen) && dataLen[i] > 0 {
				bb.ReserveData(dataLen[i] + dataLen[i]/8)
			}
		}
	}
	w.enc.workers[to.worker] <- encodeJob{pw: to, rec: rec}
}

// finishFiles describes the batch's files as data files. The caller has
// handed every file to the encoder to close (closeOpen) and drained it.
func (w *tableWriter) finishFiles() ([]iceberg.DataFile, error) {
	parts := w.allParts()
	files := make([]iceberg.DataFile, 0, len(parts))
	for _, p := range parts {
		if err := p.failed(); err != nil {
			return nil, err
		}
		if !p.closing {
			return nil, fmt.Errorf("table %s: a file of partition %d was not closed before the commit", w.name, p.key)
		}
		files = append(files, p.df)
	}
	return files, nil
}

// allParts are the batch's open and sealed parts.
func (w *tableWriter) allParts() []*partWriter {
	all := slices.Clone(w.sealed)
	for _, p := range w.parts {
		all = append(all, p)
	}
	return all
}

// closeOpen hands the open files' last rows to the encoder, releases
// their builders and has the encoder close the files; they are committed
// with the batch, and new rows of their partitions go to new files. It
// returns the number of files closed.
//
// A flush closes its files this way too: a worker writes a file's last
// rows and closes it before it takes the next file's, so that only the
// files the workers are at hold a Parquet writer. An open writer holds
// its column writers, encoders and encoded rows outside the memory
// budget (261 KiB with one row of a raw table's 19 columns); a flush
// that wrote the last rows of every file before closing any held one
// per partition of the batch (TestIngestMemoryBudget: 720 of them,
// 597 MiB of RSS under its 512 MiB limit, 0 files closed early).
func (w *tableWriter) closeOpen() int {
	n := 0
	for _, p := range w.parts {
		w.emit(p)
		p.rb.Release()
		p.closing = true
		w.enc.workers[p.worker] <- encodeJob{pw: p, close: w.tbl}
		w.sealed = append(w.sealed, p)
		n++
		if t := p.twin; t != nil { // already among the sealed parts
			t.closing = true
			w.enc.workers[t.worker] <- encodeJob{pw: t, close: w.tbl}
			n++
		}
	}
	w.parts = map[int32]*partWriter{}
	return n
}

// pending reports whether the batch holds rows for this table.
func (w *tableWriter) pending() bool { return len(w.parts) > 0 || len(w.sealed) > 0 }

// reset forgets the batch (after a commit, or after abort removed files).
func (w *tableWriter) reset() {
	w.parts = map[int32]*partWriter{}
	w.sealed = nil
	w.eventTimes = w.eventTimes[:0]
	w.sources.reset()
}

// abort removes the batch's files; none of them was committed.
func (w *tableWriter) abort(ctx context.Context) error {
	var errs []error
	for _, p := range w.allParts() {
		if !p.closing && p.rb != nil { // an open part (a twin has no builder)
			p.rb.Release()
		}
		w.enc.discharge(p)
		if err := p.file.Abort(ctx, w.tbl); err != nil {
			errs = append(errs, err)
		}
	}
	w.reset()
	return errors.Join(errs...)
}

// addEvent appends one accepted event; the caller has prepared the table
// for its version.
func (w *tableWriter) addEvent(ctx context.Context, ev *schema.Event, k *schema.Coords) error {
	p, err := w.part(ctx, int32(eventtime.FloorDiv(ev.TsMicros, microsPerHour)))
	if err != nil {
		return err
	}
	w.app.Append(p.rb, ev, *k)
	w.eventTimes = append(w.eventTimes, ev.TsMicros)
	w.sources.add(ev.Source)
	w.rowAdded(p)
	return nil
}

// dlqRow is one rejected message.
type dlqRow struct {
	raw       []byte
	isNull    bool
	reason    schema.Reason
	detail    string
	subject   string
	version   int
	pointer   string
	topic     string
	partition int32
	offset    int64
	kafkaTs   int64
	key       []byte
	ingested  int64
}

func (w *tableWriter) addDLQ(ctx context.Context, r *dlqRow) error {
	p, err := w.part(ctx, int32(eventtime.FloorDiv(r.ingested, microsPerDay)))
	if err != nil {
		return err
	}
	b, c := p.rb, &w.c
	raw := b.Field(c.raw).(*array.BinaryBuilder)
	if r.isNull {
		raw.AppendNull()
	} else {
		raw.Append(r.raw)
	}
	b.Field(c.reason).(*array.StringBuilder).Append(string(r.reason))
	b.Field(c.detail).(*array.StringBuilder).Append(r.detail)
	b.Field(c.topic).(*array.StringBuilder).Append(r.topic)
	b.Field(c.partition).(*array.Int32Builder).Append(r.partition)
	b.Field(c.offset).(*array.Int64Builder).Append(r.offset)
	appendTs(b, c.kafkaTs, r.kafkaTs)
	kb := b.Field(c.key).(*array.BinaryBuilder)
	if r.key == nil {
		kb.AppendNull()
	} else {
		kb.Append(r.key)
	}
	b.Field(c.size).(*array.Int64Builder).Append(int64(len(r.raw)))
	appendTs(b, c.ingested, r.ingested)
	appendOptString(b, c.subject, r.subject)
	if c.version >= 0 {
		if r.version > 0 {
			b.Field(c.version).(*array.Int32Builder).Append(int32(r.version))
		} else {
			b.Field(c.version).AppendNull()
		}
	}
	appendOptString(b, c.field, r.pointer)
	fillMissing(b)
	w.rowAdded(p)
	return nil
}

// fillMissing appends nulls to columns no code path above knows (a column
// added to the dead-letter table by someone else), keeping columns
// aligned.
func fillMissing(b *array.RecordBuilder) {
	n := b.Field(0).Len()
	for i := 1; i < len(b.Fields()); i++ {
		if f := b.Field(i); f.Len() < n {
			f.AppendNull()
		}
	}
}

func appendOptString(b *array.RecordBuilder, i int, v string) {
	if i < 0 {
		return
	}
	if v == "" {
		b.Field(i).AppendNull()
		return
	}
	b.Field(i).(*array.StringBuilder).Append(v)
}

func appendTs(b *array.RecordBuilder, i int, micros int64) {
	b.Field(i).(*array.TimestampBuilder).Append(arrow.Timestamp(micros))
}
