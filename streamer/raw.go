package streamer

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// rawSink builds the fresh rows of one raw table, with the same Appender
// ingest writes the table with: a hot row and the row ingest later
// commits are the same row. Its schema is the table's as loaded at start,
// widened by the columns of schema versions seen since (ingest widens the
// table the same way).
type rawSink struct {
	table, topic string
	// offsets are what the table stored when the sink opened: rows from
	// there on are handed to the query service (per partition).
	offsets lake.Offsets
	typed   []iceberg.NestedField
	app     *schema.Appender
	b       *array.RecordBuilder
	rows    int
	done    []arrow.RecordBatch // batches of an older schema, not handed yet
}

func (s *Streamer) newRawSink(ctx context.Context, topic, name string) (*rawSink, error) {
	r := &rawSink{table: name, topic: topic, offsets: lake.Offsets{}}
	tbl, err := s.deps.Catalog.LoadTable(ctx, name)
	switch {
	case errors.Is(err, icecat.ErrNoSuchTable):
	case err != nil:
		return nil, err
	default:
		if r.offsets, err = lake.StoredOffsets(tbl); err != nil {
			return nil, err
		}
		for _, f := range tbl.Schema().Fields() {
			if !lake.IsEnvelopeColumn(f.Name) {
				r.typed = append(r.typed, f)
			}
		}
	}
	return r, r.rebuild()
}

// rebuild makes a builder for the sink's current columns.
func (r *rawSink) rebuild() error {
	def := lake.RawTableDef(r.table, r.topic, r.typed, nil)
	sc, err := table.SchemaToArrowSchema(def.Schema, nil, true, false)
	if err != nil {
		return fmt.Errorf("arrow schema of %s: %w", r.table, err)
	}
	app, err := schema.NewAppender(sc)
	if err != nil {
		return err
	}
	if r.b != nil {
		if r.rows > 0 {
			r.done = append(r.done, r.b.NewRecordBatch())
		}
		r.b.Release()
	}
	r.app, r.b, r.rows = app, array.NewRecordBuilder(memory.DefaultAllocator, sc), 0
	return nil
}

// add appends one accepted event; false means the table types one of its
// columns differently, and ingest sends the event to the dead-letter
// table instead (schema_conflict).
func (r *rawSink) add(ev *schema.Event, k *schema.Coords, codecs schema.Codecs) bool {
	if ev.Version != nil {
		missing, conflict := r.app.Bind(ev.Version)
		if conflict != nil {
			return false
		}
		if len(missing) > 0 {
			cols := ev.Version.Columns
			if sub := codecs.Set().Subject(ev.Version.Subject); sub != nil {
				cols = sub.Columns
			}
			for _, c := range cols {
				if r.app.Schema().FieldIndices(c.Name) == nil {
					r.typed = append(r.typed, c.NestedField())
				}
			}
			if err := r.rebuild(); err != nil {
				return false
			}
		}
	}
	r.app.Append(r.b, ev, *k)
	r.rows++
	return true
}

// take returns the rows built since the last take, nil if none (batches
// of an older schema first; the caller hands each to the sink).
func (r *rawSink) take() arrow.RecordBatch {
	if len(r.done) > 0 {
		rec := r.done[0]
		r.done = r.done[1:]
		return rec
	}
	if r.rows == 0 {
		return nil
	}
	r.rows = 0
	return r.b.NewRecordBatch()
}
