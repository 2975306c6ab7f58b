package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/readmodel"
)

// hotStates answers declared models from states in memory the way the
// streamer's hot tier does (streamer.ModelAnswer): the committed rows
// merged with the hot ones, hot rows copied for the answer.
type hotStates map[string]*hotModel

type hotModel struct {
	m         *readmodel.Model
	cold, hot *readmodel.State
	offsets   lake.Offsets
	maxTs     int64
}

func (h hotStates) ModelAnswer(name string, q readmodel.Query) (readmodel.Answer, error) {
	md := h[name]
	if md == nil {
		return readmodel.Answer{}, readmodel.ErrNotMaintained
	}
	a := readmodel.Answer{Rows: md.m.Answer(q, md.cold, md.hot), SnapshotID: 7, HasSnapshot: true,
		Offsets: md.offsets.Clone(), Read: md.offsets.Clone(), Closed: md.m.Bucket.Of(md.maxTs - time.Minute.Microseconds())}
	for i, r := range a.Rows {
		if md.hot.Get(r.Key) == r {
			a.Rows[i] = r.Clone()
		}
	}
	return a, nil
}

func (h hotStates) ServeModelStream(w http.ResponseWriter, _ *http.Request, _ string) {
	http.Error(w, "no streams here", http.StatusNotImplemented)
}

// testModelSources are the columns of order.created as models read them
// (and a few more, for declarations of every aggregate and key type).
func testModelSources(name string) (readmodel.Source, bool) {
	return readmodel.Source{Type: "order.created", Columns: map[string]iceberg.Type{
		"amount": iceberg.DecimalTypeOf(18, 2), "user_id": iceberg.PrimitiveTypes.String,
		"product_id": iceberg.PrimitiveTypes.String, "quantity": iceberg.PrimitiveTypes.Int64,
		"rating": iceberg.PrimitiveTypes.Float64, "gift": iceberg.PrimitiveTypes.Bool, "units": iceberg.PrimitiveTypes.Int32,
	}}, name == "orders"
}

// dayOfModels fills the models with perMinute orders in every minute of
// the day from t0 (users and products drawn at random): the minutes
// before the last hot ones committed, those in the hot state, the
// minute before them in both (a commit that did not cover it all).
func dayOfModels(tb testing.TB, ms []*readmodel.Model, perMinute, hotMinutes int) hotStates {
	tb.Helper()
	out := hotStates{}
	rnd := rand.New(rand.NewPCG(3, 4))
	base := t0.UnixMicro()
	for _, m := range ms {
		md := &hotModel{m: m, cold: m.NewState(), hot: m.NewState(), offsets: lake.Offsets{}}
		md.offsets.Set("orders.created", 0, int64(1440*perMinute))
		vals := make([]readmodel.Value, len(m.Inputs))
		for minute := range 1440 {
			for i := range perMinute {
				ts := base + int64(minute)*60e6 + int64(i)*60e6/int64(perMinute)
				for j, in := range m.Inputs {
					switch in.Input {
					case lake.ColTs:
						vals[j] = readmodel.Value{I: ts}
					case "user_id":
						vals[j] = readmodel.Value{B: fmt.Appendf(nil, "u-%d", rnd.IntN(200_000))}
					case "product_id":
						vals[j] = readmodel.Value{B: fmt.Appendf(nil, "p-%d", rnd.IntN(12))}
					case "amount":
						vals[j] = readmodel.Value{D: decimal128.FromI64(100 + rnd.Int64N(100_000))}
					case "quantity":
						vals[j] = readmodel.Value{I: 1 + rnd.Int64N(5)}
					case "units":
						vals[j] = readmodel.Value{I: rnd.Int64N(3)}
					case "rating":
						if rnd.IntN(4) == 0 {
							vals[j] = readmodel.Value{Null: true}
						} else {
							vals[j] = readmodel.Value{F: float64(rnd.IntN(50)) / 10}
						}
					case "gift":
						vals[j] = readmodel.Value{I: int64(rnd.IntN(2))}
					default:
						vals[j] = readmodel.Value{Null: true}
					}
				}
				c, ok := m.Contribute(vals)
				if !ok {
					continue
				}
				switch {
				case minute >= 1440-hotMinutes:
					md.hot.Apply(c)
				case minute == 1440-hotMinutes-1 && i%2 == 1:
					md.hot.Apply(c)
				default:
					md.cold.Apply(c)
				}
				md.maxTs = ts
			}
		}
		out[m.Name] = md
	}
	return out
}

// startModels runs a service over an empty lake that answers the
// shipped models from a day of perMinute orders a minute.
func startModels(tb testing.TB, decls []readmodel.Declaration, perMinute int) (*harness, hotStates) {
	tb.Helper()
	ms, err := readmodel.Parse(context.Background(), decls, testModelSources)
	if err != nil {
		tb.Fatal(err)
	}
	hot := dayOfModels(tb, ms, perMinute, 3)
	l := newLake(tb)
	h := startWith(tb, l, nil, func(d *Deps) func(http.Handler) http.Handler {
		d.Models = ms
		return func(h http.Handler) http.Handler { return h }
	})
	h.svc.ServeHot(hot)
	return h, hot
}

