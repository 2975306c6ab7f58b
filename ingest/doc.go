// Package ingest is the first stage of eventlake's data flow:
//
//	Kafka -> [ingest] -> Iceberg raw tables + DLQ -> (streamer, compactor, query)
//
// A consumer group decodes and validates envelopes, micro-batches them into
// Arrow records, writes Parquet data files and commits them to Iceberg with
// the Kafka offsets they cover stored in the snapshot summary. The offsets in
// the table, not Kafka's committed offsets, decide where consumption resumes,
// which is what makes a crash at any instant lose nothing and duplicate
// nothing. See docs/EXACTLY_ONCE.md.
package ingest
