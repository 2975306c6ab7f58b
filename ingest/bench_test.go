package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// BenchmarkAddEvent times ingest's per-event work on an accepted event:
// decode, then add its row to the batch (Arrow builders; the encoder
// goroutines write Parquet beside it), with events from 8 sources. A
// batch is closed every 64 Ki events, as a flush would.
func BenchmarkAddEvent(b *testing.B) {
	ctx := context.Background()
	cat := openCatalog(b, b.TempDir())
	set := schema.NewSet(schema.ShippedVersions(), nil)
	var c schema.Contract
	c.Defaults()
	dec := schema.NewDecoder(c, schema.Fixed{S: set})
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	msgs := make([][]byte, 64)
	for i := range msgs {
		e := schema.Envelope{EventID: fmt.Sprintf("ev-%d", i), Source: fmt.Sprintf("checkout-service-%d", i%8), Type: "order.created",
			Timestamp: base.Add(time.Duration(i) * time.Second),
			Payload:   fmt.Appendf(nil, `{"order_id":"o-%d","user_id":"u-%d","product_id":"p-%d","quantity":2,"amount":"19.98"}`, i, i%7, i%5)}
		msgs[i] = e.AppendJSON(nil)
	}
	enc := startEncoder(b)
	w, err := newRawWriter("orders_raw", "orders.created", cat, nil, lake.FileOptions{}, memory.DefaultAllocator, enc)
	if err != nil {
		b.Fatal(err)
	}
	recTs := base.Add(time.Hour).UnixMicro()
	var ev schema.Event
	if derr := dec.Decode(msgs[0], recTs, &ev); derr != nil {
		b.Fatal(derr)
	}
	if err := w.prepare(ctx, ev.Version, schema.Fixed{S: set}); err != nil {
		b.Fatal(err)
	}
	flush := func() {
		w.closeOpen()
		enc.drain()
		if _, err := w.finishFiles(); err != nil {
			b.Fatal(err)
		}
		w.reset()
	}
	k := schema.Coords{Topic: "orders.created", Ingested: recTs}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if derr := dec.Decode(msgs[i%len(msgs)], recTs, &ev); derr != nil {
			b.Fatal(derr)
		}
		k.Offset = int64(i)
		if err := w.addEvent(ctx, &ev, &k); err != nil {
			b.Fatal(err)
		}
		if i++; i%(64<<10) == 0 {
			flush()
		}
	}
	b.StopTimer()
	flush()
}

// startEncoder runs an encoder of two workers until the test ends.
func startEncoder(tb testing.TB) *encoder {
	enc := newEncoder(2, 2)
	var wg sync.WaitGroup
	for i := range enc.workers {
		wg.Go(func() { enc.run(i) })
	}
	tb.Cleanup(func() { enc.close(); wg.Wait() })
	return enc
}

// BenchmarkCountSource times what counting sources adds per event.
func BenchmarkCountSource(b *testing.B) {
	srcs := make([][]byte, 8)
	for i := range srcs {
		srcs[i] = fmt.Appendf(nil, "checkout-service-%d", i)
	}
	var c sourceCounter
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.add(srcs[i&7])
		i++
	}
}
