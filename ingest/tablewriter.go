package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/eventlake/eventlake/internal/envelope"
	"github.com/eventlake/eventlake/internal/eventtime"
	"github.com/eventlake/eventlake/lake"
)

const (
	microsPerHour = int64(3600 * 1e6)
	microsPerDay  = 24 * microsPerHour
	// chunkRows is how many rows are built in Arrow before the chunk is
	// handed to the encoder: big enough to amortize per-batch overhead,
	// small enough to keep builders in cache and memory flat.
	chunkRows = 16 * 1024
)

// encoder encodes Arrow chunks into Parquet on its own goroutine, so that
// decoding and Parquet encoding/compression use both cores. The queue is
// bounded: when encoding falls behind, the consumer loop waits.
type encoder struct {
	workers []chan encodeJob
	next    int
}

type encodeJob struct {
	pw      *partWriter
	rec     arrow.RecordBatch
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
				}
			}
			j.rec.Release()
		}
		if j.barrier != nil {
			close(j.barrier)
		}
	}
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
	pending int // rows in rb not yet handed to the encoder
	file    *lake.FileWriter

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

// tableWriter accumulates one batch of one table.
type tableWriter struct {
	name   string
	dlq    bool
	tbl    *table.Table
	schema *arrow.Schema
	opts   lake.FileOptions
	mem    memory.Allocator
	enc    *encoder
	parts  map[int32]*partWriter
	c      colIdx
}

// colIdx caches field indexes of the columns written per row (-1: absent).
type colIdx struct {
	eventID, source, typ, ts, payload, metadata, traceID, spanID int
	topic, partition, offset, kafkaTs, ingested                  int
	orderID, userID, productID, quantity, amount                 int
	warehouse, stock, delta                                      int
	raw, reason, detail, key, size                               int
}

func resolve(idx map[string]int) colIdx {
	g := func(n string) int {
		if i, ok := idx[n]; ok {
			return i
		}
		return -1
	}
	return colIdx{
		eventID: g(lake.ColEventID), source: g(lake.ColSource), typ: g(lake.ColType), ts: g(lake.ColTs),
		payload: g(lake.ColPayload), metadata: g(lake.ColMetadata), traceID: g(lake.ColTraceID), spanID: g(lake.ColSpanID),
		topic: g(lake.ColKafkaTopic), partition: g(lake.ColKafkaPartition), offset: g(lake.ColKafkaOffset),
		kafkaTs: g(lake.ColKafkaTimestamp), ingested: g(lake.ColIngestedAt),
		orderID: g(lake.ColOrderID), userID: g(lake.ColUserID), productID: g(lake.ColProductID),
		quantity: g(lake.ColQuantity), amount: g(lake.ColAmount),
		warehouse: g(lake.ColWarehouse), stock: g(lake.ColStock), delta: g(lake.ColDelta),
		raw: g(lake.ColRaw), reason: g(lake.ColReason), detail: g(lake.ColDetail), key: g(lake.ColKey), size: g(lake.ColSize),
	}
}

func newTableWriter(name string, dlq bool, tbl *table.Table, opts lake.FileOptions, mem memory.Allocator, enc *encoder) (*tableWriter, error) {
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		return nil, fmt.Errorf("arrow schema of %s: %w", name, err)
	}
	idx := make(map[string]int, sc.NumFields())
	for i, f := range sc.Fields() {
		idx[f.Name] = i
	}
	w := &tableWriter{name: name, dlq: dlq, tbl: tbl, schema: sc, opts: opts, mem: mem, enc: enc,
		parts: map[int32]*partWriter{}, c: resolve(idx)}
	if err := w.check(); err != nil {
		return nil, err
	}
	return w, nil
}

