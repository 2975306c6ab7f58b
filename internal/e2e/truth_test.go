package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventlake/eventlake/internal/dedupe"
	"github.com/eventlake/eventlake/schema"
)

// logEvent is one accepted event as the Kafka log holds it.
type logEvent struct {
	partition int32
	offset    int64
	minute    int64 // event-time minute (unix minutes)
	cents     int64
	isOrder   bool
	topic     string
	eventID   string
	// Orders' columns the declared read models read.
	ts                    int64 // event time, microseconds
	source, user, product string
	quantity              int64
}

// readLog reads every record of the topics from the broker with an
// independent client and applies eventlake's acceptance rules (the envelope
// decoder and the per-partition dedupe window) to tell which records are
// events: the ground truth that answers are checked against.
func readLog(t *testing.T, broker string, window int64, topics ...string) []logEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[int32]int64{}
	total := 0
	ends.Each(func(o kadm.ListedOffset) {
		if want[o.Topic] == nil {
			want[o.Topic] = map[int32]int64{}
		}
		want[o.Topic][o.Partition] = o.Offset
		total += int(o.Offset)
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	contract := schema.Contract{}
	contract.Defaults()
	var (
		out  []logEvent
		dec  = schema.NewDecoder(contract, schema.Fixed{S: schema.NewSet(schema.ShippedVersions(), nil)})
		ev   schema.Event
		dd   = dedupe.New(window)
		seen = 0
	)
	for seen < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of the log", seen, total)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			if dec.Decode(r.Value, r.Timestamp.UnixMicro(), &ev) != nil {
				return
			}
			if dd.Seen(dedupe.Key{Topic: r.Topic, Partition: r.Partition}, r.Offset, ev.EventID) {
				return
			}
			e := logEvent{partition: r.Partition, offset: r.Offset, minute: floorDiv(ev.TsMicros, 60_000_000),
				topic: r.Topic, eventID: string(ev.EventID), ts: ev.TsMicros, source: string(ev.Source)}
			if v := ev.Version; v != nil && v.Subject == "order.created" {
				amount, _ := ev.Decimal(v.Column("amount"))
				e.isOrder, e.cents = true, int64(amount.LowBits())
				user, _ := ev.String(v.Column("user_id"))
				product, _ := ev.String(v.Column("product_id"))
				e.user, e.product = string(user), string(product)
				e.quantity, _ = ev.Int(v.Column("quantity"))
			}
			out = append(out, e)
		})
	}
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// below says whether an event is below per-partition offsets given as
// {"partition": offset}.
func below(e logEvent, offsets map[string]int64) bool {
	o, ok := offsets[strconv.Itoa(int(e.partition))]
	return ok && e.offset < o
}
