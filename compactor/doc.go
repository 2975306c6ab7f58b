// Package compactor maintains the lake's tables: it compacts the small
// files that second-scale commits leave into event-time-sorted files,
// expires snapshots no reader can still be using, deletes orphan files,
// drops partitions past their retention, moves old partitions to a cold
// location, and erases a person's data on request (GDPR), recording it in
// an audit table.
//
// It works on the lake tables after ingest and streamer have committed to
// them (ingest -> streamer -> lake tables -> compactor -> query), with the
// same optimistic commits: every snapshot it writes carries the Kafka
// offsets of the snapshot it is built on, and a conflict with ingest is resolved by rebuilding on the fresh
// table, so ingest never waits or fails. docs/MAINTENANCE.md has the
// design and the reader contract that protects running queries.
package compactor
