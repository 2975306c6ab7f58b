package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventlake/eventlake/internal/broker"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// startBroker starts eventlake's embedded broker (kfake, a Kafka-protocol
// server) on a free loopback port with the given topics.
func startBroker(t *testing.T, topics ...string) []string {
	t.Helper()
	cfg := broker.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Topics: []broker.Topic{}}
	for _, name := range topics {
		cfg.Topics = append(cfg.Topics, broker.Topic{Name: name, Partitions: 3})
	}
	b, err := broker.Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return []string{b.Addr()}
}

func openCatalog(t testing.TB, dir string) *lake.Catalog {
	t.Helper()
	cfg := lake.Config{}
	cfg.Defaults(dir)
	cat, err := lake.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat
}

func orderEvent(i int, ts time.Time) []byte {
	payload := fmt.Appendf(nil, `{"order_id":"o-%d","user_id":"u-%d","product_id":"p-%d","quantity":%d,"amount":`, i, i%7, i%5, 1+i%3)
	payload = schema.AppendDecimal2(payload, int64(100+i))
	payload = append(payload, '}')
	e := schema.Envelope{EventID: fmt.Sprintf("ev-%d", i), Source: "test", Type: "order.created",
		Timestamp: ts, Payload: payload, Metadata: schema.Metadata{TraceID: "t", SpanID: "s"}}
	return e.AppendJSON(nil)
}

func produce(t *testing.T, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func scanCount(t *testing.T, cat *lake.Catalog, name string) (rows int, distinct int) {
	t.Helper()
	tbl, err := cat.LoadTable(context.Background(), name)
	if errors.Is(err, icecat.ErrNoSuchTable) {
		return 0, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	if tbl.CurrentSnapshot() == nil {
		return 0, 0
	}
	at, err := tbl.Scan().ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	seen := map[string]bool{}
	idx := at.Schema().FieldIndices(lake.ColEventID)
	if len(idx) == 0 {
		return int(at.NumRows()), 0
	}
	for _, ch := range at.Column(idx[0]).Data().Chunks() {
		s := ch.(*array.String)
		for i := 0; i < s.Len(); i++ {
			seen[s.Value(i)] = true
		}
	}
	return int(at.NumRows()), len(seen)
}

func TestIngestExactlyOnceAcrossRestart(t *testing.T) {
	brokers := startBroker(t, "orders.created", "inventory.updated")
	dir := t.TempDir()
	cat := openCatalog(t, dir)
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

	var recs []*kgo.Record
	for i := range 300 {
		recs = append(recs, &kgo.Record{Topic: "orders.created", Key: fmt.Appendf(nil, "k%d", i), Value: orderEvent(i, base.Add(time.Duration(i)*time.Second))})
	}
	// a producer retry (same event id, new offset) and malformed input
	recs = append(recs, &kgo.Record{Topic: "orders.created", Key: []byte("k5"), Value: orderEvent(5, base.Add(5*time.Second))})
	recs = append(recs, &kgo.Record{Topic: "orders.created", Value: []byte("not json")})
	recs = append(recs, &kgo.Record{Topic: "orders.created", Value: []byte(`[1,2]`)})
	produce(t, brokers, recs...)

	run := func(wantRaw, wantDLQ int) {
		ctx, cancel := context.WithCancel(context.Background())
		cfg := Config{FlushInterval: 100 * time.Millisecond}
		ing, err := New(cfg, Deps{Catalog: cat, Codecs: schema.Fixed{S: schema.NewSet(schema.ShippedVersions(), nil)}, KafkaOpts: []kgo.Opt{kgo.SeedBrokers(brokers...)},
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			t.Fatal(err)
		}
		if ing.Ready() == nil {
			t.Fatal("ready before Run")
		}
		done := make(chan error, 1)
		go func() { done <- ing.Run(ctx) }()
		deadline := time.Now().Add(20 * time.Second)
		for {
			rows, _ := scanCount(t, cat, "orders_raw")
			dl, _ := scanCount(t, cat, "dlq")
			if rows >= wantRaw && dl >= wantDLQ {
				if err := ing.Ready(); err != nil {
					t.Fatalf("not ready while committing: %v", err)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out: raw=%d/%d dlq=%d/%d", rows, wantRaw, dl, wantDLQ)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if ing.Ready() == nil {
			t.Fatal("ready after Run returned")
		}
	}
	run(300, 2)
	rows, distinct := scanCount(t, cat, "orders_raw")
	if rows != 300 || distinct != 300 {
		t.Fatalf("orders_raw rows=%d distinct=%d, want 300/300", rows, distinct)
	}
	if dl, _ := scanCount(t, cat, "dlq"); dl != 2 {
		t.Fatalf("dlq rows = %d, want 2", dl)
	}

	// More data after a restart, including a retry of an event committed
	// before the restart: the dedupe window is warmed from the lake.
	produce(t, brokers,
		&kgo.Record{Topic: "orders.created", Value: orderEvent(300, base)},
		&kgo.Record{Topic: "orders.created", Key: []byte("k7"), Value: orderEvent(7, base)}, // a retry keeps its key
		&kgo.Record{Topic: "orders.created", Value: []byte{0xff, 0xfe}},
	)
	run(301, 3)
	rows, distinct = scanCount(t, cat, "orders_raw")
	if rows != 301 || distinct != 301 {
		t.Fatalf("after restart rows=%d distinct=%d, want 301/301", rows, distinct)
	}
	if dl, _ := scanCount(t, cat, "dlq"); dl != 3 {
		t.Fatalf("dlq rows after restart = %d, want 3", dl)
	}
	tbl, _ := cat.LoadTable(context.Background(), "orders_raw")
	off, err := lake.StoredOffsets(tbl)
	if err != nil {
		t.Fatal(err)
	}
	if got := off.Total(); got != int64(len(recs)+3) {
		t.Fatalf("stored offsets total %d, want %d (every record consumed)", got, len(recs)+3)
	}
	// The source counts are committed with the rows: exact across the
	// restart, duplicates and dead letters not counted.
	if sources, other := lake.SourcesOf(tbl.Properties()); len(sources) != 1 || sources[0].Source != "test" ||
		sources[0].Events != 301 || other.Events != 0 {
		t.Fatalf("sources %+v (other %+v), want test with 301 events", sources, other)
	}

}