// setTable swaps in a refreshed table handle for the next batch; the Arrow
// schema follows the table's current schema.
func (w *tableWriter) setTable(tbl *table.Table) error {
	if len(w.parts) > 0 {
		return errors.New("setTable during a batch")
	}
	nw, err := newTableWriter(w.name, w.dlq, tbl, w.opts, w.mem, w.enc)
	if err != nil {
		return err
	}
	w.tbl, w.schema, w.c = nw.tbl, nw.schema, nw.c
	return nil
}

// check verifies that the table has the columns this writer always fills.
func (w *tableWriter) check() error {
	c := w.c
	need := map[string]int{lake.ColKafkaTopic: c.topic, lake.ColKafkaPartition: c.partition,
		lake.ColKafkaOffset: c.offset, lake.ColKafkaTimestamp: c.kafkaTs, lake.ColIngestedAt: c.ingested}
	if w.dlq {
		need[lake.ColRaw], need[lake.ColReason], need[lake.ColDetail] = c.raw, c.reason, c.detail
		need[lake.ColKey], need[lake.ColSize] = c.key, c.size
	} else {
		need[lake.ColEventID], need[lake.ColSource], need[lake.ColType] = c.eventID, c.source, c.typ
		need[lake.ColTs], need[lake.ColPayload] = c.ts, c.payload
		if c.orderID >= 0 && (c.userID < 0 || c.productID < 0 || c.quantity < 0 || c.amount < 0) {
			return fmt.Errorf("table %s: has %s but not all of user_id, product_id, quantity, amount", w.name, lake.ColOrderID)
		}
		if c.stock >= 0 && (c.productID < 0 || c.delta < 0) {
			return fmt.Errorf("table %s: has %s but not product_id and delta", w.name, lake.ColStock)
		}
	}
	for name, i := range need {
		if i < 0 {
			return fmt.Errorf("table %s: required column %s is missing", w.name, name)
		}
	}
	return nil
}

func (w *tableWriter) part(ctx context.Context, key int32) (*partWriter, error) {
	if p := w.parts[key]; p != nil {
		return p, nil
	}
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
	p := &partWriter{key: key, worker: w.enc.assign(), rb: array.NewRecordBuilder(w.mem, w.schema), file: f}
	p.rb.Reserve(chunkRows)
	w.parts[key] = p
	return p, nil
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
	rec := p.rb.NewRecordBatch()
	p.pending = 0
	p.rb.Reserve(chunkRows)
	for i, f := range p.rb.Fields() {
		if bb, ok := f.(interface{ ReserveData(int) }); ok && i < len(dataLen) && dataLen[i] > 0 {
			bb.ReserveData(dataLen[i] + dataLen[i]/8)
		}
	}
	w.enc.workers[p.worker] <- encodeJob{pw: p, rec: rec}
}

// finish closes every file of the batch and describes them as data files.
// The encoder must be drained by the caller after emit and before finish.
func (w *tableWriter) finishFiles() ([]iceberg.DataFile, error) {
	var files []iceberg.DataFile
	for _, p := range w.parts {
		if err := p.failed(); err != nil {
			return nil, err
		}
		p.rb.Release()
		df, err := p.file.Close(w.tbl)
		if err != nil {
			return nil, err
		}
		files = append(files, df)
	}
	return files, nil
}

func (w *tableWriter) emitAll() {
	for _, p := range w.parts {
		w.emit(p)
	}
}

// reset forgets the batch (after a commit, or after abort removed files).
func (w *tableWriter) reset() {
	w.parts = map[int32]*partWriter{}
}

// abort removes the batch's files; none of them was committed.
func (w *tableWriter) abort(ctx context.Context) error {
	var errs []error
	for _, p := range w.parts {
		if !p.file.Closed() {
			p.rb.Release()
		}
		if err := p.file.Abort(ctx, w.tbl); err != nil {
			errs = append(errs, err)
		}
	}
	w.reset()
	return errors.Join(errs...)
}

// rawRow is one accepted event with its Kafka coordinates.
type rawRow struct {
	ev        *envelope.Event
	topic     string
	partition int32
	offset    int64
	kafkaTs   int64 // micros
	ingested  int64 // micros
}

