package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/schema"
)

const paymentV1 = `{"type":"object","properties":{
  "payment_id":{"type":"string","minLength":1},
  "order_id":{"type":"string"},
  "amount":{"type":["number","string"],"x-eventlake-type":"decimal(12,2)","minimum":0},
  "card":{"type":"object","properties":{"brand":{"type":"string"},"last4":{"type":"string"}}}},
  "required":["payment_id","amount"]}`

// v2 adds an optional property: BACKWARD compatible.
const paymentV2 = `{"type":"object","properties":{
  "payment_id":{"type":"string","minLength":1},
  "order_id":{"type":"string"},
  "amount":{"type":["number","string"],"x-eventlake-type":"decimal(12,2)","minimum":0},
  "card":{"type":"object","properties":{"brand":{"type":"string"},"last4":{"type":"string"}}},
  "method":{"type":"string","enum":["card","wire","wallet"]}},
  "required":["payment_id","amount"]}`

// v3 changes amount's type: refused.
const paymentV3 = `{"type":"object","properties":{
  "payment_id":{"type":"string","minLength":1},
  "amount":{"type":"string"}},
  "required":["payment_id","amount"]}`

const refundAvro = `{"type":"record","name":"Refund","namespace":"shop","fields":[
  {"name":"refund_id","type":"string"},
  {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
  {"name":"reason","type":["null","string"],"default":null}]}`

