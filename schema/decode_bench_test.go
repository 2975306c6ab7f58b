package schema

import (
	"testing"
	"time"
)

// benchEnvelope is a realistic order.created message (about 380 bytes) as
// AppendJSON writes it, with trace metadata.
func benchEnvelope() []byte {
	e := Envelope{
		EventID:   "01JDQ8Y7ZK3M9V6T4W2X5R8N1P",
		Source:    "checkout-service",
		Type:      "order.created",
		Timestamp: time.Date(2026, 11, 26, 10, 0, 0, 123_000_000, time.UTC),
		Payload: []byte(`{"order_id":"ord-8f14e45fceea167a","user_id":"user-45c48cce2e2d7fbd",` +
			`"product_id":"sku-6512bd43d9caa6e0","quantity":3,"amount":"149.97","currency":"EUR"}`),
		Metadata: Metadata{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7"},
	}
	return e.AppendJSON(nil)
}

func BenchmarkDecode(b *testing.B) {
	msg := benchEnvelope()
	d := testDecoder(0)
	var ev Event
	if err := d.Decode(msg, testRecordTs, &ev); err != nil {
		b.Fatalf("Decode: %v", err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(msg, testRecordTs, &ev); err != nil {
			b.Fatal(err)
		}
	}
}
