package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventlake/eventlake/schema"
)

type metrics struct {
	consumed        *prometheus.CounterVec   // topic
	committed       *prometheus.CounterVec   // table
	dlq             *prometheus.CounterVec   // reason
	duplicates      *prometheus.CounterVec   // topic
	lag             *prometheus.GaugeVec     // topic, partition
	commitDuration  *prometheus.HistogramVec // table
	flushDuration   prometheus.Histogram
	batchRows       prometheus.Histogram
	batchBytes      prometheus.Histogram
	conflicts       *prometheus.CounterVec // table
	commitErrors    *prometheus.CounterVec // table
	fenced          prometheus.Counter
	filesWritten    *prometheus.CounterVec // table
	bytesWritten    *prometheus.CounterVec // table
	lastCommit      *prometheus.GaugeVec   // table: unix seconds of the last successful commit
	committedOffset *prometheus.GaugeVec   // topic, partition: next offset stored in the lake
	kafkaCommitErrs prometheus.Counter
	dlqTopicErrors  prometheus.Counter
	state           *stateGauge
	freshness       *prometheus.HistogramVec // table
	openPartitions  prometheus.Gauge
	filesEarly      prometheus.Counter
	batchMemory     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_ingest_records_consumed_total", Help: "Kafka records read by ingest.",
		}, []string{"topic"}),
		committed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_ingest_rows_committed_total", Help: "Rows committed to a lake table (raw events and dead letters).",
		}, []string{"table"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_ingest_dlq_total", Help: "Messages committed to the dead-letter table, by reason.",
		}, []string{"reason"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_ingest_duplicates_dropped_total", Help: "Events dropped because their event_id was seen within the dedupe window.",
		}, []string{"topic"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventlake_ingest_consumer_lag_records", Help: "High watermark minus the next offset to consume, per partition.",
		}, []string{"topic", "partition"}),
		commitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventlake_ingest_commit_duration_seconds", Help: "Iceberg commit latency per table, including conflict retries.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"table"}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventlake_ingest_flush_duration_seconds", Help: "Closing files and committing one batch to every table.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventlake_ingest_batch_records", Help: "Kafka records per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 12),
		}),
		batchBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventlake_ingest_batch_bytes", Help: "Message bytes per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 12),
		}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_ingest_commit_conflicts_total", Help: "Commits that lost a race and were re-committed on a refreshed table.",
		}, []string{"table"}),
		commitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_ingest_commit_errors_total", Help: "Commit attempts that failed for a reason other than a conflict (catalog or storage down).",
		}, []string{"table"}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_ingest_batches_fenced_total", Help: "Batches abandoned because another writer had already committed their offsets.",
		}),
		filesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_ingest_files_written_total", Help: "Parquet data files committed.",
		}, []string{"table"}),
		bytesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_ingest_bytes_written_total", Help: "Parquet bytes committed.",
		}, []string{"table"}),
		lastCommit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventlake_ingest_last_commit_timestamp_seconds", Help: "Unix time of the last successful commit per table (freshness = time() - this).",
		}, []string{"table"}),
		committedOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventlake_ingest_committed_offset", Help: "Next offset stored in the raw table per partition.",
		}, []string{"topic", "partition"}),
		kafkaCommitErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_ingest_kafka_offset_commit_errors_total", Help: "Failed commits of offsets to Kafka (monitoring only; the lake holds the real offsets).",
		}),
		dlqTopicErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_ingest_dlq_topic_errors_total", Help: "Failed copies of dead letters to the dead-letter topic.",
		}),
		state: newStateGauge(),
		freshness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventlake_ingest_freshness_seconds", Help: "Event time to committed in the lake, per raw-table row (observed at its commit).",
			Buckets: []float64{0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 24 * 3600},
		}, []string{"table"}),
		openPartitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_ingest_open_partitions", Help: "Table partitions with an open data file in the current batch (each is one file per commit).",
		}),
		filesEarly: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_ingest_files_early_total", Help: "Data files closed before their batch's commit to keep the batch within ingest.memory_limit.",
		}),
		batchMemory: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_ingest_batch_memory_bytes", Help: "Bytes held by the current batch's Arrow builders and Parquet writers (bounded by a quarter of ingest.memory_limit).",
		}),
	}
	reg.MustRegister(m.consumed, m.committed, m.dlq, m.duplicates, m.lag, m.commitDuration, m.flushDuration,
		m.batchRows, m.batchBytes, m.conflicts, m.commitErrors, m.fenced, m.filesWritten, m.bytesWritten,
		m.lastCommit, m.committedOffset, m.kafkaCommitErrs, m.dlqTopicErrors, m.state, m.freshness, m.openPartitions,
		m.filesEarly, m.batchMemory)
	for _, r := range schema.Reasons {
		m.dlq.WithLabelValues(string(r))
	}
	return m
}

func (m *metrics) setState(s string) { m.state.set(s) }
