package query

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventlake/eventlake/auth"
)

// lookupLake commits four files to orders_raw, one per letter, whose
// order ids (a-0 ... d-9) and event ids (ev-a-0 ...) do not overlap, and
// one file to inventory_raw.
func lookupLake(t *testing.T) (*testLake, map[string]int64) {
	l := newLake(t)
	l.orders()
	l.inventory()
	l.dlq()
	snaps := map[string]int64{}
	off := int64(0)
	for f, letter := range []string{"a", "b", "c", "d"} {
		var rows []row
		for i := range 10 {
			amount := fmt.Sprintf("%d.00", 5+i*2)
			rows = append(rows, order(fmt.Sprintf("%s-%d", letter, i), t0.Add(time.Duration(f*10+i)*time.Minute), amount, off))
			off++
		}
		snaps["orders_raw"] = l.appendRows("orders_raw", rows, offsets("orders.created", 0, off))
	}
	snaps["inventory_raw"] = l.appendRows("inventory_raw", []row{inventoryRow("a-1", t0, 7, 0)}, offsets("inventory.updated", 1, 1))
	return l, snaps
}

// TestLookupPruning: a statement that requires an identifier to equal
// constants reads only the files whose manifest bounds can hold them, and
// answers exactly what the same statement answers over every file.
func TestLookupPruning(t *testing.T) {
	l, snaps := lookupLake(t)
	h := start(t, l, nil)
	for name, id := range snaps {
		h.waitSnapshot(name, id)
	}
	skipped := func() float64 { return metricValue(h.svc.m.filesSkipped) }

	for _, c := range []struct {
		sql string
		// full is the same question in a form no pruning applies to.
		full string
		rows int
		skip float64 // files left out
	}{
		{"SELECT * FROM orders WHERE event_id = 'ev-b-3'", "SELECT * FROM orders WHERE event_id || '' = 'ev-b-3'", 1, 3},
		{"SELECT * FROM order_created WHERE event_id = 'ev-b-3'", "SELECT * FROM order_created WHERE event_id || '' = 'ev-b-3'", 1, 3},
		{"SELECT * FROM orders_raw WHERE order_id = 'c-4' ORDER BY ts", "SELECT * FROM orders_raw WHERE order_id || '' = 'c-4' ORDER BY ts", 1, 3},
		{"SELECT order_id, amount FROM orders o WHERE o.order_id IN ('b-3', 'd-9', 'zz') ORDER BY 1",
			"SELECT order_id, amount FROM orders o WHERE o.order_id || '' IN ('b-3', 'd-9', 'zz') ORDER BY 1", 2, 2},
		{"SELECT event_id, type FROM events WHERE 'ev-a-1' = event_id ORDER BY type",
			"SELECT event_id, type FROM events WHERE 'ev-a-1' = event_id || '' ORDER BY type", 2, 3}, // the order and the inventory row share the id
		{"select count(*), sum(amount) from ORDERS where ORDER_ID = 'a-2' and amount > 1 and user_id = 'u-1'",
			"select count(*), sum(amount) from ORDERS where ORDER_ID || '' = 'a-2' and amount > 1", 1, 3},
		{"-- one order\nFROM orders WHERE order_id = 'a-2'", "FROM orders WHERE order_id || '' = 'a-2'", 1, 3},
		{"SELECT * FROM orders WHERE event_id = 'absent'", "SELECT * FROM orders WHERE event_id || '' = 'absent'", 0, 4},
		{"SELECT order_id, order_id FROM orders WHERE order_id = 'c-1'", "SELECT order_id, order_id FROM orders WHERE order_id || '' = 'c-1'", 1, 3},
		// Not lookups: every file is read.
		{"SELECT * FROM orders WHERE order_id = 'a-1' OR order_id = 'b-1' ORDER BY 1", "", 2, 0},
		{"SELECT o.order_id FROM orders o JOIN orders p USING (event_id) WHERE o.order_id = 'a-1'", "", 1, 0},
		{"WITH x AS (SELECT 1) SELECT order_id FROM orders, x WHERE order_id = 'a-1'", "", 1, 0},
		{"SELECT order_id FROM orders WHERE order_id = 'a-1' AND event_id IN (SELECT event_id FROM events)", "", 1, 0},
		{"(SELECT order_id FROM orders WHERE order_id = 'a-1')", "", 1, 0},
		{"SELECT order_id FROM orders WHERE upper(order_id) = 'A-1'", "", 1, 0},
		{"SELECT order_id FROM orders WHERE order_id = 1", "", 0, -1}, // refused: no VARCHAR constant
	} {
		before := skipped()
		r := h.sql(c.sql)
		if c.skip < 0 {
			if r.status == http.StatusOK || skipped() != before {
				t.Errorf("%s: %d %s, %v files skipped; want an error and none", c.sql, r.status, r.raw, skipped()-before)
			}
			continue
		}
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", c.sql, r.status, r.raw)
		}
		if got := skipped() - before; got != c.skip {
			t.Errorf("%s: %v files skipped, want %v", c.sql, got, c.skip)
		}
		if len(r.rows()) != c.rows {
			t.Errorf("%s: %d rows, want %d: %s", c.sql, len(r.rows()), c.rows, r.raw)
		}
		if c.full == "" {
			continue
		}
		full := h.mustSQL(c.full)
		if !reflect.DeepEqual(r.body["columns"], full.body["columns"]) || !reflect.DeepEqual(r.body["types"], full.body["types"]) ||
			!reflect.DeepEqual(r.rows(), full.rows()) {
			t.Errorf("%s answered\n%s\nthe full scan\n%s", c.sql, r.raw, full.raw)
		}
	}
	// The statement's own column names, not those of a wrapping SELECT *.
	r := h.mustSQL("SELECT order_id, order_id FROM orders WHERE order_id = 'c-1'")
	if cols := fmt.Sprint(r.body["columns"]); cols != "[order_id order_id]" {
		t.Errorf("columns %s", cols)
	}
	// A statement after a lookup reads every file again.
	if r := h.mustSQL("SELECT count(*) FROM orders"); fmt.Sprint(r.rows()) != "[[40]]" {
		t.Errorf("count after lookups: %s", r.raw)
	}
}