// recordedAnswers keeps the last query and answer of a HotModels.
type recordedAnswers struct {
	HotModels
	q readmodel.Query
	a readmodel.Answer
}

func (r *recordedAnswers) ModelAnswer(name string, q readmodel.Query) (readmodel.Answer, error) {
	a, err := r.HotModels.ModelAnswer(name, q)
	r.q, r.a = q, a
	return a, err
}

// TestModelAnswerJSON: GET /v1/models/{name} answers the bytes
// json.Marshal writes for its ModelResponse (the rows as maps of column
// names to Output values), for every aggregate and key type, with
// group=, every= and key filters; the ETag follows the rows.
func TestModelAnswerJSON(t *testing.T) {
	decls := append(shippedOverOrders(), readmodel.Declaration{Name: "wide", SQL: `SELECT time_bucket(INTERVAL '5 minutes', ts) AS five,
		product_id, gift, quantity, count(*) AS n, count(rating) AS rated, sum(amount) AS revenue, sum(rating) AS rsum,
		sum(quantity) AS qsum, sum(units) AS usum, min(amount) AS lo, max(product_id) AS top, max(rating) AS hi,
		avg(amount) AS aov, avg(quantity) AS aq, avg(units) AS au, avg(rating) AS ar, approx_count_distinct(user_id) AS users,
		arg_max(amount, ts) AS last_amount, arg_min(product_id, ts) AS first_product, max(ts) AS last_ts
		FROM orders GROUP BY ALL`})
	h, hot := startModels(t, decls, 6)
	rec := &recordedAnswers{HotModels: hot}
	h.svc.ServeHot(rec)
	day := "from=" + t0.Format(time.RFC3339) + "&to=" + t0.Add(24*time.Hour).Format(time.RFC3339)
	for _, path := range []string{
		"/v1/models/order_revenue_minute?" + day,
		"/v1/models/order_metrics?" + day,
		"/v1/models/order_metrics?every=all&" + day,
		"/v1/models/product_revenue_hour?" + day,
		"/v1/models/product_revenue_hour?product_id=p-1&" + day,
		"/v1/models/product_revenue_hour?group=&every=3h&" + day,
		"/v1/models/wide?" + day,
		"/v1/models/wide?group=gift,product_id&every=1h&" + day,
		"/v1/models/wide?gift=true&quantity=3&" + day,
		"/v1/models/wide?every=all&group=&" + day,
		"/v1/models/order_metrics?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z", // no rows
		"/v1/models/order_metrics?from=" + t0.Add(30*time.Second).Format(time.RFC3339Nano) + "&to=" + t0.Add(90*time.Minute+time.Millisecond).Format(time.RFC3339Nano),
	} {
		resp, err := http.Get(h.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s %v", path, resp.StatusCode, body, err)
		}
		var got ModelResponse
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		m := h.svc.model(got.Model)
		res := ModelResponse{Model: m.Name, From: got.From, To: got.To, Offsets: rec.a.Offsets, Watermark: rec.a.Read,
			Columns: answerColumns(m, rec.q), Rows: make([]map[string]any, 0, len(rec.a.Rows)), ElapsedMs: got.ElapsedMs}
		if rec.a.HasSnapshot {
			id := strconv.FormatInt(rec.a.SnapshotID, 10)
			res.SnapshotID = &id
		}
		idx := columnIndexes(m, res.Columns)
		for _, row := range rec.a.Rows {
			vals := m.Output(row)
			obj := make(map[string]any, len(idx))
			for i, c := range idx {
				obj[res.Columns[i].Name] = vals[c]
			}
			res.Rows = append(res.Rows, obj)
		}
		if rec.a.Closed > 0 {
			res.ClosedBefore = time.UnixMicro(rec.a.Closed).UTC().Format(time.RFC3339Nano)
		}
		want, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		if want = append(want, '\n'); !bytes.Equal(body, want) {
			t.Errorf("%s:\n got %.600s\nwant %.600s", path, body, want)
		}
		if len(rec.a.Rows) == 0 && !strings.Contains(path, "2020") {
			t.Errorf("%s: no rows", path)
		}

		if strings.HasPrefix(path, "/v1/models/wide") {
			// Its doubles, merged in map order by group= and every=,
			// may differ in the last bit from one answer to the next.
			continue
		}
		etag := resp.Header.Get("ETag")
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
		req.Header.Set("If-None-Match", `"other", `+etag)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if etag == "" || resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s: revalidating ETag %s: %d", path, etag, resp.StatusCode)
		}
	}
	// A changed row changes the ETag.
	path := "/v1/models/order_metrics?" + day
	code, _ := h.get(path)
	before := etagOf(t, h, path)
	md := hot["order_metrics"]
	md.hot.Apply(readmodel.Contribution{Key: firstKey(md.hot), In: make([]readmodel.Value, len(md.m.Aggs))})
	if after := etagOf(t, h, path); code != http.StatusOK || after == before {
		t.Errorf("the ETag %s did not change with a row", after)
	}
}

