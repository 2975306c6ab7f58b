package schema

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/hamba/avro/v2"
	_ "modernc.org/sqlite"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema/registry"
)

// decoderOf decodes with the given versions.
func decoderOf(t *testing.T, vs ...registry.Version) *Decoder {
	t.Helper()
	set := NewSet(vs, nil)
	for _, sub := range set.Subjects() {
		for v, err := range sub.errs {
			t.Fatalf("%s v%d does not compile: %v", sub.Name, v, err)
		}
	}
	c := Contract{}
	c.Defaults()
	return NewDecoder(c, Fixed{set})
}

func jsonVersion(subject string, version, id int, schema string) registry.Version {
	return registry.Version{Subject: subject, Version: version, ID: id, Type: registry.TypeJSON, Schema: schema}
}

func event(typ, payload string, meta ...string) []byte {
	over := []string{"type", `"` + typ + `"`, "payload", payload}
	if len(meta) > 0 {
		over = append(over, "metadata", meta[0])
	}
	return env(over...)
}

// rawTable is the Arrow schema of a raw table holding the given subjects.
func rawTable(t *testing.T, subs ...*Subject) *arrow.Schema {
	t.Helper()
	var typed []iceberg.NestedField
	for _, s := range subs {
		for _, c := range s.Columns {
			typed = append(typed, c.NestedField())
		}
	}
	def := lake.RawTableDef("t", "topic", typed, nil)
	sc, err := table.SchemaToArrowSchema(def.Schema, nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

const paymentV1 = `{"type":"object","properties":{
	"payment_id":{"type":"string"},
	"amount":{"type":"number","x-eventlake-type":"decimal(12,2)","minimum":0},
	"card":{"type":"object","properties":{"brand":{"type":"string","enum":["visa","amex"]},"last4":{"type":"string","pattern":"^[0-9]{4}$"}},"required":["brand"]},
	"tags":{"type":"array","items":{"type":"string"}},
	"source":{"type":"string"},
	"captured_at":{"type":"string","format":"date-time"},
	"ratio":{"type":"number","maximum":1},
	"test":{"type":"boolean"}},
	"required":["payment_id","amount"]}`

// TestFlattenAndAppend: nested objects become parent_child columns, arrays
// JSON text, a property named like an envelope column payload_<name>, and
// the appender writes exactly the decoded values.
func TestFlattenAndAppend(t *testing.T) {
	d := decoderOf(t, jsonVersion("payment.captured", 1, 1, paymentV1))
	sub := d.codecs.Set().Subject("payment.captured")
	var names []string
	for _, c := range sub.Columns {
		names = append(names, c.Name+":"+c.Type.String())
	}
	want := "payment_id:string amount:decimal(12, 2) card_brand:string card_last4:string tags:string payload_source:string captured_at:timestamptz ratio:double test:boolean"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("columns\n%s\nwant\n%s", got, want)
	}
	sc := rawTable(t, sub)
	a, err := NewAppender(sc)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	msgs := []string{
		`{"payment_id":"p1","amount":12.5,"card":{"brand":"visa","last4":"4242"},"tags":["a", "b"],"source":"web","captured_at":"2026-11-26T10:00:00+01:00","ratio":0.5,"test":true}`,
		`{"payment_id":"p2","amount":0.10}`,
	}
	var ev Event
	for i, p := range msgs {
		if err := d.Decode(event("payment.captured", p), testRecordTs, &ev); err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if missing, conflict := a.Bind(ev.Version); len(missing) > 0 || conflict != nil {
			t.Fatalf("Bind: %v %v", missing, conflict)
		}
		a.Append(b, &ev, Coords{Topic: "payments", Partition: 3, Offset: int64(i), KafkaTs: testRecordTs, Ingested: testRecordTs})
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	col := func(name string) arrow.Array { return rec.Column(sc.FieldIndices(name)[0]) }
	checks := []struct{ name, row0, row1 string }{
		{"payment_id", "p1", "p2"},
		{"amount", "12.5", "0.1"},
		{"card_brand", "visa", "(null)"},
		{"card_last4", "4242", "(null)"},
		{"tags", `["a", "b"]`, "(null)"},
		{"payload_source", "web", "(null)"},
		{"captured_at", "2026-11-26T09:00:00Z", "(null)"},
		{"ratio", "0.5", "(null)"},
		{"test", "true", "(null)"},
		{"kafka_topic", "payments", "payments"},
		{"kafka_offset", "0", "1"},
		{"source", "shop", "shop"},
	}
	for _, c := range checks {
		arr := col(c.name)
		if got := arr.ValueStr(0); got != c.row0 {
			t.Errorf("%s[0] = %q, want %q", c.name, got, c.row0)
		}
		if got := arr.ValueStr(1); got != c.row1 {
			t.Errorf("%s[1] = %q, want %q", c.name, got, c.row1)
		}
	}
	for _, bad := range []struct{ payload, reason, detail string }{
		{`{"payment_id":"p","amount":1,"card":{"brand":"diners"}}`, string(ReasonSchema), `payload/card/brand: "diners" is not one of "visa", "amex"`},
		{`{"payment_id":"p","amount":1,"card":{"last4":"4242"}}`, string(ReasonSchema), `payload/card/brand: required property is missing`},
		{`{"payment_id":"p","amount":1,"card":{"brand":"visa","last4":"42"}}`, string(ReasonSchema), `payload/card/last4: "42" does not match the pattern`},
		{`{"payment_id":"p","amount":1,"card":"visa"}`, string(ReasonSchema), `payload/card: is a string, want an object`},
		{`{"payment_id":"p","amount":1,"captured_at":"yesterday"}`, string(ReasonSchema), `payload/captured_at: "yesterday" is not an RFC 3339 date-time`},
		{`{"payment_id":"p","amount":1,"ratio":1.5}`, string(ReasonSchema), `payload/ratio: 1.5 is more than the maximum 1`},
		{`{"payment_id":"p","amount":1,"ratio":1e999}`, string(ReasonOutOfRange), `payload/ratio`},
		{`{"payment_id":"p","amount":10000000000.00}`, string(ReasonOutOfRange), `decimal(12,2)`},
		{`{"payment_id":"p","amount":1,"tags":"x"}`, string(ReasonSchema), `payload/tags: is a string, want an array`},
	} {
		err := d.Decode(event("payment.captured", bad.payload), testRecordTs, &ev)
		if err == nil || string(err.Reason) != bad.reason || !strings.Contains(err.Detail, bad.detail) {
			t.Errorf("%s: %v, want %s with %q", bad.payload, err, bad.reason, bad.detail)
			continue
		}
		if err.Subject != "payment.captured" || err.Version != 1 || !strings.HasPrefix(err.Pointer, "/") {
			t.Errorf("%s: subject %q version %d pointer %q", bad.payload, err.Subject, err.Version, err.Pointer)
		}
	}
}

// TestEvolution: a compatible v2 adds a column; v1 events pinned to v1 and
// v2 events decode side by side; the table lacks v2's column until it
// evolves; a v3 that retypes a column does not compile into the subject.
func TestEvolution(t *testing.T) {
	v1 := `{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"integer"}},"required":["id"]}`
	v2 := `{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"integer"},"note":{"type":"string"}},"required":["id"]}`
	v3 := `{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"string"}},"required":["id"]}`
	set := NewSet([]registry.Version{jsonVersion("x.y", 1, 10, v1), jsonVersion("x.y", 2, 11, v2), jsonVersion("x.y", 3, 12, v3)}, nil)
	sub := set.Subject("x.y")
	if !errors.Is(sub.errs[3], ErrColumnConflict) {
		t.Fatalf("v3 retyping n: %v, want a column conflict", sub.errs[3])
	}
	if sub.Latest != nil {
		t.Fatalf("the latest version (v3) does not compile, so there is no usable latest")
	}
	c := Contract{}
	c.Defaults()
	d := NewDecoder(c, Fixed{set})
	var ev Event
	if err := d.Decode(event("x.y", `{"id":"a"}`), testRecordTs, &ev); err == nil || err.Reason != ReasonSchema || !strings.Contains(err.Detail, "v3") {
		t.Fatalf("unpinned event while the latest version is unusable: %v", err)
	}
	if err := d.Decode(event("x.y", `{"id":"a","note":"hi"}`, `{"schema_version":2}`), testRecordTs, &ev); err != nil || ev.Version.Version != 2 {
		t.Fatalf("pinned v2: %v %v", err, ev.Version)
	}
	sc := rawTable(t, &Subject{Columns: set.Subject("x.y").Versions[1].Columns})
	a, err := NewAppender(sc)
	if err != nil {
		t.Fatal(err)
	}
	missing, conflict := a.Bind(ev.Version)
	if conflict != nil || len(missing) != 1 || missing[0].Name != "note" {
		t.Fatalf("Bind(v2) on a v1 table = %v %v, want note missing", missing, conflict)
	}
	if err := d.Decode(event("x.y", `{"id":"a"}`, `{"schema_version":1}`), testRecordTs, &ev); err != nil {
		t.Fatal(err)
	}
	if missing, conflict := a.Bind(ev.Version); len(missing) != 0 || conflict != nil {
		t.Fatalf("Bind(v1) = %v %v", missing, conflict)
	}
	// Check refuses v3 at registration.
	if err := Check(jsonVersion("x.y", 3, 12, v3), []registry.Version{jsonVersion("x.y", 1, 10, v1)}); !errors.Is(err, ErrColumnConflict) {
		t.Fatalf("Check(v3) = %v", err)
	}
	if err := Check(jsonVersion("x.y", 2, 11, v2), []registry.Version{jsonVersion("x.y", 1, 10, v1)}); err != nil {
		t.Fatalf("Check(v2) = %v", err)
	}
	// A table column of another type is a conflict (schema_conflict).
	other := rawTable(t, &Subject{Columns: []Column{{Name: "n", Type: iceberg.PrimitiveTypes.String, kind: colString}}})
	a2, err := NewAppender(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, conflict := a2.Bind(ev.Version); conflict == nil || !strings.Contains(conflict.Error(), "column n") {
		t.Fatalf("Bind on a table with n as string: %v", conflict)
	}
}

// TestCompileRefusals: schemas eventlake cannot store are refused with a
// message that says why.
func TestCompileRefusals(t *testing.T) {
	for _, tc := range []struct{ schema, want string }{
		{`{"type":"array"}`, `must have "type": "object"`},
		{`[1]`, "must be a JSON object"},
		{`{"type":"object","properties":{"a":{"type":"object","properties":{"b":{"type":"string"}}},"a_b":{"type":"string"}}}`, `two properties map to column "a_b"`},
		{`{"type":"object","properties":{"a":{"type":"boolean","x-eventlake-type":"decimal(10,2)"}}}`, "applies to a number"},
		{`{"type":"object","properties":{"a":{"type":"number","x-eventlake-type":"decimal(40,2)"}}}`, "P <= 38"},
		{`{"type":"object","properties":{"a":{"$ref":"http://example.com/x.json"}}}`, "not supported"},
	} {
		_, err := Compile(jsonVersion("s", 1, 1, tc.schema))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compile(%s) = %v, want %q", tc.schema, err, tc.want)
		}
	}
}

// TestGenericKeywords: keywords the plan does not compile are checked by
// the generic validator, with the failing value's pointer.
func TestGenericKeywords(t *testing.T) {
	s := `{"type":"object","properties":{"code":{"oneOf":[{"type":"string","maxLength":3},{"type":"integer"}]},
		"n":{"type":"integer","multipleOf":5}},"required":["code"]}`
	d := decoderOf(t, jsonVersion("g.t", 1, 1, s))
	var ev Event
	for _, ok := range []string{`{"code":"abc"}`, `{"code":7,"n":10}`} {
		if err := d.Decode(event("g.t", ok), testRecordTs, &ev); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if got := cols(&ev, "code"); got != `code="7"` {
		t.Errorf("a composed property is kept as JSON text: %s", got)
	}
	for _, tc := range []struct{ payload, pointer string }{{`{"code":"abcd"}`, "/code"}, {`{"code":1,"n":7}`, "/n"}} {
		err := d.Decode(event("g.t", tc.payload), testRecordTs, &ev)
		if err == nil || err.Reason != ReasonSchema || err.Pointer != tc.pointer {
			t.Errorf("%s: %v (pointer %q), want schema_violation at %s", tc.payload, err, pointerOf2(err), tc.pointer)
		}
	}
}

func pointerOf2(err *Error) string {
	if err == nil {
		return ""
	}
	return err.Pointer
}

const avroPayment = `{"type":"record","name":"Payment","namespace":"shop","fields":[
	{"name":"payment_id","type":"string"},
	{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
	{"name":"tries","type":"int"},
	{"name":"method","type":{"type":"enum","name":"Method","symbols":["CARD","WIRE"]}},
	{"name":"note","type":["null","string"],"default":null},
	{"name":"card","type":["null",{"type":"record","name":"Card","fields":[{"name":"brand","type":"string"}]}],"default":null},
	{"name":"at","type":{"type":"long","logicalType":"timestamp-micros"}}]}`

// TestAvro: a JSON payload checked against an Avro schema, and the same
// event framed the Confluent way in Avro binary.
func TestAvro(t *testing.T) {
	v := registry.Version{Subject: "payment.avro", Version: 1, ID: 7, Type: registry.TypeAvro, Schema: avroPayment}
	d := decoderOf(t, v)
	names := []string{"payment_id", "amount", "tries", "method", "note", "card_brand", "at"}
	var ev Event
	p := `{"payment_id":"p1","amount":"12.34","tries":2,"method":"WIRE","note":null,"card":{"brand":"visa"},"at":"2026-11-26T10:00:00Z"}`
	if err := d.Decode(event("payment.avro", p), testRecordTs, &ev); err != nil {
		t.Fatal(err)
	}
	want := `payment_id="p1" amount=12.34 tries=2 method="WIRE" note=<null> card_brand="visa" at=1795687200000000`
	if got := cols(&ev, names...); got != want {
		t.Fatalf("JSON payload: %s\nwant %s", got, want)
	}
	for _, bad := range []struct{ payload, reason, detail string }{
		{`{"payment_id":"p","amount":1,"tries":2,"method":"CASH","at":1}`, string(ReasonSchema), `payload/method: "CASH" is not one of`},
		{`{"payment_id":"p","amount":1,"tries":3000000000,"method":"CARD","at":1}`, string(ReasonOutOfRange), `32-bit`},
		{`{"payment_id":"p","amount":1,"tries":1,"method":"CARD"}`, string(ReasonSchema), `payload/at: required property is missing`},
	} {
		err := d.Decode(event("payment.avro", bad.payload), testRecordTs, &ev)
		if err == nil || string(err.Reason) != bad.reason || !strings.Contains(err.Detail, bad.detail) {
			t.Errorf("%s: %v, want %s %q", bad.payload, err, bad.reason, bad.detail)
		}
	}

	// Framed Avro binary, encoded by hamba with the documented envelope
	// schema around the registered payload schema.
	envSchema, err := avro.Parse(AvroEnvelopeSchema(avroPayment))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	rec := map[string]any{
		"event_id": "e-avro", "source": "pay", "type": "payment.avro", "timestamp": at,
		"payload": map[string]any{"payment_id": "p2", "amount": big.NewRat(-5, 100), "tries": 1, "method": "CARD",
			"note": map[string]any{"string": "n\"q"}, "card": nil, "at": at},
		"metadata": map[string]any{"map": map[string]any{"trace_id": "t1", "span_id": "s1"}},
	}
	body, err := avro.Marshal(envSchema, rec)
	if err != nil {
		t.Fatal(err)
	}
	framed := frame(7, body)
	if err := d.Decode(framed, testRecordTs, &ev); err != nil {
		t.Fatal(err)
	}
	if string(ev.EventID) != "e-avro" || string(ev.TraceID) != "t1" || string(ev.SpanID) != "s1" || ev.TsMicros != at.UnixMicro() {
		t.Fatalf("envelope: %+v", ev)
	}
	want = `payment_id="p2" amount=-0.05 tries=1 method="CARD" note="n\"q" card_brand=<null> at=1795687200000000`
	if got := cols(&ev, names...); got != want {
		t.Fatalf("framed Avro: %s\nwant %s", got, want)
	}
	if !bytes.Contains(ev.Payload, []byte(`"amount":-0.05`)) || !bytes.HasPrefix(ev.Payload, []byte(`{"payment_id":"p2"`)) {
		t.Fatalf("payload rendered as %s", ev.Payload)
	}
	if err := d.Decode(frame(7, body[:len(body)-3]), testRecordTs, &ev); err == nil || err.Reason != ReasonBadFraming {
		t.Fatalf("truncated Avro: %v", err)
	}
	if err := d.Decode(frame(8, body), testRecordTs, &ev); err == nil || err.Reason != ReasonUnknownID {
		t.Fatalf("unknown id: %v", err)
	}
}

func frame(id uint32, body []byte) []byte {
	b := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], id)
	return append(b, body...)
}

// TestResolverFollowsTheRegistry: a Resolver over a real registry store
// serves the new version after a refresh, and does not reload when
// nothing changed.
func TestResolverFollowsTheRegistry(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/r.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := registry.Open(ctx, db, registry.DialectSQLite)
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterShipped(ctx, store); err != nil {
		t.Fatal(err)
	}
	if err := RegisterShipped(ctx, store); err != nil { // idempotent
		t.Fatal(err)
	}
	r := NewResolver(store, time.Second, nil)
	changes := 0
	r.OnChange(func(*Set) { changes++ })
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if sub := r.Set().Subject("order.created"); sub == nil || sub.Latest == nil || sub.Latest.Version != 1 {
		t.Fatalf("shipped order schema not served: %+v", sub)
	}
	if err := r.Refresh(ctx); err != nil || changes != 1 {
		t.Fatalf("refresh without change: %v, %d changes", err, changes)
	}
	v2 := strings.Replace(Shipped()[1].Schema, `"quantity":`, `"coupon": {"type": "string"}, "quantity":`, 1)
	if _, _, err := store.Register(ctx, "order.created", registry.TypeJSON, v2); err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(ctx); err != nil || changes != 2 {
		t.Fatalf("refresh after a registration: %v, %d changes", err, changes)
	}
	sub := r.Set().Subject("order.created")
	if sub.Latest.Version != 2 || sub.Latest.Column("coupon") < 0 || len(sub.Columns) != 6 {
		t.Fatalf("v2 not served: latest %v, columns %v", sub.Latest, sub.Columns)
	}
}

// TestResolverByID: a schema id the Set lacks (registered since the last
// poll) is looked up once, then served from the cache; an unknown id is
// asked for once per missTTL; and the remembered unknown ids stay bounded.
func TestResolverByID(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/r.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := registry.Open(ctx, db, registry.DialectSQLite)
	if err != nil {
		t.Fatal(err)
	}
	r := NewResolver(store, time.Second, nil)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	v, _, err := store.Register(ctx, "order.created", registry.TypeJSON, Shipped()[1].Schema)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		tv, err := r.ByID(v.ID)
		if err != nil || tv == nil || tv.Subject != "order.created" {
			t.Fatalf("ByID(%d) = %v, %v", v.ID, tv, err)
		}
	}
	for range 3 {
		if tv, err := r.ByID(v.ID + 1000); tv != nil || err != nil {
			t.Fatalf("ByID of an unknown id = %v, %v", tv, err)
		}
	}
	if _, misses := r.Reads(); misses != 2 {
		t.Fatalf("%d registry requests for 3 lookups of a new id and 3 of an unknown one, want 2", misses)
	}
	for id := range 3 * maxMisses {
		r.mu.Lock()
		r.missed(100000 + id)
		n := len(r.misses)
		r.mu.Unlock()
		if n > maxMisses {
			t.Fatalf("%d unknown ids remembered, more than %d", n, maxMisses)
		}
	}
}