func (w *tableWriter) addEvent(ctx context.Context, r *rawRow) error {
	ev := r.ev
	key := int32(eventtime.FloorDiv(ev.TsMicros, microsPerHour))
	p, err := w.part(ctx, key)
	if err != nil {
		return err
	}
	b, c := p.rb, &w.c
	appendBytes(b, c.eventID, ev.EventID)
	appendBytes(b, c.source, ev.Source)
	appendBytes(b, c.typ, ev.Type)
	appendTs(b, c.ts, ev.TsMicros)
	appendBytes(b, c.payload, ev.Payload)
	appendOptBytes(b, c.metadata, ev.Metadata)
	appendOptBytes(b, c.traceID, ev.TraceID)
	appendOptBytes(b, c.spanID, ev.SpanID)
	b.Field(c.topic).(*array.StringBuilder).Append(r.topic)
	b.Field(c.partition).(*array.Int32Builder).Append(r.partition)
	b.Field(c.offset).(*array.Int64Builder).Append(r.offset)
	appendTs(b, c.kafkaTs, r.kafkaTs)
	appendTs(b, c.ingested, r.ingested)

	// Typed payload columns exist per table kind; a column is filled only
	// when the event's type carries it and is null otherwise.
	if c.orderID >= 0 {
		if ev.IsOrder {
			appendBytes(b, c.orderID, ev.Order.OrderID)
			appendBytes(b, c.userID, ev.Order.UserID)
			appendBytes(b, c.productID, ev.Order.ProductID)
			b.Field(c.quantity).(*array.Int64Builder).Append(ev.Order.Quantity)
			b.Field(c.amount).(*array.Decimal128Builder).Append(decimal128.FromI64(ev.Order.AmountCents))
		} else {
			for _, i := range []int{c.orderID, c.userID, c.productID, c.quantity, c.amount} {
				b.Field(i).AppendNull()
			}
		}
	}
	if c.stock >= 0 {
		if ev.IsInventory {
			appendBytes(b, c.productID, ev.Inventory.ProductID)
			appendOptBytes(b, c.warehouse, ev.Inventory.Warehouse)
			b.Field(c.stock).(*array.Int64Builder).Append(ev.Inventory.Stock)
			if ev.Inventory.HasDelta {
				b.Field(c.delta).(*array.Int64Builder).Append(ev.Inventory.Delta)
			} else {
				b.Field(c.delta).AppendNull()
			}
		} else {
			for _, i := range []int{c.productID, c.warehouse, c.stock, c.delta} {
				if i >= 0 {
					b.Field(i).AppendNull()
				}
			}
		}
	}
	w.fillMissing(b)
	w.rowAdded(p)
	return nil
}

// fillMissing appends nulls to columns that no code path above knows (a
// column added to the table by someone else), keeping columns aligned.
func (w *tableWriter) fillMissing(b *array.RecordBuilder) {
	n := b.Field(0).Len()
	for i := 1; i < len(b.Fields()); i++ {
		if f := b.Field(i); f.Len() < n {
			f.AppendNull()
		}
	}
}

// dlqRow is one rejected message.
type dlqRow struct {
	raw       []byte
	isNull    bool
	reason    envelope.Reason
	detail    string
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
	w.fillMissing(b)
	w.rowAdded(p)
	return nil
}

func appendBytes(b *array.RecordBuilder, i int, v []byte) {
	b.Field(i).(*array.StringBuilder).BinaryBuilder.Append(v)
}

func appendOptBytes(b *array.RecordBuilder, i int, v []byte) {
	if i < 0 {
		return
	}
	if v == nil {
		b.Field(i).AppendNull()
		return
	}
	appendBytes(b, i, v)
}

func appendTs(b *array.RecordBuilder, i int, micros int64) {
	b.Field(i).(*array.TimestampBuilder).Append(arrow.Timestamp(micros))
}