func etagOf(t *testing.T, h *harness, path string) string {
	t.Helper()
	resp, err := http.Get(h.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("ETag")
}

func firstKey(st *readmodel.State) string {
	var k string
	st.Each(func(r *readmodel.Row) { k = r.Key })
	return k
}

// TestRevenueFromHotJSON: the revenue endpoint answers from the hot tier
// the bytes json.Marshal writes for its RevenueResponse, built from the
// model's Output: for the shipped declaration and for one whose revenue
// and order_count are other aggregates.
func TestRevenueFromHotJSON(t *testing.T) {
	for _, c := range []struct {
		sql  string
		rows bool // some minutes have orders
	}{
		{"", true}, // the shipped declaration
		// A sum of ints is a long, written as a string: no minute counts.
		{`SELECT time_bucket(INTERVAL '1 minute', ts) AS minute, sum(rating) AS revenue, sum(units) AS order_count FROM orders GROUP BY ALL`, false},
		{`SELECT time_bucket(INTERVAL '1 minute', ts) AS minute, max(product_id) AS revenue, count(rating) AS order_count FROM orders GROUP BY ALL`, true},
		{`SELECT time_bucket(INTERVAL '5 minutes', ts) AS minute, sum(amount) AS revenue, max(units) AS order_count FROM orders GROUP BY ALL`, true},
		{`SELECT time_bucket(INTERVAL '1 minute', ts) AS minute, count(*) AS n FROM orders GROUP BY ALL`, false},
	} {
		t.Run("", func(t *testing.T) {
			decls, err := readmodel.Resolve([]readmodel.Declaration{{Name: lake.TableOrderRevenueMinute, SQL: c.sql}})
			if err != nil {
				t.Fatal(err)
			}
			h, hot := startModels(t, decls, 4)
			rec := &recordedAnswers{HotModels: hot}
			h.svc.ServeHot(rec)
			md := hot[lake.TableOrderRevenueMinute]
			if c.sql == "" {
				// A minute whose orders were all erased is left out.
				md.cold.Set(&readmodel.Row{Key: firstKey(md.cold), Accs: make([]readmodel.Acc, len(md.m.Aggs))})
			}
			from, to := t0.Add(-time.Hour), t0.Add(25*time.Hour)
			path := "/v1/metrics/order_revenue_minute?from=" + from.Format(time.RFC3339) + "&to=" + to.Format(time.RFC3339)
			code, body := h.get(path)
			if code != http.StatusOK {
				t.Fatalf("%d %s", code, body)
			}
			var got RevenueResponse
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			// The answer as revenueFromHot wrote it before it wrote JSON itself.
			m, a := md.m, rec.a
			res := &RevenueResponse{From: from.Format(time.RFC3339Nano), To: to.Format(time.RFC3339Nano), Table: m.Name,
				Offsets: a.Offsets, Watermark: a.Read, Rows: []RevenueRow{}, ElapsedMs: got.ElapsedMs}
			if a.HasSnapshot {
				id := a.SnapshotID
				res.SnapshotID = &id
			}
			rev, cnt := m.AggIndex(lake.ColRevenue), m.AggIndex(lake.ColOrderCount)
			for _, r := range a.Rows {
				vals := m.Output(r)
				row := RevenueRow{Minute: time.UnixMicro(r.Bucket).UTC().Format(time.RFC3339), Revenue: "0.00"}
				if rev >= 0 {
					if v, ok := vals[1+len(m.Keys)+rev].(string); ok {
						row.Revenue = v
					}
				}
				if cnt >= 0 {
					row.OrderCount, _ = vals[1+len(m.Keys)+cnt].(int64)
				}
				if row.OrderCount == 0 {
					continue
				}
				res.Rows = append(res.Rows, row)
			}
			want, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			if want = append(want, '\n'); !bytes.Equal(body, want) {
				t.Errorf("got  %.600s\nwant %.600s", body, want)
			}
			if (len(res.Rows) > 0) != c.rows {
				t.Errorf("%d rows", len(res.Rows))
			}
		})
	}
}

// shippedOverOrders are the shipped declarations over orders, the source
// startModels knows.
func shippedOverOrders() []readmodel.Declaration {
	var out []readmodel.Declaration
	for _, d := range readmodel.Shipped() {
		if strings.Contains(d.SQL, "FROM orders") {
			out = append(out, d)
		}
	}
	return out
}
