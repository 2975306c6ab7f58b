package query

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// hotOrders builds fresh rows of orders_raw the way the hot tier does:
// envelopes decoded with the shipped schemas and appended by the codec's
// Appender. Each order is (offset, cents); partition p.
func hotOrders(t *testing.T, p int32, orders ...[2]int64) arrow.RecordBatch {
	t.Helper()
	sub := testCodecs.Set().Subject("order.created")
	var typed []iceberg.NestedField
	for _, c := range sub.Columns {
		typed = append(typed, c.NestedField())
	}
	sc, err := table.SchemaToArrowSchema(lake.RawTableDef("orders_raw", "orders.created", typed, nil).Schema, nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	app, err := schema.NewAppender(sc)
	if err != nil {
		t.Fatal(err)
	}
	c := schema.Contract{}
	c.Defaults()
	dec := schema.NewDecoder(c, testCodecs)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for _, o := range orders {
		e := schema.Envelope{EventID: fmt.Sprint("ev-", o[0]), Source: "test", Type: "order.created", Timestamp: t0,
			Payload: schema.AppendDecimal2(fmt.Appendf(nil, `{"order_id":"o%d","user_id":"u-1","product_id":"p-1","quantity":1,"amount":`, o[0]), o[1])}
		e.Payload = append(e.Payload, '}')
		var ev schema.Event
		if err := dec.Decode(e.AppendJSON(nil), t0.UnixMicro(), &ev); err != nil {
			t.Fatal(err)
		}
		app.Append(b, &ev, schema.Coords{Topic: "orders.created", Partition: p, Offset: o[0], KafkaTs: t0.UnixMicro(), Ingested: t0.UnixMicro()})
	}
	return b.NewRecordBatch()
}

// TestHotRowsMergeExactly: fresh rows appended by the hot tier are served
// after the offsets the lake's snapshot stores, never below them; when the
// lake commits them they are read once (from the lake) and trimmed from
// memory; answers report the offsets they cover.
func TestHotRowsMergeExactly(t *testing.T) {
	l := newLake(t)
	l.orders()
	sid := l.appendRows("orders_raw", []row{order("a", t0, "1.00", 0), order("b", t0, "2.00", 1)}, offsets("orders.created", 0, 2))
	h := start(t, l, nil)
	h.waitSnapshot("orders_raw", sid)

	// The hot tier read offsets 0..4: 0 and 1 are in the lake already.
	rec := hotOrders(t, 0, [2]int64{0, 100}, [2]int64{1, 200}, [2]int64{2, 300}, [2]int64{3, 400}, [2]int64{4, 500})
	defer rec.Release()
	if err := h.svc.AppendRows(context.Background(), "orders_raw", rec); err != nil {
		t.Fatal(err)
	}
	check := func(wantCount, wantSum string, wantOffset int64) {
		t.Helper()
		h.waitFor("hot rows in the views", func() bool {
			r := h.mustSQL("SELECT count(*), sum(amount) FROM orders")
			return fmt.Sprint(r.rows()[0]) == fmt.Sprintf("[%s %s]", wantCount, wantSum)
		})
		r := h.mustSQL("SELECT count(*), sum(amount) FROM orders")
		off := r.body["offsets"].(map[string]any)["orders_raw"].(map[string]any)["orders.created"].(map[string]any)["0"]
		if fmt.Sprint(off) != fmt.Sprint(wantOffset) {
			t.Fatalf("answer covers offset %v, want %d", off, wantOffset)
		}
	}
	check("5", "15.00", 5)
	// The hot tables are behind the views: SHOW TABLES lists the views.
	for _, name := range h.mustSQL("SHOW TABLES").rows() {
		if strings.Contains(fmt.Sprint(name), "hot") {
			t.Fatalf("SHOW TABLES lists the internal table %v", name)
		}
	}

	// The lake commits offsets 2 and 3: they are read from the lake now,
	// and offset 4 still from the hot rows.
	sid = l.appendRows("orders_raw", []row{order("c", t0, "3.00", 2), order("d", t0, "4.00", 3)}, offsets("orders.created", 0, 4))
	h.waitSnapshot("orders_raw", sid)
	check("5", "15.00", 5)
	h.waitFor("hot rows trimmed", func() bool { return metricValue(h.svc.m.hotRows) == 1 })

	// Hot rows of a partition the lake has never seen are all served.
	r2 := hotOrders(t, 3, [2]int64{0, 700})
	defer r2.Release()
	if err := h.svc.AppendRows(context.Background(), "orders_raw", r2); err != nil {
		t.Fatal(err)
	}
	check("6", "22.00", 5)
}
