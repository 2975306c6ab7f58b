package readmodel

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
)

func testSources(name string) (Source, bool) {
	switch name {
	case "user_sessions": // as streamer.Sessions.Source describes it
		ts := iceberg.PrimitiveTypes.TimestampTz
		return Source{Type: name, Table: name, Columns: map[string]iceberg.Type{
			"user_id": iceberg.PrimitiveTypes.String, "ts": ts, "session_end": ts,
			"events": iceberg.PrimitiveTypes.Int64, "orders": iceberg.PrimitiveTypes.Int64,
			"revenue": iceberg.DecimalTypeOf(38, 2), "seconds": iceberg.DecimalTypeOf(18, 6),
		}, Rows: iceberg.EqualTo(iceberg.Reference("open"), false)}, true
	case "inventory", "inventory.updated", "inventory_updated":
		return Source{Type: "inventory.updated", Columns: map[string]iceberg.Type{
			"product_id": iceberg.PrimitiveTypes.String, "warehouse": iceberg.PrimitiveTypes.String,
			"stock": iceberg.PrimitiveTypes.Int64, "delta": iceberg.PrimitiveTypes.Int64,
		}}, true
	case "orders", "order.created", "order_created":
		return Source{Type: "order.created", Columns: map[string]iceberg.Type{
			"order_id": iceberg.PrimitiveTypes.String, "user_id": iceberg.PrimitiveTypes.String,
			"product_id": iceberg.PrimitiveTypes.String, "quantity": iceberg.PrimitiveTypes.Int64,
			"amount": iceberg.DecimalTypeOf(18, 2), "rating": iceberg.PrimitiveTypes.Float64,
			"gift": iceberg.PrimitiveTypes.Bool, "tags": iceberg.PrimitiveTypes.String,
		}}, true
	}
	return Source{}, false
}

func parse1(t *testing.T, sql string) (*Model, error) {
	t.Helper()
	ms, err := Parse(context.Background(), []Declaration{{Name: "m", SQL: sql}}, testSources)
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

func TestShippedParse(t *testing.T) {
	decls := Shipped()
	if len(decls) < 3 {
		t.Fatalf("shipped.yaml holds %d declarations", len(decls))
	}
	ms, err := Parse(context.Background(), decls, testSources)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Type != "order.created" && m.Type != "inventory.updated" && m.Table != "user_sessions" || m.Bucket.Width == 0 || len(m.Aggs) == 0 {
			t.Errorf("%s parsed as %+v", m.Name, m)
		}
		if m.Name != "inventory_health" {
			continue
		}
		var names []string
		for _, f := range m.Fields() {
			names = append(names, f.Name)
		}
		want := "day product_id warehouse stock stock_ts first_stock first_stock_ts updates net_delta last_update"
		if got := strings.Join(names, " "); got != want || m.Bucket.Width != 24*time.Hour {
			t.Errorf("inventory_health: %s columns\n got %s\nwant %s", m.Bucket.Width, got, want)
		}
	}
}

func TestParseForm(t *testing.T) {
	m, err := parse1(t, `SELECT time_bucket(INTERVAL '5 minutes', ts) AS five, product_id, user_id AS customer,
		sum(amount) AS revenue, count(*) AS n, count(rating) AS rated, min(amount) lo, max(product_id) AS top,
		avg(quantity) AS q, approx_count_distinct(user_id) AS users, sum(rating) AS rsum,
		arg_max(amount, ts) AS last_amount, min_by(product_id, orders.ts) AS first_product, max(ts) AS last_update
		FROM orders WHERE source <> 'test' AND (quantity BETWEEN 1 AND 10 OR gift = true) AND amount > 0.5
		AND product_id IN ('a', 'b', 'c') AND tags IS NULL AND NOT (rating < 1.5)
		GROUP BY ALL`)
	if err != nil {
		t.Fatal(err)
	}
	if m.Bucket != (Bucket{Name: "five", Width: 5 * time.Minute}) {
		t.Errorf("bucket %+v", m.Bucket)
	}
	if len(m.Keys) != 2 || m.Keys[1].Name != "customer" || m.Keys[1].Input != "user_id" {
		t.Errorf("keys %+v", m.Keys)
	}
	var names []string
	for _, f := range m.Fields() {
		names = append(names, f.Name)
	}
	want := "five product_id customer revenue n rated lo top q_sum q_count users users_sketch rsum " +
		"last_amount last_amount_ts first_product first_product_ts last_update"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("fields\n got %s\nwant %s", got, want)
	}
	if sum := m.TableDef().Schema.Field(3).Type; !sum.Equals(iceberg.DecimalTypeOf(38, 2)) {
		t.Errorf("sum(amount) is %s", sum)
	}

	// Spellings of the same form.
	for _, sql := range []string{
		`SELECT date_trunc('hour', ts) AS h, product_id, count(*) AS n FROM orders GROUP BY 1, 2`,
		`SELECT time_bucket(INTERVAL 1 HOUR, ts) AS h, product_id, count(*) AS n FROM order_created GROUP BY h, product_id`,
		`SELECT product_id, time_bucket(INTERVAL '1 hour', ts) AS h, count(*) AS n FROM "order.created" GROUP BY time_bucket(INTERVAL '1 hour', ts), product_id`,
		`SELECT time_bucket(INTERVAL '1 day', orders.ts) AS d, count(*) AS n FROM orders GROUP BY ALL`,
	} {
		if _, err := parse1(t, sql); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}

	// Same model, other whitespace: the same canonical form.
	a, _ := parse1(t, "SELECT time_bucket(INTERVAL '1 minute', ts) AS minute, count(*) AS n FROM orders GROUP BY ALL")
	b, _ := parse1(t, "select  time_bucket(interval '1 minute',ts) as minute,\n count(*) as n from orders group by all")
	if a == nil || b == nil || a.Canonical != b.Canonical {
		t.Errorf("canonical forms differ for the same model")
	}
}

