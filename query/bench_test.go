package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/lake"
)

// fillOrders commits n order.created rows spread evenly over span from
// t0, in commits appends (one file per commit and hour, as ingest writes).
func fillOrders(b *testing.B, l *testLake, n, commits int, span time.Duration) int64 {
	b.Helper()
	ctx := context.Background()
	var sid int64
	per := n / commits
	step := span / time.Duration(n)
	for c := range commits {
		tbl, err := l.cat.LoadTable(ctx, "orders_raw")
		if err != nil {
			b.Fatal(err)
		}
		sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
		if err != nil {
			b.Fatal(err)
		}
		rb := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		for i, f := range sc.Fields() {
			fb := rb.Field(i)
			for j := range per {
				k := c + j*commits // interleave commits over the whole span
				ts := arrow.Timestamp(t0.Add(time.Duration(k) * step).UnixMicro())
				switch f.Name {
				case lake.ColEventID, "order_id":
					fb.(*array.StringBuilder).Append(fmt.Sprintf("o-%d", k))
				case lake.ColSource, "user_id", "product_id":
					fb.(*array.StringBuilder).Append("x")
				case lake.ColType:
					fb.(*array.StringBuilder).Append("order.created")
				case lake.ColPayload:
					fb.(*array.StringBuilder).Append(`{"order_id":"o"}`)
				case lake.ColKafkaTopic:
					fb.(*array.StringBuilder).Append("orders.created")
				case lake.ColTs, lake.ColIngestedAt, lake.ColKafkaTimestamp:
					fb.(*array.TimestampBuilder).Append(ts)
				case lake.ColKafkaPartition:
					fb.(*array.Int32Builder).Append(0)
				case lake.ColKafkaOffset, "quantity":
					fb.(*array.Int64Builder).Append(int64(k))
				case "amount":
					fb.(*array.Decimal128Builder).Append(decimal128.FromI64(int64(100 + k%10000)))
				default:
					fb.AppendNull()
				}
			}
		}
		rec := rb.NewRecordBatch()
		rb.Release()
		rdr, err := array.NewRecordReader(sc, []arrow.RecordBatch{rec})
		if err != nil {
			b.Fatal(err)
		}
		tx := tbl.NewTransaction()
		if err := tx.Append(ctx, rdr, iceberg.Properties{}); err != nil {
			b.Fatal(err)
		}
		nt, err := tx.Commit(ctx)
		if err != nil {
			b.Fatal(err)
		}
		rdr.Release()
		rec.Release()
		sid = nt.CurrentSnapshot().SnapshotID
	}
	return sid
}

// BenchmarkOrderRevenueMinute measures GET /v1/metrics/order_revenue_minute
// over 1M orders spread over one day (4 commits, 96 files), through HTTP.
func BenchmarkOrderRevenueMinute(b *testing.B) {
	l := newLake(b)
	l.orders()
	sid := fillOrders(b, l, 1_000_000, 4, 24*time.Hour)
	h := start(b, l, nil)
	h.waitSnapshot("orders_raw", sid)
	for _, c := range []struct {
		name string
		span time.Duration
	}{{"1h", time.Hour}, {"6h", 6 * time.Hour}, {"24h", 24 * time.Hour}} {
		b.Run(c.name, func(b *testing.B) {
			url := fmt.Sprintf("/v1/metrics/order_revenue_minute?from=%s&to=%s",
				t0.Add(3*time.Hour).Format(time.RFC3339), t0.Add(3*time.Hour+c.span).Format(time.RFC3339))
			for b.Loop() {
				code, body := h.get(url)
				if code != http.StatusOK {
					b.Fatalf("%d %s", code, body)
				}
				var rr RevenueResponse
				if err := json.Unmarshal(body, &rr); err != nil {
					b.Fatal(err)
				}
				if len(rr.Rows) == 0 {
					b.Fatal("no rows")
				}
			}
		})
	}
	// The whole day through /v1/sql and the orders view, for comparison:
	// bucketing with date_trunc and with epoch_us arithmetic.
	for name, q := range map[string]string{
		"sql_date_trunc_24h": `SELECT date_trunc('minute', ts) AS minute, sum(amount), count(*) FROM orders GROUP BY 1 ORDER BY 1`,
		"sql_epoch_us_24h":   `SELECT epoch_us(ts) // 60000000 AS minute, sum(amount), count(*) FROM orders GROUP BY 1 ORDER BY 1`,
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if r := h.sql(q); r.status != http.StatusOK {
					b.Fatalf("%d %s", r.status, r.raw)
				}
			}
		})
	}
}
