// Package logkey holds the slog attribute keys eventlake logs with, so that
// every component names the same thing the same way.
package logkey

const (
	Component  = "component"
	Topic      = "topic"
	Partition  = "partition"
	Offset     = "offset"
	Table      = "table"
	SnapshotID = "snapshot_id"
	EventID    = "event_id"
	Reason     = "reason"
	Files      = "files"
	Rows       = "rows"
	Bytes      = "bytes"
	Duration   = "duration"
	Attempt    = "attempt"
	Addr       = "addr"
	Err        = "err"
	CommitID   = "commit_id"
	Group      = "group"
	Path       = "path"
	RequestID  = "request_id"
	ReplayID   = "replay_id" // a DLQ replay
	TraceID    = "trace_id"  // an event's envelope metadata.trace_id: the key to its producer's trace
)