// TestParseRefusals: every construct outside the form is refused with a
// message that names the part and says why.
func TestParseRefusals(t *testing.T) {
	for _, tc := range []struct{ sql, part, msg string }{
		{"SELEC x", "sql", "does not parse"},
		{"SELECT 1; SELECT 2", "sql", "one SELECT statement"},
		{"SELECT count(*) AS n FROM orders UNION ALL SELECT count(*) FROM orders", "sql", "UNION"},
		{"WITH o AS (SELECT * FROM orders) SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM o GROUP BY ALL", "WITH", "common table expressions"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders GROUP BY ALL ORDER BY 1", "ORDER BY", "order when you query"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders GROUP BY ALL LIMIT 5", "LIMIT", "limit when you query"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders GROUP BY ALL HAVING count(*) > 1", "HAVING", "cannot be kept incrementally"},
		{"SELECT time_bucket(INTERVAL '1 minute', o.ts) AS m, count(*) AS n FROM orders o JOIN orders p USING (order_id) GROUP BY ALL", "FROM", "a join is not part of the form"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM (SELECT * FROM orders) GROUP BY ALL", "FROM", "a subquery"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM read_parquet('x.parquet') GROUP BY ALL", "FROM", "a table function"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM main.orders GROUP BY ALL", "FROM", "without a schema"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM payments GROUP BY ALL", "FROM", "not an event type or type view"},
		{"SELECT count(*) AS n FROM orders", "SELECT", "no event-time bucket"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, product_id FROM orders GROUP BY ALL", "SELECT", "no aggregate"},
		{"SELECT time_bucket(INTERVAL '2 minutes', ts) AS m, count(*) AS n FROM orders GROUP BY ALL", "select item 1", "not offered"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts, TIMESTAMPTZ '2026-01-01') AS m, count(*) AS n FROM orders GROUP BY ALL", "select item 1", "two arguments"},
		{"SELECT date_trunc('week', ts) AS m, count(*) AS n FROM orders GROUP BY ALL", "select item 1", "buckets are 1 minute"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, time_bucket(INTERVAL '1 hour', ts) AS h, count(*) AS n FROM orders GROUP BY ALL", "select item 2", "a second event-time bucket"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts), count(*) AS n FROM orders GROUP BY ALL", "select item 1", "name the bucket"},
		{"SELECT time_bucket(INTERVAL '1 minute', amount) AS m, count(*) AS n FROM orders GROUP BY ALL", "select item 1", "buckets are of event time"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, * FROM orders GROUP BY ALL", "select item 2", "* is not part of the form"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(DISTINCT user_id) AS u FROM orders GROUP BY ALL", "select item 2", "use approx_count_distinct"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, median(amount) AS x FROM orders GROUP BY ALL", "select item 2", "neither the bucket nor one of the form's aggregates"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, sum(amount * 2) AS x FROM orders GROUP BY ALL", "select item 2", "of an expression"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, sum(amount) FILTER (WHERE quantity > 1) AS x FROM orders GROUP BY ALL", "select item 2", "FILTER"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, sum(amount) FROM orders GROUP BY ALL", "select item 2", "name the aggregate"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, sum(product_id) AS x FROM orders GROUP BY ALL", "select item 2", "not a number"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, arg_max(amount, quantity) AS x FROM orders GROUP BY ALL", "select item 2", "orders by the event time only"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, arg_min(amount, ts + INTERVAL 1 HOUR) AS x FROM orders GROUP BY ALL", "select item 2", "must be the event time ts"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, arg_max(amount) AS x FROM orders GROUP BY ALL", "select item 2", "takes a column and ts"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, arg_max(amount, ts, 3) AS x FROM orders GROUP BY ALL", "select item 2", "a third argument"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, arg_max(amount * 2, ts) AS x FROM orders GROUP BY ALL", "select item 2", "of an expression"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, arg_max(amount, nope) AS x FROM orders GROUP BY ALL", "select item 2", `no column "nope"`},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, arg_max(amount, ts) FROM orders GROUP BY ALL", "select item 2", "name the aggregate"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, arg_max(DISTINCT amount, ts) AS x FROM orders GROUP BY ALL", "select item 2", "DISTINCT"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, arg_max(amount, ts) AS x, count(*) AS x_ts FROM orders GROUP BY ALL", "select item 3", "already"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, arg_max_null(amount, ts) AS x FROM orders GROUP BY ALL", "select item 2", "neither the bucket nor one of the form's aggregates"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, lower(product_id) AS p, count(*) AS n FROM orders GROUP BY ALL", "select item 2", "other functions cannot be kept per bucket"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, nope, count(*) AS n FROM orders GROUP BY ALL", "select item 2", `no column "nope"`},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, rating, count(*) AS n FROM orders GROUP BY ALL", "select item 2", "group by strings"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS m FROM orders GROUP BY ALL", "select item 2", "already"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, avg(amount) AS a, count(*) AS a_sum FROM orders GROUP BY ALL", "select item 3", "already"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS \"Minute\", count(*) AS n FROM orders GROUP BY ALL", "select item 1", "cannot name a column"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, product_id, count(*) AS n FROM orders GROUP BY 1", "GROUP BY", "every plain column"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders GROUP BY 1, user_id", "GROUP BY", "other than the bucket"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders WHERE lower(product_id) = 'a' GROUP BY ALL", "WHERE", "function lower"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders WHERE quantity > amount GROUP BY ALL", "WHERE", "expected a constant"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders WHERE amount > 0.005 GROUP BY ALL", "WHERE", "more decimals"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders WHERE quantity = 1.5 GROUP BY ALL", "WHERE", "not one"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders WHERE product_id = 5 GROUP BY ALL", "WHERE", "quoted string"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders WHERE product_id = NULL GROUP BY ALL", "WHERE", "use IS NULL"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders WHERE gift GROUP BY ALL", "WHERE", "a bare column"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders WHERE product_id LIKE 'a%' GROUP BY ALL", "WHERE", "not part of the form"},
		{"SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders WHERE product_id IN (SELECT 'a') GROUP BY ALL", "WHERE", "not part of the form"},
	} {
		_, err := parse1(t, tc.sql)
		var fe *FormError
		if !errors.As(err, &fe) {
			t.Errorf("%s\n  want a refusal of %s, got %v", tc.sql, tc.part, err)
			continue
		}
		if fe.Part != tc.part || !strings.Contains(fe.Msg, tc.msg) {
			t.Errorf("%s\n  got  %s: %s\n  want %s: ...%s...", tc.sql, fe.Part, fe.Msg, tc.part, tc.msg)
		}
	}
	if _, err := Parse(context.Background(), []Declaration{{Name: "Bad-Name", SQL: "SELECT 1"}}, testSources); err == nil || !strings.Contains(err.Error(), "not a table name") {
		t.Errorf("a bad model name: %v", err)
	}
	dup := []Declaration{{Name: "a", SQL: "SELECT time_bucket(INTERVAL '1 minute', ts) AS m, count(*) AS n FROM orders GROUP BY ALL"}}
	if _, err := Parse(context.Background(), append(dup, dup...), testSources); err == nil || !strings.Contains(err.Error(), "declared twice") {
		t.Errorf("a model declared twice: %v", err)
	}
}

func TestResolve(t *testing.T) {
	got, err := Resolve([]Declaration{{Name: "order_metrics"}, {Name: "mine", SQL: "SELECT 1"}})
	if err != nil || len(got) != 2 || !strings.Contains(got[0].SQL, "approx_count_distinct") {
		t.Fatalf("Resolve: %v %+v", err, got)
	}
	if _, err := Resolve([]Declaration{{Name: "nope"}}); err == nil {
		t.Fatal("a name alone that no shipped model has was accepted")
	}
	if all, _ := Resolve(nil); len(all) != len(Shipped()) {
		t.Fatal("no configured models should mean the shipped ones")
	}
}
