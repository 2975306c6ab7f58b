package schema

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/lake"
)

// Coords are where an event was read and when.
type Coords struct {
	Topic     string
	Partition int32
	Offset    int64
	KafkaTs   int64 // micros
	Ingested  int64 // micros (ingested_at: when it was read)
	// ReplayID names the DLQ replay that commits the event; empty for
	// events read from Kafka.
	ReplayID string
}

// Appender appends decoded events, with their coordinates, to Arrow
// record builders of one raw-table schema: the envelope's columns, the
// Kafka coordinates and the typed payload columns of the event's schema
// version. It is the one place an event becomes a row: ingest writes the
// lake with it and the hot tier builds its fresh rows with it. Not safe
// for concurrent use.
type Appender struct {
	sc *arrow.Schema
	// Builder indexes of the envelope and Kafka columns (-1: absent, for
	// the optional ones).
	eventID, source, typ, ts, payload, metadata, traceID, spanID int
	topic, partition, offset, kafkaTs, ingested, replayID        int
	typed                                                        []int // every other column
	byName                                                       map[string]int
	binds                                                        map[*TypeVersion]*binding
	none                                                         *binding
}

// binding maps one version's columns onto the schema.
type binding struct {
	cols     []int // builder index per version column
	nulls    []int // typed builder columns the version does not fill
	missing  []Column
	conflict error
}

// NewAppender returns an appender for sc, which must have the envelope's
// columns (lake.RawTableDef).
func NewAppender(sc *arrow.Schema) (*Appender, error) {
	a := &Appender{sc: sc, byName: map[string]int{}, binds: map[*TypeVersion]*binding{}}
	for i, f := range sc.Fields() {
		a.byName[f.Name] = i
	}
	idx := func(name string, required bool) (int, error) {
		i, ok := a.byName[name]
		if !ok {
			if required {
				return -1, fmt.Errorf("raw table schema lacks column %s", name)
			}
			return -1, nil
		}
		return i, nil
	}
	var err error
	for _, c := range []struct {
		name     string
		dst      *int
		required bool
	}{
		{lake.ColEventID, &a.eventID, true}, {lake.ColSource, &a.source, true}, {lake.ColType, &a.typ, true},
		{lake.ColTs, &a.ts, true}, {lake.ColPayload, &a.payload, true}, {lake.ColMetadata, &a.metadata, false},
		{lake.ColTraceID, &a.traceID, false}, {lake.ColSpanID, &a.spanID, false},
		{lake.ColKafkaTopic, &a.topic, true}, {lake.ColKafkaPartition, &a.partition, true},
		{lake.ColKafkaOffset, &a.offset, true}, {lake.ColKafkaTimestamp, &a.kafkaTs, true},
		{lake.ColIngestedAt, &a.ingested, true}, {lake.ColReplayID, &a.replayID, false},
	} {
		if *c.dst, err = idx(c.name, c.required); err != nil {
			return nil, err
		}
	}
	for i, f := range sc.Fields() {
		if !lake.IsEnvelopeColumn(f.Name) {
			a.typed = append(a.typed, i)
		}
	}
	a.none = &binding{nulls: a.typed}
	return a, nil
}

// Schema is the schema the appender writes.
func (a *Appender) Schema() *arrow.Schema { return a.sc }

// Bind reports the columns of v the schema lacks (to add to the table
// before its events can be appended), or a conflict: a column the table
// types differently (reason schema_conflict).
func (a *Appender) Bind(v *TypeVersion) (missing []Column, conflict error) {
	b := a.bind(v)
	return b.missing, b.conflict
}

