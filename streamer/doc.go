// Package streamer is eventlake's hot tier. It reads the event topics
// directly (every partition, no consumer group: each query replica has its
// own hot tier) and keeps, in memory:
//
//   - the events after the offsets the read-model tables store, per
//     partition, so that a read-model answer is exactly the committed
//     snapshot plus the events after its offsets (no double count, no gap);
//   - decoded raw rows for the query service's SQL views (through a Sink);
//   - event-time windows (tumbling 1 and 5 minutes, hopping 5 minutes every
//     minute) with watermarks and allowed lateness, for live push;
//   - the product catalog from a compacted changelog topic, to enrich
//     orders.
//
// One process per deployment commits the declared read models (package
// readmodel; the shipped ones include order_revenue_minute and
// inventory_health) with the offsets they cover, through the same fenced
// protocol as ingest (lake.Committer), and publishes enriched orders.
//
// Data flow: Kafka -> streamer -> read-model tables, live push; it sits
// beside ingest and never imports it.
package streamer
