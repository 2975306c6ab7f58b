package audit

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// logMetrics are the local log's.
type logMetrics struct {
	appended        prometheus.Counter
	appendErrors    prometheus.Counter
	fsyncDuration   prometheus.Histogram
	batchRecords    prometheus.Histogram
	segmentsDeleted prometheus.Counter
}

func newLogMetrics(reg prometheus.Registerer) (*logMetrics, error) {
	m := &logMetrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_audit_records_appended_total", Help: "Audit records written and fsynced to the local log.",
		}),
		appendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_audit_append_errors_total", Help: "Appends to the local audit log that returned an error (the request must not be answered).",
		}),
		fsyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventlake_audit_fsync_duration_seconds", Help: "Write and fsync of one batch of audit records.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventlake_audit_batch_records", Help: "Audit records per fsync (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		segmentsDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_audit_segments_deleted_total", Help: "Local audit log segments deleted once the table held every record in them.",
		}),
	}
	var errs [5]error
	m.appended, errs[0] = reuse(reg, m.appended)
	m.appendErrors, errs[1] = reuse(reg, m.appendErrors)
	m.fsyncDuration, errs[2] = reuse(reg, m.fsyncDuration)
	m.batchRecords, errs[3] = reuse(reg, m.batchRecords)
	m.segmentsDeleted, errs[4] = reuse(reg, m.segmentsDeleted)
	return m, errors.Join(errs[:]...)
}

// shipMetrics are the shipper's.
type shipMetrics struct {
	committed      prometheus.Counter
	commitDuration prometheus.Histogram
	commitErrors   prometheus.Counter
	lastCommit     prometheus.Gauge
}

func newShipMetrics(reg prometheus.Registerer, pending func() float64) (*shipMetrics, error) {
	m := &shipMetrics{
		committed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_audit_records_committed_total", Help: "Audit records committed to the audit_log table.",
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventlake_audit_commit_duration_seconds", Help: "Writing and committing one batch of audit records to the table.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_audit_commit_errors_total", Help: "Batches of audit records that could not be committed (they stay in the local log and are shipped again).",
		}),
		lastCommit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_audit_last_commit_timestamp_seconds", Help: "When audit records were last committed to the table.",
		}),
	}
	pendingGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "eventlake_audit_records_pending", Help: "Audit records on disk in the local log that the table does not hold yet.",
	}, pending)
	var errs [5]error
	m.committed, errs[0] = reuse(reg, m.committed)
	m.commitDuration, errs[1] = reuse(reg, m.commitDuration)
	m.commitErrors, errs[2] = reuse(reg, m.commitErrors)
	m.lastCommit, errs[3] = reuse(reg, m.lastCommit)
	// The gauge reads this shipper: one registered by an earlier shipper
	// (a log opened again after a failure) is replaced.
	var are prometheus.AlreadyRegisteredError
	if err := reg.Register(pendingGauge); errors.As(err, &are) {
		reg.Unregister(are.ExistingCollector)
		errs[4] = reg.Register(pendingGauge)
	} else {
		errs[4] = err
	}
	return m, errors.Join(errs[:]...)
}

// reuse registers c, or returns the collector registered under its name
// before (a log or shipper opened again in the same process counts on).
func reuse[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if old, ok := are.ExistingCollector.(T); ok {
			return old, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("register audit metrics: %w", err)
	}
	return c, nil
}