func (a *Appender) bind(v *TypeVersion) *binding {
	if v == nil {
		return a.none
	}
	if b := a.binds[v]; b != nil {
		return b
	}
	b := &binding{cols: make([]int, len(v.Columns))}
	filled := map[int]bool{}
	for i, c := range v.Columns {
		j, ok := a.byName[c.Name]
		if !ok {
			b.cols[i] = -1
			b.missing = append(b.missing, c)
			continue
		}
		if !fits(c, a.sc.Field(j).Type) {
			b.conflict = fmt.Errorf("column %s of the table is %s, but %s types it %s", c.Name, a.sc.Field(j).Type, v, c.Type)
		}
		b.cols[i] = j
		filled[j] = true
	}
	for _, j := range a.typed {
		if !filled[j] {
			b.nulls = append(b.nulls, j)
		}
	}
	a.binds[v] = b
	return b
}

// fits reports whether values of column c can be appended to a builder of
// type t.
func fits(c Column, t arrow.DataType) bool {
	switch c.kind {
	case colString, colJSON:
		return t.ID() == arrow.STRING
	case colLong:
		return t.ID() == arrow.INT64
	case colDouble:
		return t.ID() == arrow.FLOAT64
	case colBool:
		return t.ID() == arrow.BOOL
	case colTimestamp:
		ts, ok := t.(*arrow.TimestampType)
		return ok && ts.Unit == arrow.Microsecond
	case colDecimal:
		dt, ok := t.(*arrow.Decimal128Type)
		want := c.Type.(iceberg.DecimalType)
		return ok && int(dt.Scale) == want.Scale() && int(dt.Precision) >= want.Precision()
	}
	return false
}

// Append appends one event. The caller has checked Bind: every column of
// ev's version is in the schema, none conflicts.
func (a *Appender) Append(b *array.RecordBuilder, ev *Event, k Coords) {
	appendBytes(b, a.eventID, ev.EventID)
	appendBytes(b, a.source, ev.Source)
	appendBytes(b, a.typ, ev.Type)
	appendTs(b, a.ts, ev.TsMicros)
	appendBytes(b, a.payload, ev.Payload)
	appendOpt(b, a.metadata, ev.Metadata)
	appendOpt(b, a.traceID, ev.TraceID)
	appendOpt(b, a.spanID, ev.SpanID)
	b.Field(a.topic).(*array.StringBuilder).Append(k.Topic)
	b.Field(a.partition).(*array.Int32Builder).Append(k.Partition)
	b.Field(a.offset).(*array.Int64Builder).Append(k.Offset)
	appendTs(b, a.kafkaTs, k.KafkaTs)
	appendTs(b, a.ingested, k.Ingested)
	if a.replayID >= 0 {
		if k.ReplayID == "" {
			b.Field(a.replayID).AppendNull()
		} else {
			b.Field(a.replayID).(*array.StringBuilder).Append(k.ReplayID)
		}
	}

	bd := a.bind(ev.Version)
	if ev.Version != nil {
		for i, c := range ev.Version.Columns {
			j := bd.cols[i]
			if j < 0 {
				continue // not bound: the caller ignored Bind
			}
			v := &ev.vals[i]
			if v.gen != ev.gen {
				b.Field(j).AppendNull()
				continue
			}
			switch c.kind {
			case colString, colJSON:
				b.Field(j).(*array.StringBuilder).BinaryBuilder.Append(v.b)
			case colLong:
				b.Field(j).(*array.Int64Builder).Append(v.i)
			case colTimestamp:
				b.Field(j).(*array.TimestampBuilder).Append(arrow.Timestamp(v.i))
			case colDouble:
				b.Field(j).(*array.Float64Builder).Append(v.f)
			case colBool:
				b.Field(j).(*array.BooleanBuilder).Append(v.i != 0)
			case colDecimal:
				b.Field(j).(*array.Decimal128Builder).Append(v.d)
			}
		}
	}
	for _, j := range bd.nulls {
		b.Field(j).AppendNull()
	}
}

func appendBytes(b *array.RecordBuilder, i int, v []byte) {
	b.Field(i).(*array.StringBuilder).BinaryBuilder.Append(v)
}

func appendOpt(b *array.RecordBuilder, i int, v []byte) {
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
