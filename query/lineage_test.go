package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/internal/route"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/readmodel"
)

// TestLineage: the lineage the service serves (GET /v1/lineage) and the
// one computed from the lake without a service (ReadLineage, the
// command's) agree, and both draw every kind of edge from the lake and
// the configuration: sources -> topics -> raw tables (and the dead-letter
// table) -> types -> type views, raw tables -> read models, views and
// tables -> endpoints; a raw table of a topic taken by pattern is found
// in the catalog.
func TestLineage(t *testing.T) {
	l := newLake(t)
	l.orders()
	l.dlq()
	l.rawTable("payments_captured", "payments.captured", "")
	l.appendRows("orders_raw", []row{order("o-1", t0, "9.99", 0)}, offsets("orders.created", 0, 1))
	// Source counts as ingest commits them.
	ctx := context.Background()
	for name, batch := range map[string]lake.SourceCounts{
		"orders_raw":        {Events: map[string]int64{"checkout": 7, "shop eu": 2}},
		"payments_captured": {Events: map[string]int64{"billing": 1}, Other: 3},
	} {
		tbl, err := l.cat.LoadTable(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		tx := tbl.NewTransaction()
		if err := tx.SetProperties(lake.MergeSources(tbl.Properties(), batch, t0)); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	layout, err := lake.NewLayout(lake.LayoutConfig{Topics: testLayout(t).Topics(), Pattern: `payments\..*`, DLQ: "dlq"})
	if err != nil {
		t.Fatal(err)
	}
	models, err := readmodel.Parse(ctx, readmodel.Shipped(), func(name string) (readmodel.Source, bool) {
		if name == "user_sessions" {
			return readmodel.Source{Type: name, Table: name, Columns: map[string]iceberg.Type{
				"user_id": iceberg.PrimitiveTypes.String, "ts": iceberg.PrimitiveTypes.TimestampTz,
				"session_end": iceberg.PrimitiveTypes.TimestampTz, "events": iceberg.PrimitiveTypes.Int64,
				"orders": iceberg.PrimitiveTypes.Int64, "revenue": iceberg.DecimalTypeOf(38, 2),
				"seconds": iceberg.DecimalTypeOf(18, 6),
			}}, true
		}
		if name == "inventory" {
			return readmodel.Source{Type: "inventory.updated", Columns: map[string]iceberg.Type{
				"product_id": iceberg.PrimitiveTypes.String, "warehouse": iceberg.PrimitiveTypes.String,
				"stock": iceberg.PrimitiveTypes.Int64, "delta": iceberg.PrimitiveTypes.Int64,
			}}, true
		}
		return readmodel.Source{Type: "order.created", Columns: map[string]iceberg.Type{
			"amount": iceberg.DecimalTypeOf(18, 2), "user_id": iceberg.PrimitiveTypes.String,
			"product_id": iceberg.PrimitiveTypes.String, "quantity": iceberg.PrimitiveTypes.Int64,
		}}, name == "orders"
	})
	if err != nil {
		t.Fatal(err)
	}
	h := startWith(t, l, nil, func(d *Deps) func(http.Handler) http.Handler {
		d.Layout, d.Models = layout, models
		return func(h http.Handler) http.Handler { return h }
	})
	extra := []route.Route{{Pattern: "postgres", About: "SQL", Reads: []route.Read{{Kind: route.Views}}}}
	h.waitFor("the payments table in service", func() bool {
		lin := h.svc.Lineage(nil)
		return lin != nil && slices.ContainsFunc(lin.Topics, func(tp LineageTopic) bool { return tp.Topic == "payments.captured" })
	})

	code, body := h.get("/v1/lineage")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/lineage: %d %s", code, body)
	}
	var served Lineage
	if err := json.Unmarshal(body, &served); err != nil {
		t.Fatalf("decode /v1/lineage: %v", err)
	}
	if served.LastRefresh == "" {
		t.Errorf("GET /v1/lineage names no last refresh")
	}
	withExtra := h.svc.Lineage(route.Merge(h.svc.Routes(), extra...))
	read, err := ReadLineage(ctx, Config{}, LineageDeps{Catalog: l.cat, Layout: layout, Models: models, Codecs: testCodecs, Routes: extra})
	if err != nil {
		t.Fatal(err)
	}
	norm := func(x *Lineage) string {
		c := *x
		c.Time, c.LastRefresh = "", ""
		b, _ := json.MarshalIndent(c, "", " ")
		return string(b)
	}
	if norm(withExtra) != norm(read) {
		t.Errorf("the service's lineage and ReadLineage differ:\nservice: %s\nread:    %s", norm(withExtra), norm(read))
	}

	edges := map[string]string{}
	for _, e := range read.Edges {
		edges[e.From+" -> "+e.To] = e.Label
	}
	for _, want := range []struct{ from, to, label string }{
		{"source:checkout", "topic:orders.created", "7 events"},
		{"source:shop eu", "topic:orders.created", "2 events"},
		{"source:billing", "topic:payments.captured", "1 event"},
		{"topic:orders.created", "table:orders_raw", "explicit"},
		{"topic:payments.captured", "table:payments_captured", "pattern"},
		{"topic:payments.captured", "table:dlq", "rejected"},
		{"table:orders_raw", "type:order.created", ""},
		{"type:order.created", "view:orders", ""},
		{"type:order.created", "view:order_created", ""},
		{"table:orders_raw", "view:events", ""},
		{"table:payments_captured", "view:events", ""},
		{"table:orders_raw", "table:order_revenue_minute", "order.created (ts, amount)"},
		{"table:orders_raw", "table:order_metrics", "order.created (ts, amount, user_id)"},
		{"table:order_revenue_minute", "view:order_revenue_minute", ""},
		{"view:orders", "endpoint:POST /v1/sql", ""},
		{"view:payments_captured", "endpoint:postgres", ""},
		{"table:orders_raw", "endpoint:GET /v1/metrics/order_revenue_minute", "type = order.created"},
	} {
		label, ok := edges[want.from+" -> "+want.to]
		if !ok || label != want.label {
			t.Errorf("edge %s -> %s: label %q (present %v), want %q", want.from, want.to, label, ok, want.label)
		}
	}
	var payments *LineageTopic
	for i := range read.Topics {
		if read.Topics[i].Topic == "payments.captured" {
			payments = &read.Topics[i]
		}
	}
	if payments == nil || payments.OtherSources == nil || payments.OtherSources.Events != 3 ||
		payments.Sources[0].LastSeen != t0.Format(time.RFC3339Nano) {
		t.Errorf("payments.captured: %+v, want billing last seen %v and 3 other events", payments, t0)
	}
	var orderType *LineageType
	for i := range read.Types {
		if read.Types[i].Type == "order.created" {
			orderType = &read.Types[i]
		}
	}
	if orderType == nil || len(orderType.Versions) == 0 || !slices.Contains(orderType.Versions[0].Added, "amount") ||
		fmt.Sprint(orderType.Tables) != "[orders_raw]" {
		t.Errorf("order.created: %+v, want held by orders_raw with version 1 adding amount", orderType)
	}
	for _, tb := range read.Tables {
		if tb.Name == "inventory_raw" && tb.Exists {
			t.Errorf("inventory_raw is configured, not created: %+v", tb)
		}
	}
}

func TestMappingOf(t *testing.T) {
	layout, err := lake.NewLayout(lake.LayoutConfig{Topics: []lake.TopicTable{{Topic: "orders.created", Table: "orders_raw"}}, DLQ: "dlq"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ topic, table, want string }{
		{"orders.created", "orders_raw", mappingExplicit},
		{"payments.captured", "payments_captured", mappingPattern}, // even with no pattern configured here (dev's default)
		{"refunds", "old_refunds", mappingOther},
	} {
		if got := mappingOf(layout, tc.topic, tc.table); got != tc.want {
			t.Errorf("mappingOf(%s, %s) = %s, want %s", tc.topic, tc.table, got, tc.want)
		}
	}
}
