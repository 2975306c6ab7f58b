package query

import (
	"context"
	"fmt"
	"testing"

	"github.com/eventlake/eventlake/internal/hot"
	"github.com/eventlake/eventlake/lake"
)

func hotOrder(offset int64, cents int64) hot.Row {
	return hot.Row{
		Topic: "orders.created", Partition: 0, Offset: offset, KafkaTs: t0.UnixMicro(), Received: t0.UnixMicro(),
		EventID: fmt.Sprint("ev-", offset), Source: "test", Type: "order.created", Ts: t0.UnixMicro(),
		Payload: `{}`, IsOrder: true, OrderID: fmt.Sprint("o", offset), UserID: "u-1", ProductID: "p-1",
		Quantity: 1, AmountCents: cents,
	}
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
	rows := []hot.Row{hotOrder(0, 100), hotOrder(1, 200), hotOrder(2, 300), hotOrder(3, 400), hotOrder(4, 500)}
	if err := h.svc.AppendRows(context.Background(), "orders_raw", rows); err != nil {
		t.Fatal(err)
	}
	check := func(wantCount, wantSum string, wantOffset int64) {
		t.Helper()
		r := h.mustSQL("SELECT count(*), sum(amount) FROM orders")
		if got := fmt.Sprint(r.rows()[0]); got != fmt.Sprintf("[%s %s]", wantCount, wantSum) {
			t.Fatalf("orders: %s, want [%s %s]", got, wantCount, wantSum)
		}
		off := r.body["offsets"].(map[string]any)["orders_raw"].(map[string]any)["orders.created"].(map[string]any)["0"]
		if fmt.Sprint(off) != fmt.Sprint(wantOffset) {
			t.Fatalf("answer covers offset %v, want %d", off, wantOffset)
		}
	}
	check("5", "15.00", 5)

	// The lake commits offsets 2 and 3: they are read from the lake now,
	// and offset 4 still from the hot rows.
	sid = l.appendRows("orders_raw", []row{order("c", t0, "3.00", 2), order("d", t0, "4.00", 3)}, offsets("orders.created", 0, 4))
	h.waitSnapshot("orders_raw", sid)
	check("5", "15.00", 5)
	h.waitFor("hot rows trimmed", func() bool { return metricValue(h.svc.m.hotRows) == 1 })

	// Hot rows of a partition the lake has never seen are all served.
	r2 := hotOrder(0, 700)
	r2.Partition = 3
	if err := h.svc.AppendRows(context.Background(), "orders_raw", []hot.Row{r2}); err != nil {
		t.Fatal(err)
	}
	check("6", "22.00", 5)
	if err := h.svc.AppendRows(context.Background(), "nope", nil); err == nil {
		t.Fatal("rows for an unknown table accepted")
	}
	_ = lake.ColAmount
}
