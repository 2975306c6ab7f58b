// Package hot holds the types the hot tier (streamer) hands to the query
// service: decoded raw rows that are not in the lake yet. It exists so that
// the two stages share a vocabulary without importing each other.
package hot

import "context"

// Row is one accepted event of a raw table, with its Kafka coordinates.
// It carries exactly what ingest writes for the event (same decoder, same
// deduplication), so that a hot row and its later lake row are the same.
type Row struct {
	Topic     string
	Partition int32
	Offset    int64
	KafkaTs   int64 // micros
	Received  int64 // micros; when the hot tier read it (ingested_at of hot rows)

	EventID, Source, Type string
	Ts                    int64 // event time, micros
	Payload               string
	Metadata              *string
	TraceID, SpanID       *string

	IsOrder                    bool
	OrderID, UserID, ProductID string
	Quantity, AmountCents      int64

	IsInventory  bool
	InvProductID string
	Warehouse    *string
	Stock        int64
	Delta        *int64
}

// Sink receives hot rows, in offset order per partition.
type Sink interface {
	// AppendRows adds rows of a raw table. It may block to push back.
	AppendRows(ctx context.Context, table string, rows []Row) error
}
