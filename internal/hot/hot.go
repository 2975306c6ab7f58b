// Package hot holds the interface through which the hot tier (streamer)
// hands the query service the rows of raw tables that are not in the lake
// yet. It exists so that the two stages share a vocabulary without
// importing each other.
package hot

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
)

// Sink receives fresh rows of raw tables, in offset order per partition.
// A batch has the raw table's envelope and Kafka columns and the typed
// payload columns of the events in it, built exactly as ingest builds the
// table's rows (the schema package's Appender), so that a hot row and its
// later lake row are the same. Batches of one table may have different
// columns as its schema grows.
type Sink interface {
	// AppendRows adds rows of a raw table. It may block to push back; it
	// does not keep rec after returning.
	AppendRows(ctx context.Context, table string, rec arrow.RecordBatch) error
}
