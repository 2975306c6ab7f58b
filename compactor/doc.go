// Package compactor will hold table maintenance: small-file compaction,
// snapshot expiry, orphan cleanup, retention, tiering and GDPR erasure.
//
// It works on the lake tables after ingest and streamer have committed to
// them (ingest -> streamer -> lake tables -> compactor -> query). Nothing
// lives here yet: see the table-maintenance issue.
package compactor
