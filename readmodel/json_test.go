package readmodel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"
)

// TestRowJSON: RowJSON writes the bytes json.Marshal writes for the map
// of a row's column names to its Output values, for every aggregate and
// key type, nulls, and keys left out.
func TestRowJSON(t *testing.T) {
	m, err := parse1(t, `SELECT time_bucket(INTERVAL '1 minute', ts) AS minute, product_id AS p, gift, quantity,
		count(*) AS n, count(rating) AS rated, sum(amount) AS revenue, sum(rating) AS rsum, sum(quantity) AS qsum,
		min(amount) AS lo, max(product_id) AS top, max(rating) AS hi, avg(amount) AS aov, avg(quantity) AS aq,
		avg(rating) AS ar, approx_count_distinct(user_id) AS users, arg_max(amount, ts) AS last_amount,
		arg_min(product_id, ts) AS first_product, max(ts) AS last_ts FROM orders GROUP BY ALL`)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	st := m.NewState()
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).UnixMicro()
	products := []string{"a", "é\u2028", "<b>&\"\\\n", "\xff", ""}
	add := func(n int) {
		for range n {
			vals := make([]Value, len(m.Inputs))
			for i, in := range m.Inputs {
				switch in.Input {
				case "ts":
					vals[i] = Value{I: base + r.Int64N(20*60e6) - 60e6}
				case "product_id":
					vals[i] = Value{B: []byte(products[r.IntN(len(products))])}
				case "user_id":
					vals[i] = Value{B: fmt.Appendf(nil, "u%d", r.IntN(500))}
				case "gift":
					vals[i] = Value{I: int64(r.IntN(2))}
				case "quantity":
					vals[i] = Value{I: r.Int64N(7) - 3}
				case "amount":
					vals[i] = Value{D: decimalOf(r.Int64N(2_000_000) - 200_000)}
				case "rating":
					switch r.IntN(5) {
					case 0:
						vals[i] = Value{Null: true}
					case 1:
						vals[i] = Value{F: r.Float64() * 1e-9}
					default:
						vals[i] = Value{F: r.NormFloat64() * 1e22}
					}
				}
				if r.IntN(20) == 0 && in.Input != "ts" {
					vals[i] = Value{Null: true}
				}
			}
			if c, ok := m.Contribute(vals); ok {
				st.Apply(c)
			}
		}
	}
	add(3000)
	cols := m.OutColumns()
	check := func() {
		for _, outs := range [][]int{allColumns(len(cols)), {0, 2, 5, 7, 15}, {9}, allColumns(len(cols))} {
			enc := m.RowJSON(outs)
			n := 0
			st.Each(func(row *Row) {
				vals := m.Output(row)
				obj := map[string]any{}
				for _, o := range outs {
					obj[cols[o].Name] = vals[o]
				}
				want, err := json.Marshal(obj)
				if err != nil {
					t.Fatal(err)
				}
				got, err := enc.Append([]byte("x"), row)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[1:], want) || got[0] != 'x' {
					t.Fatalf("row %x:\n got %s\nwant %s", row.Key, got[1:], want)
				}
				n++
			})
			if n < 100 {
				t.Fatalf("%d rows", n)
			}
		}
	}
	check()
	// The rows encoded (and cached) change: their answers follow.
	add(1000)
	check()
	st.Each(func(r *Row) { st.Merge(r.Clone()) })
	check()
	// A double JSON cannot hold fails as json.Marshal does.
	row := m.EmptyRow(string(m.appendKey(nil, base, make([]Value, len(m.Inputs)))))
	i := m.AggIndex("rsum")
	row.Accs[i] = Acc{Set: true, F: math.Inf(1)}
	if _, err := m.RowJSON([]int{1 + len(m.Keys) + i}).Append(nil, row); err == nil {
		t.Error("an infinite sum was encoded")
	}
}

func allColumns(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestAppendDecimal: the same text as decimal128's ToString, at every
// scale, for 64-bit values and wider ones.
func TestAppendDecimal(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	vals := []decimal128.Num{{}, decimal128.FromI64(1), decimal128.FromI64(-1), decimal128.FromI64(math.MaxInt64),
		decimal128.FromI64(math.MinInt64), decimal128.FromU64(math.MaxUint64), decimal128.FromU64(math.MaxUint64).Negate(),
		decimal128.New(math.MaxInt64, math.MaxUint64), decimal128.New(math.MinInt64, 0)}
	for range 3000 {
		vals = append(vals, decimal128.FromI64(r.Int64N(1<<uint(r.IntN(62)+1))-r.Int64N(1<<40)),
			decimal128.New(r.Int64N(1<<20)-1<<19, r.Uint64()))
	}
	for _, v := range vals {
		for _, scale := range []int32{0, 1, 2, 4, 6, 18, 19, 20, 38} {
			want := v.ToString(scale)
			if got := string(appendDecimal(nil, v, scale)); got != want {
				t.Fatalf("%v at scale %d: got %s, want %s", v, scale, got, want)
			}
		}
	}
}

// TestAvgDecimal: the 64-bit division rounds as the exact one does.
func TestAvgDecimal(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	exact := avgBig // the slow path, checked against the 64-bit one
	dec := iceberg.DecimalTypeOf(18, 2)
	for i := range 20000 {
		sum := decimal128.FromI64(r.Int64N(1<<uint(r.IntN(62)+1)) - r.Int64N(1<<uint(r.IntN(50)+1)))
		n := 1 + r.Int64N(1<<uint(r.IntN(40)+1))
		switch i {
		case 0:
			sum, n = decimal128.FromI64(5), 2 // a half, up
		case 1:
			sum, n = decimal128.FromI64(-5), 2 // and away from zero
		case 2:
			sum, n = decimal128.FromI64(math.MaxInt64/10_000+1), 3 // too wide for 64 bits
		case 3:
			sum, n = decimal128.FromI64(-1), math.MaxInt64
		}
		want := exact(sum, n, AvgExtraScale)
		if got := avgDecimal(dec, Acc{Set: true, N: n, D: sum}); got != want {
			t.Fatalf("%v / %d: got %v, want %v", sum.BigInt(), n, got.BigInt(), want.BigInt())
		}
	}
}

// TestAppendJSONValues: strings and doubles as json.Marshal writes them.
func TestAppendJSONValues(t *testing.T) {
	for _, s := range []string{"", "plain", "a\"b\\c", "<script>&amp;", "\x00\x01\b\f\n\r\t\x1f", "é ü 日本", "\u2028\u2029", "\xff\xfe", "a\x7fb"} {
		want, _ := json.Marshal(s)
		if got := AppendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
	r := rand.New(rand.NewPCG(11, 12))
	fs := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99e-7, 1e21, 9.99e20, 1e-7, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64}
	for range 5000 {
		fs = append(fs, r.NormFloat64()*math.Pow(10, float64(r.IntN(60)-30)))
	}
	for _, f := range fs {
		want, _ := json.Marshal(f)
		got, err := appendFloatJSON(nil, f)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%v: got %s (%v), want %s", f, got, err, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := appendFloatJSON(nil, f); err == nil {
			t.Errorf("%v encoded", f)
		}
	}
}
