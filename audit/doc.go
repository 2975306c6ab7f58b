// Package audit is the query audit log of the query service: every request
// that reads data (SQL over HTTP or the Postgres wire protocol, read-model
// API calls, stream subscriptions) and every refused attempt is recorded —
// who asked (token name, role, client address), when, the statement, the
// tables and snapshots read, rows and bytes returned, duration and
// outcome — in the lake table audit_log (lake.AuditLogTableDef).
//
// It sits beside the query stage, on the lake foundation:
//
//	ingest -> streamer -> (lake tables) -> compactor -> query
//	                                                      | Append, before answering
//	                                            audit: Log -> Shipper -> audit_log
//
// Two steps make a record durable and then queryable:
//
//   - Log: a local append-only log in a directory. Append returns once
//     the record is fsynced; concurrent appends share one write and one
//     fsync (group commit, at most Options.MaxBatchRecords records or
//     MaxBatchBytes bytes per fsync). The query service appends before it
//     sends the answer, so no answer leaves without its record on disk.
//     Each record gets the next sequence number of the log; a torn tail
//     left by a crash is cut when the log is opened, never read as a
//     record.
//   - Shipper: commits the log's records to audit_log in batches through
//     the lake's one commit protocol (lake.Committer, task "audit"), each
//     commit storing the log's next sequence number in the table's offsets
//     under the pseudo topic "audit/<node>", partition 0 (Log.Node is a
//     stable id written when the directory is created). It resumes from
//     the table's offsets, is fenced on the offset it last saw, and deletes
//     a segment file only once the table holds every record in it.
//
// Exactly once across kill -9: a record is in the table iff its sequence
// number is below the offset the table stores for its log, because the
// data files and the offset are one atomic snapshot. A crash before a
// commit leaves the offset where it was, and the records, still in the
// local log, are shipped again; a crash after a commit and before the
// segments are deleted leaves records below the stored offset in the log,
// and they are skipped. docs/SECURITY.md ("Query audit log") has the
// argument and how to read the table.
//
// Use:
//
//	l, err := audit.Open(dir, audit.Options{Logger: log, Registry: reg})
//	s, err := audit.NewShipper(l, audit.ShipperConfig{}, audit.ShipperDeps{Catalog: cat, Committer: com, Logger: log, Registry: reg})
//	g.Go(func() error { return s.Run(ctx) })     // ships until ctx ends, then flushes
//	err = l.Append(reqCtx, audit.Record{...})    // durable when it returns: now answer
//	// shutdown: stop serving, end Run's context and wait for it, then l.Close()
package audit
