package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/internal/hot"
	"github.com/eventlake/eventlake/lake"
)

// Fresh rows. The hot tier (streamer) hands the query service every event
// of a raw table as soon as it is read from Kafka; they are appended to an
// in-memory DuckDB table per raw table (__hot_<name>) with DuckDB's
// Appender. A raw table's view is its snapshot's files plus the hot rows
// at or after the offsets that snapshot stores, per partition: the lake
// covers everything below those offsets, the hot table everything after,
// so nothing is counted twice and nothing is missing. Queries run in a
// transaction, so they see the hot rows committed when they started and
// report exactly which offsets they covered. Rows the lake has caught up
// with are deleted after each new generation.

const hotPrefix = "__hot_"

func hotTableName(table string) string { return hotPrefix + table }

// hotStore owns the hot tables and the connection that writes them.
type hotStore struct {
	mu    sync.Mutex // serializes writes on conn
	conn  *sql.Conn
	specs map[string]*tableSpec
	rows  int64 // rows held in all hot tables
	max   int64
	space *sync.Cond // signalled when trims free space
}

// openHot creates the hot tables on conn.
func (s *Service) openHot(ctx context.Context, conn *sql.Conn) error {
	h := &hotStore{conn: conn, specs: map[string]*tableSpec{}, max: int64(s.cfg.HotMaxRows)}
	h.space = sync.NewCond(&h.mu)
	for _, spec := range s.specs {
		if !spec.hasHot() {
			continue
		}
		cols, err := schemaColumns(spec.def.Schema)
		if err != nil {
			return err
		}
		var defs []string
		for _, c := range cols {
			defs = append(defs, duck.QuoteIdent(c.name)+" "+c.typ)
		}
		stmt := "CREATE TABLE " + duck.QuoteIdent(hotTableName(spec.name)) + " (" + strings.Join(defs, ", ") + ")"
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create hot table for %s: %w", spec.name, err)
		}
		h.specs[spec.name] = spec
	}
	s.hot = h
	return nil
}

// AppendRows implements hot.Sink: it appends fresh rows of a raw table.
// It blocks while the hot tables hold query.hot_max_rows rows (the lake
// is behind), which pauses the hot tier instead of growing without bound.
func (s *Service) AppendRows(ctx context.Context, table string, rows []hot.Row) error {
	h := s.hot
	spec := h.specs[table]
	if spec == nil {
		return fmt.Errorf("no hot table for %s", table)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.rows+int64(len(rows)) > h.max && h.rows > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.m.hotFull.Set(1)
		waitCond(ctx, h.space)
	}
	s.m.hotFull.Set(0)
	cols, err := schemaColumns(spec.def.Schema)
	if err != nil {
		return err
	}
	err = h.conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("duckdb connection is %T", dc)
		}
		app, err := duckdb.NewAppenderFromConn(dconn, "", hotTableName(table))
		if err != nil {
			return err
		}
		vals := make([]driver.Value, len(cols))
		for i := range rows {
			hotValues(&rows[i], cols, vals)
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
	h.rows += int64(len(rows))
	s.m.hotRows.Set(float64(h.rows))
	return nil
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

// hotValues fills vals with a row's values in the raw table's column order.
func hotValues(r *hot.Row, cols []column, vals []driver.Value) {
	ts := func(micros int64) time.Time { return time.UnixMicro(micros).UTC() }
	str := func(p *string) driver.Value {
		if p == nil {
			return nil
		}
		return *p
	}
	for i, c := range cols {
		var v driver.Value
		switch c.name {
		case lake.ColEventID:
			v = r.EventID
		case lake.ColSource:
			v = r.Source
		case lake.ColType:
			v = r.Type
		case lake.ColTs:
			v = ts(r.Ts)
		case lake.ColPayload:
			v = r.Payload
		case lake.ColMetadata:
			v = str(r.Metadata)
		case lake.ColTraceID:
			v = str(r.TraceID)
		case lake.ColSpanID:
			v = str(r.SpanID)
		case lake.ColKafkaTopic:
			v = r.Topic
		case lake.ColKafkaPartition:
			v = r.Partition
		case lake.ColKafkaOffset:
			v = r.Offset
		case lake.ColKafkaTimestamp:
			v = ts(r.KafkaTs)
		case lake.ColIngestedAt:
			v = ts(r.Received)
		case lake.ColOrderID:
			if r.IsOrder {
				v = r.OrderID
			}
		case lake.ColUserID:
			if r.IsOrder {
				v = r.UserID
			}
		case lake.ColProductID:
			switch {
			case r.IsOrder:
				v = r.ProductID
			case r.IsInventory:
				v = r.InvProductID
			}
		case lake.ColQuantity:
			if r.IsOrder {
				v = r.Quantity
			}
		case lake.ColAmount:
			if r.IsOrder {
				v = duckdb.Decimal{Width: 18, Scale: 2, Value: big.NewInt(r.AmountCents)}
			}
		case lake.ColWarehouse:
			if r.IsInventory {
				v = str(r.Warehouse)
			}
		case lake.ColStock:
			if r.IsInventory {
				v = r.Stock
			}
		case lake.ColDelta:
			if r.IsInventory && r.Delta != nil {
				v = *r.Delta
			}
		}
		vals[i] = v
	}
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
	for _, st := range gen.tables {
		if !st.spec.hasHot() {
			continue
		}
		name := duck.QuoteIdent(hotTableName(st.spec.name))
		if _, err := h.conn.ExecContext(ctx, "DELETE FROM "+name+" WHERE "+duck.QuoteIdent(lake.ColKafkaOffset)+" < "+offsetFloor(st.spec.topic, st.offsets)); err != nil {
			return fmt.Errorf("trim hot rows of %s: %w", st.spec.name, err)
		}
		var n int64
		if err := h.conn.QueryRowContext(ctx, "SELECT count(*) FROM "+name).Scan(&n); err != nil {
			return fmt.Errorf("count hot rows of %s: %w", st.spec.name, err)
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
		if !st.spec.hasHot() || st.refused != "" {
			continue
		}
		parts = append(parts, fmt.Sprintf("SELECT %s AS t, %s AS p, max(%s) + 1 AS o FROM %s WHERE %s >= %s GROUP BY 2",
			duck.QuoteString(st.spec.name), duck.QuoteIdent(lake.ColKafkaPartition), duck.QuoteIdent(lake.ColKafkaOffset),
			duck.QuoteIdent(hotTableName(st.spec.name)), duck.QuoteIdent(lake.ColKafkaOffset), offsetFloor(st.spec.topic, st.offsets)))
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
