package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/lake"
)

// Fresh rows. The hot tier (streamer) hands the query service every event
// of a raw table as soon as it is read from Kafka; they are appended to an
// in-memory DuckDB table per raw table (__hot.<name>) with DuckDB's
// Appender. A raw table's view is its snapshot's files plus the hot rows
// at or after the offsets that snapshot stores, per partition: the lake
// covers everything below those offsets, the hot table everything after,
// so nothing is counted twice and nothing is missing. Queries run in a
// transaction, so they see the hot rows committed when they started and
// report exactly which offsets they covered. Rows the lake has caught up
// with are deleted after each new generation.

// hotSchema holds the hot tables, off DuckDB's search path: SHOW TABLES
// lists the views people query, not the tables behind them.
const hotSchema = "__hot"

// hotTableSQL is the qualified, quoted name of a raw table's hot table.
func hotTableSQL(table string) string {
	return duck.QuoteIdent(hotSchema) + "." + duck.QuoteIdent(table)
}

// hotStore owns the hot tables and the connection that writes them.
type hotStore struct {
	mu     sync.Mutex // serializes writes on conn
	conn   *sql.Conn
	tables map[string][]column // hot table -> its columns, in order
	rows   int64               // rows held in all hot tables
	max    int64
	space  *sync.Cond // signalled when trims free space
	// ver counts changes of the hot tables' columns, so that the
	// refresher rebuilds the views over them.
	ver atomic.Uint64
}

// openHot prepares the hot store on conn. Hot tables are created when
// their first rows arrive, with the rows' columns, and widened when later
// rows carry more (a schema version with new properties).
func (s *Service) openHot(_ context.Context, conn *sql.Conn) error {
	h := &hotStore{conn: conn, tables: map[string][]column{}, max: int64(s.cfg.HotMaxRows)}
	h.space = sync.NewCond(&h.mu)
	s.hot = h
	return nil
}

// version is the current version of the hot tables' columns.
func (h *hotStore) version() uint64 {
	if h == nil {
		return 0
	}
	return h.ver.Load()
}

// columns returns the columns of a raw table's hot table (nil: none yet).
func (h *hotStore) columns(table string) []column {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tables[table]
}

// AppendRows implements hot.Sink: it appends fresh rows of a raw table.
// It blocks while the hot tables hold query.hot_max_rows rows (the lake
// is behind), which pauses the hot tier instead of growing without bound.
func (s *Service) AppendRows(ctx context.Context, table string, rec arrow.RecordBatch) error {
	h := s.hot
	h.mu.Lock()
	defer h.mu.Unlock()
	n := rec.NumRows()
	for h.rows+n > h.max && h.rows > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.m.hotFull.Set(1)
		waitCond(ctx, h.space)
	}
	s.m.hotFull.Set(0)
	cols, err := h.ensure(ctx, table, rec.Schema())
	if err != nil {
		return err
	}
	// Where each hot column's values come from in rec (-1: null).
	src := make([]int, len(cols))
	for i, c := range cols {
		src[i] = -1
		if idx := rec.Schema().FieldIndices(c.name); len(idx) > 0 {
			src[i] = idx[0]
		}
	}
	err = h.conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("duckdb connection is %T", dc)
		}
		app, err := duckdb.NewAppenderFromConn(dconn, hotSchema, table)
		if err != nil {
			return err
		}
		vals := make([]driver.Value, len(cols))
		for row := 0; row < int(n); row++ {
			for i, j := range src {
				if j < 0 {
					vals[i] = nil
					continue
				}
				vals[i] = arrowValue(rec.Column(j), row)
			}
			if err := app.AppendRow(vals...); err != nil {
				_ = app.Close()
				return err
			}
		}
		return app.Close() // flushes: the rows become visible atomically
	})
	if err != nil {
		return fmt.Errorf("append hot rows to %s: %w", table, err)
	}
	h.rows += n
	s.m.hotRows.Set(float64(h.rows))
	return nil
}

// ensure creates the hot table of a raw table, or adds the columns of sc
// it lacks, and returns its columns. Called with mu held.
func (h *hotStore) ensure(ctx context.Context, table string, sc *arrow.Schema) ([]column, error) {
	cols, exists := h.tables[table]
	var add []column
	for _, f := range sc.Fields() {
		if slices.ContainsFunc(cols, func(c column) bool { return c.name == f.Name }) {
			continue
		}
		t, err := duck.ArrowType(f.Type)
		if err != nil {
			return nil, fmt.Errorf("hot table of %s: column %s: %w", table, f.Name, err)
		}
		add = append(add, column{name: f.Name, typ: t})
	}
	if len(add) == 0 {
		return cols, nil
	}
	name := hotTableSQL(table)
	if !exists {
		var defs []string
		for _, c := range add {
			defs = append(defs, duck.QuoteIdent(c.name)+" "+c.typ)
		}
		if _, err := h.conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+duck.QuoteIdent(hotSchema)); err != nil {
			return nil, fmt.Errorf("create hot table for %s: %w", table, err)
		}
		if _, err := h.conn.ExecContext(ctx, "CREATE TABLE "+name+" ("+strings.Join(defs, ", ")+")"); err != nil {
			return nil, fmt.Errorf("create hot table for %s: %w", table, err)
		}
	} else {
		for _, c := range add {
			if _, err := h.conn.ExecContext(ctx, "ALTER TABLE "+name+" ADD COLUMN "+duck.QuoteIdent(c.name)+" "+c.typ); err != nil {
				return nil, fmt.Errorf("widen hot table of %s: %w", table, err)
			}
		}
	}
	cols = append(slices.Clone(cols), add...)
	h.tables[table] = cols
	h.ver.Add(1)
	return cols, nil
}

