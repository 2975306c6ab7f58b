package compactor

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the compactor, registered on the injected registerer.
type metrics struct {
	runs         *prometheus.CounterVec   // task, result
	runDuration  *prometheus.HistogramVec // task
	lastSuccess  *prometheus.GaugeVec     // task
	filesBefore  *prometheus.CounterVec   // table, task: files replaced or removed
	filesAfter   *prometheus.CounterVec   // table, task: files written
	bytesRead    *prometheus.CounterVec   // table, task: bytes of the replaced files
	bytesWritten *prometheus.CounterVec   // table, task
	rows         *prometheus.CounterVec   // table, task: rows rewritten
	conflicts    *prometheus.CounterVec   // table
	commits      *prometheus.CounterVec   // table, task
	expired      *prometheus.CounterVec   // table
	deleted      *prometheus.CounterVec   // table, kind (expired|orphan)
	dropped      *prometheus.CounterVec   // table: partitions dropped by retention
	erased       *prometheus.CounterVec   // table: rows removed by erasure
	dataFiles    *prometheus.GaugeVec     // table
	snapshots    *prometheus.GaugeVec     // table
	partFilesMax *prometheus.GaugeVec     // table
	openMerged   *prometheus.CounterVec   // table: files of open partitions merged
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_runs_total", Help: "Maintenance task runs by task and result (ok, error).",
		}, []string{"task", "result"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventlake_compactor_run_duration_seconds", Help: "Duration of one maintenance task over every table.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}, []string{"task"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventlake_compactor_last_success_timestamp_seconds", Help: "When each task last finished without error.",
		}, []string{"task"}),
		filesBefore: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_files_replaced_total", Help: "Data files removed from the current snapshot (rewritten, tiered, erased or dropped).",
		}, []string{"table", "task"}),
		filesAfter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_files_written_total", Help: "Data files written in their place.",
		}, []string{"table", "task"}),
		bytesRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_bytes_rewritten_total", Help: "Bytes of the data files rewritten, tiered, erased or dropped.",
		}, []string{"table", "task"}),
		bytesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_bytes_written_total", Help: "Bytes of the data files written.",
		}, []string{"table", "task"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_rows_rewritten_total", Help: "Rows read and written again.",
		}, []string{"table", "task"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_commit_conflicts_total", Help: "Commits rebuilt because another writer (ingest) moved the table first.",
		}, []string{"table"}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_commits_total", Help: "Snapshots committed by the compactor.",
		}, []string{"table", "task"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_snapshots_expired_total", Help: "Snapshots expired.",
		}, []string{"table"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_files_deleted_total", Help: "Files deleted from storage, after expiry or as orphans.",
		}, []string{"table", "kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_partitions_dropped_total", Help: "Partitions dropped by retention.",
		}, []string{"table"}),
		erased: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_erased_rows_total", Help: "Rows removed by GDPR erasure.",
		}, []string{"table"}),
		dataFiles: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventlake_compactor_table_data_files", Help: "Data files in the table's current snapshot, after the last cycle.",
		}, []string{"table"}),
		snapshots: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventlake_compactor_table_snapshots", Help: "Snapshots kept in the table's metadata, after the last cycle.",
		}, []string{"table"}),
		partFilesMax: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventlake_compactor_partition_data_files_max", Help: "Most data files in one partition of the table after the last cycle's compaction (what a query of one hour opens).",
		}, []string{"table"}),
		openMerged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_compactor_open_files_merged_total", Help: "Small files of partitions still open to ingest (the current hour) merged: by size tier (compactor.open_merge_files), or all at once past max_files_per_partition; also counted in files_replaced_total.",
		}, []string{"table"}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.runDuration, m.lastSuccess, m.filesBefore, m.filesAfter, m.bytesRead,
		m.bytesWritten, m.rows, m.conflicts, m.commits, m.expired, m.deleted, m.dropped, m.erased, m.dataFiles, m.snapshots, m.partFilesMax, m.openMerged} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register compactor metrics: %w", err)
		}
	}
	return m, nil
}
