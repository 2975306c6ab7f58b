package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// TestBusyPartitionSplitsAcrossWorkers fills one hour partition with
// more than splitAfterChunks chunks in one batch: its rows go to two
// files, one per encoder worker, which together hold every row once.
func TestBusyPartitionSplitsAcrossWorkers(t *testing.T) {
	ctx := context.Background()
	cat := openCatalog(t, t.TempDir())
	set := schema.NewSet(schema.ShippedVersions(), nil)
	var c schema.Contract
	c.Defaults()
	dec := schema.NewDecoder(c, schema.Fixed{S: set})
	enc := startEncoder(t)
	w, err := newRawWriter("orders_raw", "orders.created", cat, nil, lake.EventFileOptions(256<<10), memory.DefaultAllocator, enc)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	const n = (splitAfterChunks+2)*chunkRows + 1000
	var ev schema.Event
	for i := range n {
		e := schema.Envelope{EventID: fmt.Sprintf("ev-%d", i), Source: "checkout", Type: "order.created",
			Timestamp: base.Add(time.Duration(i) * 10 * time.Millisecond),
			Payload:   fmt.Appendf(nil, `{"order_id":"o-%d","user_id":"u-%d","product_id":"p-%d","quantity":2,"amount":"19.98"}`, i, i%7, i%5)}
		recTs := base.Add(time.Hour).UnixMicro()
		if derr := dec.Decode(e.AppendJSON(nil), recTs, &ev); derr != nil {
			t.Fatal(derr)
		}
		if i == 0 {
			if err := w.prepare(ctx, ev.Version, schema.Fixed{S: set}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.addEvent(ctx, &ev, &schema.Coords{Topic: "orders.created", Offset: int64(i), Ingested: recTs}); err != nil {
			t.Fatal(err)
		}
	}
	w.closeOpen()
	enc.drain()
	files, err := w.finishFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("one busy partition in a batch was written to %d files, want 2 (one per worker)", len(files))
	}
	seen := map[string]int{}
	for _, df := range files {
		if got, want := fmt.Sprint(df.Partition()), fmt.Sprint(files[0].Partition()); got != want {
			t.Fatalf("files of one partition carry partition values %s and %s", got, want)
		}
		tbl, err := lake.ReadFile(ctx, w.tbl, df.FilePath())
		if err != nil {
			t.Fatal(err)
		}
		if tbl.NumRows() != df.Count() {
			t.Errorf("%s holds %d rows, its data file says %d", df.FilePath(), tbl.NumRows(), df.Count())
		}
		idx := tbl.Schema().FieldIndices(lake.ColEventID)[0]
		for _, ch := range tbl.Column(idx).Data().Chunks() {
			ids := ch.(*array.String)
			for i := range ids.Len() {
				seen[ids.Value(i)]++
			}
		}
		tbl.Release()
	}
	if len(seen) != n {
		t.Fatalf("the files hold %d distinct events, %d were added", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("event %s is in the files %d times", id, k)
		}
	}
	w.reset()
}