// TestLookupPruningGrants: a lookup by a role with masks and a row filter
// reads its rows through them, and a masked column prunes nothing (the
// role compares the mask's values, not the table's).
func TestLookupPruningGrants(t *testing.T) {
	l, snaps := lookupLake(t)
	h := startAuth(t, l, auth.Config{Roles: map[string]auth.RoleConfig{
		auth.RoleDashboard: {Grants: []auth.Grant{{Objects: []string{"*"}, Masks: map[string]string{"user_id": "hash", "order_id": "upper(order_id)"}, RowFilter: "amount >= 10"}}},
	}})
	for name, id := range snaps {
		h.waitSnapshot(name, id)
	}
	skipped := func() float64 { return metricValue(h.svc.m.filesSkipped) }
	for _, c := range []struct {
		sql  string
		want string
		skip float64
	}{
		// b-1 (7.00) is under the row filter, b-3 (11.00) is not.
		{"SELECT event_id, user_id FROM orders WHERE event_id IN ('ev-b-1', 'ev-b-3')", "[[ev-b-3 " + sha256Hex("u-1") + "]]", 3},
		{"SELECT count(*) FROM orders WHERE user_id = '" + sha256Hex("u-1") + "'", "[[28]]", 0},
		{"SELECT event_id FROM orders WHERE order_id = 'C-4'", "[[ev-c-4]]", 0},
		{"SELECT event_id FROM orders WHERE order_id = 'c-4'", "[]", 0},
	} {
		before := skipped()
		r := h.as(auth.RoleDashboard, c.sql)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", c.sql, r.status, r.raw)
		}
		if got := fmt.Sprint(r.rows()); got != c.want {
			t.Errorf("%s: %s, want %s", c.sql, got, c.want)
		}
		if got := skipped() - before; got != c.skip {
			t.Errorf("%s: %v files skipped, want %v", c.sql, got, c.skip)
		}
	}
	if cols := fmt.Sprint(h.as(auth.RoleDashboard, "SELECT user_id, user_id FROM orders WHERE event_id = 'ev-c-5'").body["columns"]); !strings.HasPrefix(cols, "[user_id user_id") {
		t.Errorf("columns %s", cols)
	}
}
