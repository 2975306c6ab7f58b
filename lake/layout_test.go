package lake

import (
	"context"
	"strings"
	"testing"
)

func TestModelInputsDefaults(t *testing.T) {
	var m ModelInputs
	m.Defaults()
	if err := m.Validate(); err != nil {
		t.Fatalf("the embedded models.yaml leaves an input unset: %v", err)
	}
	m = ModelInputs{Orders: OrderInputs{Amount: "total"}}
	m.Defaults()
	if m.Orders.Amount != "total" || m.Orders.User == "" {
		t.Fatalf("configured inputs must win over the defaults: %+v", m.Orders)
	}
}

func TestLayoutTableFor(t *testing.T) {
	l, err := NewLayout(LayoutConfig{
		Topics:  []TopicTable{{Topic: "orders.created", Table: "orders_raw"}},
		Pattern: ".*", Exclude: []string{"orders.enriched"}, DLQ: "dlq",
	})
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]string{
		"orders.created":     "orders_raw",
		"payments.captured":  "payments_captured",
		"a-b.c":              "a_b_c",
		"orders.enriched":    "",
		"__consumer_offsets": "",
		"_schemas":           "",
		"dlq":                "", // would collide with the dead-letter table
		"orders-raw":         "", // would collide with orders.created's table
		"9lives":             "", // not a valid table name
	} {
		got, ok := l.TableFor(topic)
		if got != want || ok != (want != "") {
			t.Errorf("TableFor(%q) = %q, %v; want %q", topic, got, ok, want)
		}
	}
	for _, bad := range []LayoutConfig{
		{DLQ: "dlq"},
		{Topics: []TopicTable{{Topic: "a", Table: "t"}, {Topic: "b", Table: "t"}}, DLQ: "dlq"},
		{Topics: []TopicTable{{Topic: "a", Table: "dlq"}}, DLQ: "dlq"},
		{Topics: []TopicTable{{Topic: "a", Table: "bad name"}}, DLQ: "dlq"},
		{Pattern: "(", DLQ: "dlq"},
	} {
		if _, err := NewLayout(bad); err == nil {
			t.Errorf("NewLayout(%+v) accepted", bad)
		}
	}
}

// TestCheckTopic: a raw table holds one topic; another topic whose name
// maps to the same table is refused.
func TestCheckTopic(t *testing.T) {
	cat := testCatalog(t, t.TempDir())
	tbl, err := cat.LoadTable(context.Background(), "events_raw")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckTopic(tbl, "events"); err != nil {
		t.Fatalf("the table's own topic: %v", err)
	}
	if err := CheckTopic(tbl, "events-other"); err == nil || !strings.Contains(err.Error(), "holds topic events") {
		t.Fatalf("another topic: %v", err)
	}
	if err := CheckTopic(nil, "x"); err != nil {
		t.Fatalf("no table yet: %v", err)
	}
	// A topic named like a table that is not a raw table (audit.log taken
	// by pattern) is refused: its events must not land in the audit log.
	for _, def := range []TableDef{AuditLogTableDef(TableAuditLog), DLQTableDef("dlq")} {
		other, err := cat.EnsureTable(context.Background(), def)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckTopic(other, "x"); err == nil || !strings.Contains(err.Error(), "not a raw table") {
			t.Fatalf("table %s for a topic: %v", def.Name, err)
		}
	}
}