// waitCond waits on c (whose lock is held) until signalled or ctx ends.
func waitCond(ctx context.Context, c *sync.Cond) {
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.L.Lock()
		c.Broadcast()
		c.L.Unlock()
		close(done)
	})
	c.Wait()
	if !stop() {
		<-done
	}
}

// arrowValue is one Arrow value as the DuckDB appender takes it.
func arrowValue(a arrow.Array, i int) driver.Value {
	if a.IsNull(i) {
		return nil
	}
	switch c := a.(type) {
	case *array.String:
		return c.Value(i)
	case *array.Binary:
		return c.Value(i)
	case *array.Int32:
		return c.Value(i)
	case *array.Int64:
		return c.Value(i)
	case *array.Float64:
		return c.Value(i)
	case *array.Boolean:
		return c.Value(i)
	case *array.Timestamp:
		return time.UnixMicro(int64(c.Value(i))).UTC()
	case *array.Decimal128:
		dt := c.DataType().(*arrow.Decimal128Type)
		return duckdb.Decimal{Width: uint8(dt.Precision), Scale: uint8(dt.Scale), Value: c.Value(i).BigInt()}
	}
	return a.ValueStr(i)
}

// offsetFloor is a SQL expression: the offset the lake covers up to in the
// row's partition (0 where the snapshot has no offsets).
func offsetFloor(topic string, offsets lake.Offsets) string {
	m := offsets[topic]
	if len(m) == 0 {
		return "0"
	}
	var b strings.Builder
	b.WriteString("CASE " + duck.QuoteIdent(lake.ColKafkaPartition))
	for p, o := range m {
		fmt.Fprintf(&b, " WHEN %d THEN %d", p, o)
	}
	b.WriteString(" ELSE 0 END")
	return b.String()
}

// trimHot deletes hot rows the generation's snapshots cover.
func (s *Service) trimHot(ctx context.Context, gen *generation) error {
	h := s.hot
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var total int64
	for table := range h.tables {
		name := hotTableSQL(table)
		for _, st := range gen.tables {
			if st.spec.name != table || !st.spec.hasHot() {
				continue
			}
			if _, err := h.conn.ExecContext(ctx, "DELETE FROM "+name+" WHERE "+duck.QuoteIdent(lake.ColKafkaOffset)+" < "+offsetFloor(st.spec.topic, st.offsets)); err != nil {
				return fmt.Errorf("trim hot rows of %s: %w", st.spec.name, err)
			}
		}
		var n int64
		if err := h.conn.QueryRowContext(ctx, "SELECT count(*) FROM "+name).Scan(&n); err != nil {
			return fmt.Errorf("count hot rows of %s: %w", table, err)
		}
		total += n
	}
	h.rows = total
	s.m.hotRows.Set(float64(total))
	h.space.Broadcast()
	return nil
}

// hotWatermarkSQL reads, inside a query's transaction, the highest hot
// offset per partition the query could see.
func hotWatermarkSQL(gen *generation) string {
	var parts []string
	for _, st := range gen.tables {
		if !st.spec.hasHot() || st.refused != "" || gen.hotCols[st.spec.name] == nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("SELECT %s AS t, %s AS p, max(%s) + 1 AS o FROM %s WHERE %s >= %s GROUP BY 2",
			duck.QuoteString(st.spec.name), duck.QuoteIdent(lake.ColKafkaPartition), duck.QuoteIdent(lake.ColKafkaOffset),
			hotTableSQL(st.spec.name), duck.QuoteIdent(lake.ColKafkaOffset), offsetFloor(st.spec.topic, st.offsets)))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, " UNION ALL ")
}

// readWatermarks runs hotWatermarkSQL on conn and merges it with the
// generation's offsets: for every table, topic and partition, the offset
// below which the answer includes every event.
func readWatermarks(ctx context.Context, conn driver.QueryerContext, gen *generation) (map[string]lake.Offsets, error) {
	out := gen.offsets()
	for name, o := range out {
		out[name] = o.Clone()
	}
	q := hotWatermarkSQL(gen)
	if q == "" {
		return out, nil
	}
	rows, err := conn.QueryContext(ctx, q, nil)
	if err != nil {
		return nil, fmt.Errorf("read hot watermarks: %w", err)
	}
	defer rows.Close()
	topics := map[string]string{}
	for _, st := range gen.tables {
		topics[st.spec.name] = st.spec.topic
	}
	dest := make([]driver.Value, 3)
	for {
		if err := rows.Next(dest); err != nil {
			break
		}
		table, _ := dest[0].(string)
		p, _ := dest[1].(int32)
		o, _ := dest[2].(int64)
		if out[table] == nil {
			out[table] = lake.Offsets{}
		}
		if cur, ok := out[table].Get(topics[table], p); !ok || o > cur {
			out[table].Set(topics[table], p, o)
		}
	}
	return out, nil
}

// hasHot reports whether the table is a raw table, served with hot rows.
func (t *tableSpec) hasHot() bool { return !t.dlq && !t.readModel }
