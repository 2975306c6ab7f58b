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

// lookupReady waits until the service reads the snapshots and returns
// the count of files lookups skipped.
func (h *harness) lookupReady(snaps map[string]int64) func() float64 {
	for name, id := range snaps {
		h.waitSnapshot(name, id)
	}
	return func() float64 { return metricValue(h.svc.m.filesSkipped) }
}

// TestLookupPruning: a statement that requires an identifier to equal
// constants reads only the files whose manifest bounds can hold them, and
// answers exactly what the same statement answers over every file.
func TestLookupPruning(t *testing.T) {
	l, snaps := lookupLake(t)
	h := start(t, l, nil)
	skipped := h.lookupReady(snaps)

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
	// Event time ranges: the files of orders_raw hold 10:00-10:09 (a),
	// 10:10-10:19 (b), 10:20-10:29 (c), 10:30-10:39 (d) of 2026-11-26.
	for _, c := range []struct {
		where string
		rows  int
		skip  float64
	}{
		{"ts >= TIMESTAMPTZ '2026-11-26 10:20:00+00'", 20, 2},
		{"ts > TIMESTAMPTZ '2026-11-26 10:29:00+00'", 10, 3},
		{"TIMESTAMPTZ '2026-11-26 10:29:00+00' < ts", 10, 3},
		{"ts <= '2026-11-26 10:10:00'", 11, 2},
		{"ts < '2026-11-26 10:10:00'", 10, 3},
		{"ts BETWEEN '2026-11-26 10:05:00+00' AND TIMESTAMP '2026-11-26 10:12:00'", 8, 2},
		{"ts = TIMESTAMPTZ '2026-11-26 11:15:00+01'", 1, 3},
		{"ts >= DATE '2026-11-27'", 0, 4},
		{"ts >= CAST('2026-11-26' AS DATE) + INTERVAL 10 MINUTE + INTERVAL '10 hours'", 30, 1},
		{"ts > now() - INTERVAL 1 HOUR", 0, 4},
		{"event_id = 'ev-b-3' AND ts >= '2026-11-26 10:20:00'", 0, 4},
		{"ts >= '2026-11-26 10:20:00' AND ts < '2026-11-26 10:30:00' AND amount > 0", 10, 3},
		// Not used: not a finite instant, not a constant.
		{"ts < 'infinity'", 40, 0},
		{"ts > current_timestamp", 0, 0},
		{"ts > (SELECT TIMESTAMPTZ '2026-11-26 10:20:00+00')", 19, 0},
		{"ts + INTERVAL 1 MINUTE > TIMESTAMPTZ '2026-11-26 10:20:00+00'", 20, 0},
	} {
		q := "SELECT event_id, ts FROM orders WHERE " + c.where + " ORDER BY event_id"
		before := skipped()
		r := h.mustSQL(q)
		if got := skipped() - before; got != c.skip {
			t.Errorf("%s: %v files skipped, want %v", q, got, c.skip)
		}
		full := h.mustSQL("SELECT event_id, ts FROM orders WHERE false OR (" + c.where + ") ORDER BY event_id")
		if len(r.rows()) != c.rows || !reflect.DeepEqual(r.rows(), full.rows()) {
			t.Errorf("%s: %d rows, want %d\n%s\nthe full scan\n%s", q, len(r.rows()), c.rows, r.raw, full.raw)
		}
	}
	// A literal that is no instant fails the statement as it would
	// without pruning, and nothing else. So does an instant whose
	// evaluation fails (which ends DuckDB's transaction: the statement is
	// run again without the lookup), and one the statement never needs
	// does not fail it.
	if r := h.sql("SELECT count(*) FROM orders WHERE ts > 'garbage'"); r.status != http.StatusBadRequest || !strings.Contains(string(r.raw), "garbage") {
		t.Errorf("bad instant: %d %s", r.status, r.raw)
	}
	if r := h.sql("SELECT count(*) FROM orders WHERE ts > now() + to_days(9223372036854775)"); r.status != http.StatusBadRequest || r.code() != "bad_sql" ||
		!strings.Contains(string(r.raw), "out of range") {
		t.Errorf("failing instant: %d %s", r.status, r.raw)
	}
	if r := h.sql("SELECT count(*) FROM orders WHERE false AND ts > now() + to_days(9223372036854775)"); fmt.Sprint(r.rows()) != "[[0]]" {
		t.Errorf("failing instant never needed: %d %s", r.status, r.raw)
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
	skipped := h.lookupReady(snaps)
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