// TestRegistryUnavailable: when the registry cannot be asked, an event of
// a type (or a frame with a schema id) not loaded is left undecided, not
// stored untyped or dead-lettered; events of loaded types decode as
// before; and a registry that answers "no such id" makes a dead letter.
func TestRegistryUnavailable(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/r.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	store, err := registry.Open(ctx, db, registry.DialectSQLite)
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterShipped(ctx, store); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(store, time.Second, nil)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	c := Contract{}
	c.Defaults()
	d := NewDecoder(c, r)
	var ev Event
	event := func(typ string) []byte {
		return []byte(`{"event_id":"e1","source":"s","type":"` + typ + `","timestamp":"2026-11-26T10:00:00Z","payload":{"sku":"x"}}`)
	}
	if derr := d.Decode(frame(9999, event("order.created")), testRecordTs, &ev); derr == nil || derr.Reason != ReasonUnknownID || derr.Unavailable != nil {
		t.Fatalf("an id the registry does not have: %v, want %s", derr, ReasonUnknownID)
	}
	if derr := d.Decode(event("never.registered"), testRecordTs, &ev); derr != nil || ev.Version != nil {
		t.Fatalf("an unregistered type with the registry up: %v (version %v), want it kept untyped", derr, ev.Version)
	}

	db.Close() // the registry stops answering
	time.Sleep(2 * missEvery)
	order := `{"event_id":"e2","source":"s","type":"order.created","timestamp":"2026-11-26T10:00:00Z","payload":` +
		`{"order_id":"o1","user_id":"u1","product_id":"p1","quantity":1,"amount":"9.99"}}`
	if derr := d.Decode([]byte(order), testRecordTs, &ev); derr != nil || ev.Version == nil {
		t.Fatalf("a loaded type while the registry is down: %v", derr)
	}
	for name, msg := range map[string][]byte{
		"an unregistered type": event("never.registered"),
		"a new schema id":      frame(12345, event("order.created")),
	} {
		derr := d.Decode(msg, testRecordTs, &ev)
		if derr == nil || derr.Unavailable == nil || derr.Reason != "" {
			t.Fatalf("%s while the registry is down: %v, want it undecided", name, derr)
		}
		if !strings.Contains(derr.Error(), "schema registry unavailable") {
			t.Fatalf("%s: error %q does not say why", name, derr)
		}
	}
}
