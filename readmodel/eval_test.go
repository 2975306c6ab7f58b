package readmodel

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	_ "github.com/duckdb/duckdb-go/v2"
)

type testOrder struct {
	ts                    time.Time
	source, user, product string
	quantity              int64
	amount                int64 // cents
	rating                *float64
	gift                  bool
}

func randomOrders(n int) []testOrder {
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	out := make([]testOrder, n)
	for i := range out {
		o := testOrder{
			ts:       base.Add(time.Duration(r.Int64N(int64(3 * time.Hour)))).Truncate(time.Microsecond),
			source:   []string{"web", "app", "test"}[r.IntN(3)],
			user:     fmt.Sprintf("u%03d", r.IntN(400)),
			product:  fmt.Sprintf("p%d", r.IntN(5)),
			quantity: 1 + r.Int64N(10),
			amount:   r.Int64N(100_000),
			gift:     r.IntN(4) == 0,
		}
		if r.IntN(3) > 0 {
			f := float64(r.IntN(50)) / 10
			o.rating = &f
		}
		out[i] = o
	}
	return out
}

// ordersRecord is the orders as a raw table's Arrow record.
func ordersRecord(orders []testOrder) arrow.RecordBatch {
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: "source", Type: arrow.BinaryTypes.String},
		{Name: "user_id", Type: arrow.BinaryTypes.String},
		{Name: "product_id", Type: arrow.BinaryTypes.String},
		{Name: "quantity", Type: arrow.PrimitiveTypes.Int64},
		{Name: "amount", Type: &arrow.Decimal128Type{Precision: 18, Scale: 2}},
		{Name: "rating", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "gift", Type: arrow.FixedWidthTypes.Boolean},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for _, o := range orders {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(o.ts.UnixMicro()))
		b.Field(1).(*array.StringBuilder).Append(o.source)
		b.Field(2).(*array.StringBuilder).Append(o.user)
		b.Field(3).(*array.StringBuilder).Append(o.product)
		b.Field(4).(*array.Int64Builder).Append(o.quantity)
		b.Field(5).(*array.Decimal128Builder).Append(decimal128.FromI64(o.amount))
		if o.rating == nil {
			b.Field(6).AppendNull()
		} else {
			b.Field(6).(*array.Float64Builder).Append(*o.rating)
		}
		b.Field(7).(*array.BooleanBuilder).Append(o.gift)
	}
	return b.NewRecordBatch()
}

