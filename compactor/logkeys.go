package compactor

// Log attribute keys of the compactor that internal/logkey does not have
// (yet); shared ones (table, files, rows, bytes, duration, err, ...) come
// from there.
const (
	logTask             = "task"
	logPartition        = "partition"
	logPartitions       = "partitions"
	logFilesBefore      = "files_before"
	logFilesAfter       = "files_after"
	logBytesRewritten   = "bytes_rewritten"
	logBytesWritten     = "bytes_written"
	logSnapshotsExpired = "snapshots_expired"
	logFilesDeleted     = "files_deleted"
	logDryRun           = "dry_run"
	logErasureID        = "erasure_id"
	logRequestedBy      = "requested_by"
	logWait             = "wait"
	logTables           = "tables"
	logMinutes          = "minutes"
	logInterval         = "interval"
	logPartitionEnd     = "partition_end"
)
