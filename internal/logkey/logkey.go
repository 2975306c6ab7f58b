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
	// TraceID is the trace id of an event (its envelope metadata's
	// trace_id): the key to its producer's trace.
	TraceID   = "trace_id"
	Reason    = "reason"
	Files     = "files"
	Rows      = "rows"
	Bytes     = "bytes"
	Duration  = "duration"
	Attempt   = "attempt"
	Addr      = "addr"
	Err       = "err"
	CommitID  = "commit_id"
	Group     = "group"
	Path      = "path"
	RequestID = "request_id"
)
