package readmodel

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// TestAnswer: rows of two states (committed and hot) merge per key, in
// bucket and key order; key filters, group= and every= merge as asked.
func TestAnswer(t *testing.T) {
	m, err := parse1(t, `SELECT time_bucket(INTERVAL '1 minute', ts) AS minute, product_id,
		count(*) AS n, sum(amount) AS revenue, approx_count_distinct(user_id) AS users FROM orders GROUP BY ALL`)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).UnixMicro()
	cold, hot := m.NewState(), m.NewState()
	add := func(st *State, minute int, product, user string, cents int64) {
		vals := make([]Value, len(m.Inputs))
		for i, in := range m.Inputs {
			switch in.Input {
			case "ts":
				vals[i] = Value{I: base + int64(minute)*60e6 + 1}
			case "product_id":
				vals[i] = Value{B: []byte(product)}
			case "user_id":
				vals[i] = Value{B: []byte(user)}
			case "amount":
				vals[i] = Value{D: decimalOf(cents)}
			}
		}
		c, ok := m.Contribute(vals)
		if !ok {
			t.Fatal("not counted")
		}
		st.Apply(c)
	}
	add(cold, 0, "b", "u1", 100)
	add(cold, 0, "a", "u2", 250)
	add(hot, 0, "a", "u3", 50)
	add(hot, 1, "a", "u1", 10)
	add(cold, 2, "b", "u4", 1)
	show := func(q Query) string {
		var out []string
		for _, r := range m.Answer(q, cold, hot) {
			v := m.Output(r)
			out = append(out, fmt.Sprint(v[0].(string)[11:16], " ", v[1], " ", v[2], " ", v[3], " ", v[4]))
		}
		return fmt.Sprint(out)
	}
	all := Query{From: base, To: base + 3*60e6}
	for _, tc := range []struct {
		q    Query
		want string
	}{
		{all, "[10:00 a 2 3.00 2 10:00 b 1 1.00 1 10:01 a 1 0.10 1 10:02 b 1 0.01 1]"},
		{Query{From: base + 1, To: base + 3*60e6}, "[10:01 a 1 0.10 1 10:02 b 1 0.01 1]"},
		{Query{From: base, To: base + 3*60e6, Where: map[string]Value{"product_id": {B: []byte("a")}}}, "[10:00 a 2 3.00 2 10:01 a 1 0.10 1]"},
		{Query{From: base, To: base + 3*60e6, Group: []string{}}, "[10:00 <nil> 3 4.00 3 10:01 <nil> 1 0.10 1 10:02 <nil> 1 0.01 1]"},
		{Query{From: base, To: base + 3*60e6, Every: All}, "[10:00 a 3 3.10 3 10:00 b 2 1.01 2]"},
		{Query{From: base, To: base + 3*60e6, Every: All, Group: []string{}}, "[10:00 <nil> 5 4.11 4]"},
	} {
		if got := show(tc.q); got != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.q, got, tc.want)
		}
	}
	if err := m.CheckQuery(Query{Every: 90e6}); err == nil {
		t.Error("every=90s over 1-minute buckets was accepted")
	}
	if err := m.CheckQuery(Query{Group: []string{"nope"}}); err == nil {
		t.Error("group by a column that is not a key was accepted")
	}
}

func decimalOf(cents int64) decimal128.Num { return decimal128.FromI64(cents) }