// TestEvalMatchesDuckDB: a model maintained in Go (through the Arrow
// binding backfill uses, and through its table's rows) answers what
// DuckDB answers for the same SQL over the same rows.
func TestEvalMatchesDuckDB(t *testing.T) {
	const model = `SELECT time_bucket(INTERVAL '5 minutes', ts) AS b, product_id,
		sum(amount) AS revenue, count(*) AS n, count(rating) AS rated, min(amount) AS lo, max(user_id) AS top,
		avg(quantity) AS q, avg(amount) AS aa, sum(rating) AS rs, sum(quantity) AS units, min(rating) AS rmin,
		approx_count_distinct(user_id) AS users,
		arg_max(amount, ts) AS last_amount, arg_min(user_id, ts) AS first_user, arg_max(rating, ts) AS last_rating,
		max(ts) AS last_ts, min(ts) AS first_ts
		FROM orders
		WHERE source <> 'test' AND (quantity BETWEEN 2 AND 9 OR gift = true) AND (rating IS NULL OR rating >= 1.5)
		  AND product_id NOT IN ('p4')
		GROUP BY ALL`
	m, err := parse1(t, model)
	if err != nil {
		t.Fatal(err)
	}
	orders := randomOrders(5000)
	// arg_max and arg_min at equal event times: eventlake keeps the larger
	// (arg_min: smaller) value, DuckDB whichever row it met first. The
	// data have no two orders at the same microsecond, so both agree.
	seenTs := map[int64]bool{}
	for _, o := range orders {
		if seenTs[o.ts.UnixMicro()] {
			t.Fatalf("two orders at %s: the comparison of arg_max needs distinct event times", o.ts)
		}
		seenTs[o.ts.UnixMicro()] = true
	}

	// Go: rows -> contributions, split in two states merged afterwards
	// (commits) and through the table's Arrow form (what a reload reads).
	rec := ordersRecord(orders)
	defer rec.Release()
	in, err := m.BindArrow(rec)
	if err != nil {
		t.Fatal(err)
	}
	a, b := m.NewState(), m.NewState()
	vals := make([]Value, len(m.Inputs))
	for i := range orders {
		if !in.Fill(i, vals) {
			t.Fatalf("row %d not read", i)
		}
		if c, ok := m.Contribute(vals); ok {
			if i%2 == 0 {
				a.Apply(c)
			} else {
				b.Apply(c)
			}
		}
	}
	sc, err := m.ArrowSchema()
	if err != nil {
		t.Fatal(err)
	}
	var rows []*Row
	b.Each(func(r *Row) { rows = append(rows, r) })
	trec, err := m.Record(rows, sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer trec.Release()
	if err := m.RowsOf(trec, "f", func(r *Row) { a.Merge(r) }); err != nil {
		t.Fatal(err)
	}
	got := map[string][]any{}
	a.Each(func(r *Row) {
		out := m.Output(r)
		got[fmt.Sprint(out[0], "|", out[1])] = out
	})

	// DuckDB: the same SQL over the same rows.
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, s := range []string{
		"SET TimeZone = 'UTC'",
		`CREATE TABLE orders (ts TIMESTAMPTZ, source VARCHAR, user_id VARCHAR, product_id VARCHAR, quantity BIGINT,
			amount DECIMAL(18,2), rating DOUBLE, gift BOOLEAN)`,
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	tx, _ := db.Begin()
	st, err := tx.Prepare("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?::DECIMAL(18,2), ?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range orders {
		var rating any
		if o.rating != nil {
			rating = *o.rating
		}
		if _, err := st.Exec(o.ts, o.source, o.user, o.product, o.quantity, decimal128.FromI64(o.amount).ToString(2), rating, o.gift); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	q := "SELECT strftime(b, '%Y-%m-%dT%H:%M:%SZ'), product_id, revenue::VARCHAR, n, rated, lo::VARCHAR, top, q, aa, rs, units::VARCHAR, rmin, " +
		"(SELECT count(DISTINCT user_id) FROM orders o2 WHERE time_bucket(INTERVAL '5 minutes', o2.ts) = m.b AND o2.product_id = m.product_id " +
		"AND source <> 'test' AND (quantity BETWEEN 2 AND 9 OR gift = true) AND (rating IS NULL OR rating >= 1.5)), " +
		"last_amount::VARCHAR, first_user, last_rating, epoch_us(last_ts), epoch_us(first_ts) FROM (" + model + ") m"
	rs, err := db.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	n := 0
	for rs.Next() {
		var (
			bucket, product, revenue, lo, top, units string
			lastAmount, firstUser                    string
			cnt, rated, exact, lastTs, firstTs       int64
			qavg, aavg                               float64
			rsum, rmin, lastRating                   sql.NullFloat64
		)
		if err := rs.Scan(&bucket, &product, &revenue, &cnt, &rated, &lo, &top, &qavg, &aavg, &rsum, &units, &rmin, &exact,
			&lastAmount, &firstUser, &lastRating, &lastTs, &firstTs); err != nil {
			t.Fatal(err)
		}
		n++
		key := bucket + "|" + product
		g, ok := got[key]
		if !ok {
			t.Errorf("Go lacks the row %s", key)
			continue
		}
		delete(got, key)
		approx := func(col string, gv any, want float64, tol float64) {
			var f float64
			switch x := gv.(type) {
			case string:
				f, _ = strconv.ParseFloat(x, 64)
			case float64:
				f = x
			}
			if math.Abs(f-want) > tol {
				t.Errorf("%s %s: Go %v, DuckDB %v", key, col, gv, want)
			}
		}
		eq := func(col string, gv, want any) {
			if fmt.Sprint(gv) != fmt.Sprint(want) {
				t.Errorf("%s %s: Go %v, DuckDB %v", key, col, gv, want)
			}
		}
		eq("revenue", g[2], revenue)
		eq("n", g[3], cnt)
		eq("rated", g[4], rated)
		eq("lo", g[5], lo)
		eq("top", g[6], top)
		approx("q", g[7], qavg, 1e-4)
		approx("aa", g[8], aavg, 1e-4)
		if rsum.Valid {
			approx("rs", g[9], rsum.Float64, 1e-9)
		} else if g[9] != nil {
			t.Errorf("%s rs: Go %v, DuckDB NULL", key, g[9])
		}
		eq("units", g[10], units)
		if rmin.Valid {
			approx("rmin", g[11], rmin.Float64, 0)
		} else if g[11] != nil {
			t.Errorf("%s rmin: Go %v, DuckDB NULL", key, g[11])
		}
		eq("last_amount", g[13], lastAmount)
		eq("first_user", g[14], firstUser)
		if lastRating.Valid {
			approx("last_rating", g[15], lastRating.Float64, 0)
		} else if g[15] != nil {
			t.Errorf("%s last_rating: Go %v, DuckDB NULL", key, g[15])
		}
		micros := func(v any) int64 {
			ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(v))
			if err != nil {
				t.Errorf("%s: %v is not a timestamp", key, v)
			}
			return ts.UnixMicro()
		}
		eq("last_ts", micros(g[16]), lastTs)
		eq("first_ts", micros(g[17]), firstTs)
		est := g[12].(uint64)
		if d := math.Abs(float64(est) - float64(exact)); d > math.Max(1, 0.05*float64(exact)) {
			t.Errorf("%s users: estimate %d, exactly %d", key, est, exact)
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Fatalf("only %d rows compared", n)
	}
	var extra []string
	for k := range got {
		extra = append(extra, k)
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("Go has rows DuckDB does not: %s", strings.Join(extra, ", "))
	}
}

// TestArgTies: arg_max keeps the value at the latest event time and, at
// equal times, the larger value (arg_min: the earliest, then the
// smaller), whatever the order events are applied and states merged in.
func TestArgTies(t *testing.T) {
	m, err := parse1(t, `SELECT time_bucket(INTERVAL '1 hour', ts) AS h, arg_max(quantity, ts) AS last, arg_min(quantity, ts) AS first,
		arg_max(user_id, ts) AS last_user FROM orders GROUP BY ALL`)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).UnixMicro()
	type ev struct {
		at   int64 // seconds after base
		q    int64
		user string
	}
	events := []ev{{5, 3, "b"}, {9, 4, "a"}, {9, 7, "c"}, {9, 1, ""}, {1, 8, "z"}, {1, 2, "y"}, {7, 0, "q"}}
	contrib := func(e ev) Contribution {
		vals := make([]Value, len(m.Inputs))
		for i, in := range m.Inputs {
			switch in.Input {
			case "ts":
				vals[i] = Value{I: base + e.at*1e6}
			case "quantity":
				vals[i] = Value{I: e.q}
			case "user_id":
				vals[i] = Value{B: []byte(e.user), Null: e.user == ""}
			}
		}
		c, ok := m.Contribute(vals)
		if !ok {
			t.Fatal("not counted")
		}
		return c
	}
	want := fmt.Sprint([]any{"2026-11-26T10:00:00Z", int64(7), int64(2), "c"})
	r := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		perm := r.Perm(len(events))
		split := r.IntN(len(events) + 1)
		a, b := m.NewState(), m.NewState()
		for i, j := range perm {
			if i < split {
				a.Apply(contrib(events[j]))
			} else {
				b.Apply(contrib(events[j]))
			}
		}
		b.Each(func(row *Row) { a.Merge(row) })
		var got string
		a.Each(func(row *Row) { got = fmt.Sprint(m.Output(row)) })
		if got != want {
			t.Fatalf("order %v split %d: %s, want %s", perm, split, got, want)
		}
	}
}
