// Package streamer will hold the hot tier: event-time tumbling and hopping
// minute windows kept in memory, enrichment from reference data, watermarks
// and late data, and read models such as order_revenue_minute.
//
// It sits beside ingest in the data flow (Kafka -> streamer -> read-model
// tables, live push) and never imports ingest; both build on catalog and
// internal/. Nothing lives here yet: see the hot-tier issue.
package streamer