// TestSchemaEvolution runs `eventlake dev` and, as a team would, registers
// a new event type with franz-go's schema registry client, creates its
// topic, and produces v1 events with kcat: they appear in SQL with typed
// columns (a nested object flattened) in a table ingest creates on the
// first event. A BACKWARD-compatible v2 (a new optional property) is
// registered while ingest runs and v2 events follow: the new column is
// added to the table, v1 rows read null, nothing is lost or doubled, no
// restart. An incompatible v3 is refused with 409. Values framed the
// Confluent way decode with their schema id (JSON Schema, and Avro on
// another topic); a frame with an unknown id is a dead letter.
func TestSchemaEvolution(t *testing.T) {
	kcat := th.Kcat(t)
	dir := t.TempDir()
	dev := th.Start(t, "dev", []string{
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=200ms",
		"EVENTLAKE_INGEST_TOPIC_REFRESH=500ms",
		"EVENTLAKE_STREAMER_TOPIC_REFRESH=500ms",
		"EVENTLAKE_QUERY_REFRESH_INTERVAL=100ms",
		"EVENTLAKE_SCHEMA_REGISTRY_POLL_INTERVAL=200ms",
	}, "dev", "--no-demo", "--data-dir", filepath.Join(dir, "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	broker, api := dev.Ready["kafka"], "http://"+dev.Ready["http"]
	ctx := context.Background()

	rcl, err := sr.NewClient(sr.URLs(api), sr.BearerToken(th.Token(api)))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := rcl.CreateSchema(ctx, "payment.captured", sr.Schema{Schema: paymentV1, Type: sr.TypeJSON})
	if err != nil {
		t.Fatalf("register v1: %v", err)
	}
	if got, err := rcl.SchemaByID(ctx, v1.ID); err != nil || got.Type != sr.TypeJSON || !strings.Contains(got.Schema, "payment_id") {
		t.Fatalf("read v1 back by id %d: %+v %v", v1.ID, got, err)
	}
	if got, err := rcl.SchemaByVersion(ctx, "payment.captured", 1); err != nil || got.ID != v1.ID {
		t.Fatalf("read v1 back by subject: %+v %v", got, err)
	}

	kcl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	created := time.Now()
	// The topic the way the README creates it; a second create is no error.
	for range 2 {
		out, err := th.Command(t, "topic", "create", "payments.captured", "--partitions", "3", "--brokers", broker).CombinedOutput()
		if err != nil {
			t.Fatalf("eventlake topic create: %v\n%s", err, out)
		}
	}
	if td, err := adm.ListTopics(ctx, "payments.captured"); err != nil || len(td["payments.captured"].Partitions) != 3 {
		t.Fatalf("payments.captured after eventlake topic create: %v %v", td, err)
	}

	ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	payment := func(id string, payload string, meta string) string {
		s := `{"event_id":"` + id + `","source":"payments","type":"payment.captured","timestamp":"` + ts + `","payload":` + payload
		if meta != "" {
			s += `,"metadata":` + meta
		}
		return s + `}`
	}
	var v1Lines bytes.Buffer
	for i := range 30 {
		fmt.Fprintf(&v1Lines, "o-%d\t%s\n", i, payment(fmt.Sprintf("pay-%d", i),
			fmt.Sprintf(`{"payment_id":"p%d","order_id":"o-%d","amount":"%d.50","card":{"brand":"visa","last4":"42%02d"}}`, i, i, i, i), ""))
	}
	produceLines(t, kcat, broker, "payments.captured", dir, v1Lines.Bytes())

	th.Eventually(t, 60*time.Second, "v1 events in SQL with typed columns", func() (bool, string) {
		r, code := th.TrySQL(t, api, "SELECT count(*), sum(amount), count(card_brand) FROM payment_captured")
		if code != 200 {
			return false, fmt.Sprintf("HTTP %d %s", code, r.Error)
		}
		return fmt.Sprint(r.Rows[0]) == "[30 450.00 30]", fmt.Sprint(r.Rows[0])
	})
	t.Logf("a new topic's events were queryable %v after the topic was created", time.Since(created).Round(100*time.Millisecond))
	r := th.SQL(t, api, "SELECT payment_id, amount, card_last4 FROM payments_captured WHERE payment_id = 'p7'")
	if fmt.Sprint(r.Rows) != "[[p7 7.50 4207]]" || r.Types[1] != "DECIMAL(12,2)" {
		t.Fatalf("typed columns: %v %v", r.Rows, r.Types)
	}

	// v2 while ingest runs; v3 refused.
	const polls = `eventlake_schema_registry_reads_total{cause="poll"}`
	registered := metric(t, dev, polls)
	v2, err := rcl.CreateSchema(ctx, "payment.captured", sr.Schema{Schema: paymentV2, Type: sr.TypeJSON})
	if err != nil || v2.Version != 2 {
		t.Fatalf("register a compatible v2: %+v %v", v2, err)
	}
	_, err = rcl.CreateSchema(ctx, "payment.captured", sr.Schema{Schema: paymentV3, Type: sr.TypeJSON})
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 409 || !strings.Contains(re.Message, "amount") {
		t.Fatalf("an incompatible v3: %v, want 409 naming the field", err)
	}
	// The unpinned v2 events are decoded with the latest version the
	// process has loaded: wait for three poll requests after v2 was
	// registered. Polls run one after another, each a generation read and
	// (when it changed) a versions read, so by the third request a poll
	// that read the registry after the registration has installed v2.
	th.Eventually(t, 30*time.Second, "three registry poll requests after v2 was registered", func() (bool, string) {
		n := metric(t, dev, polls)
		return n >= registered+3, fmt.Sprint(n - registered)
	})

	var v2Lines bytes.Buffer
	for i := 30; i < 50; i++ {
		meta := ""
		if i%2 == 0 {
			meta = `{"schema_version":2}` // pinned; the others take the latest
		}
		fmt.Fprintf(&v2Lines, "o-%d\t%s\n", i, payment(fmt.Sprintf("pay-%d", i),
			fmt.Sprintf(`{"payment_id":"p%d","order_id":"o-%d","amount":"%d.50","method":"wire"}`, i, i, i), meta))
	}
	produceLines(t, kcat, broker, "payments.captured", dir, v2Lines.Bytes())
	// A v2 event framed with v2's schema id, and one framed with an id the
	// registry does not have (binary frames: produced with franz-go).
	if err := kcl.ProduceSync(ctx,
		&kgo.Record{Topic: "payments.captured", Key: []byte("o-framed"),
			Value: frameValue(v2.ID, []byte(payment("pay-framed", `{"payment_id":"pf","amount":1,"method":"wallet"}`, "")))},
		&kgo.Record{Topic: "payments.captured", Key: []byte("o-bad"),
			Value: frameValue(9999, []byte(payment("pay-bad", `{"payment_id":"pb","amount":1}`, "")))},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}

	th.Eventually(t, 60*time.Second, "v2 events with the new column", func() (bool, string) {
		r, code := th.TrySQL(t, api, "SELECT count(*), count(DISTINCT event_id), count(method), sum(amount) FROM payment_captured")
		if code != 200 {
			return false, fmt.Sprintf("HTTP %d %s", code, r.Error)
		}
		return fmt.Sprint(r.Rows[0]) == "[51 51 21 1251.00]", fmt.Sprint(r.Rows[0])
	})
	r = th.SQL(t, api, "SELECT count(*) FROM payment_captured WHERE method IS NULL AND payment_id IN (SELECT 'p' || i FROM range(30) t(i))")
	if fmt.Sprint(r.Rows[0][0]) != "30" {
		t.Fatalf("v1 rows read null in the new column: %v", r.Rows)
	}
	th.Eventually(t, 30*time.Second, "the frame with an unknown id in the dead-letter table", func() (bool, string) {
		r, code := th.TrySQL(t, api, "SELECT reason, subject FROM dlq")
		if code != 200 {
			return false, fmt.Sprintf("HTTP %d %s", code, r.Error)
		}
		return fmt.Sprint(r.Rows) == "[[unknown_schema_id <nil>]]", fmt.Sprint(r.Rows)
	})

	// Avro: a type registered with an Avro schema; values framed in Avro
	// binary with the documented envelope schema.
	rv, err := rcl.CreateSchema(ctx, "refund.issued", sr.Schema{Schema: refundAvro, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "refunds.issued"); err != nil {
		t.Fatal(err)
	}
	envSchema, err := avro.Parse(schema.AvroEnvelopeSchema(refundAvro))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range 5 {
		body, err := avro.Marshal(envSchema, map[string]any{
			"event_id": fmt.Sprintf("refund-%d", i), "source": "payments", "type": "refund.issued",
			"timestamp": time.Now().Add(-time.Minute),
			"payload":   map[string]any{"refund_id": fmt.Sprintf("r%d", i), "amount": big.NewRat(int64(100*i+5), 100), "reason": nil},
			"metadata":  nil,
		})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "refunds.issued", Value: frameValue(rv.ID, body)})
	}
	if err := kcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	th.Eventually(t, 60*time.Second, "Avro-framed refunds in SQL", func() (bool, string) {
		r, code := th.TrySQL(t, api, "SELECT count(*), sum(amount), count(reason) FROM refund_issued")
		if code != 200 {
			return false, fmt.Sprintf("HTTP %d %s", code, r.Error)
		}
		return fmt.Sprint(r.Rows[0]) == "[5 10.25 0]", fmt.Sprint(r.Rows[0])
	})
	if err := dev.Stop(30 * time.Second); err != nil {
		t.Fatalf("dev did not shut down cleanly: %v", err)
	}
}

// frameValue frames a value the Confluent way: magic byte 0, the schema
// id (4 bytes, big-endian), the record.
func frameValue(id int, body []byte) []byte {
	b := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(id))
	return append(b, body...)
}

// produceLines produces "key\tvalue" lines with kcat.
func produceLines(t *testing.T, kcat, broker, topic, dir string, lines []byte) {
	t.Helper()
	f, err := os.CreateTemp(dir, "lines-*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(lines); err != nil {
		t.Fatal(err)
	}
	f.Close()
	runKcat(t, kcat, nil, "-b", broker, "-t", topic, "-P", "-K", "\t", "-l", f.Name())
}
