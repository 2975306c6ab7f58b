package query

import "github.com/prometheus/client_golang/prometheus"

// Endpoint label values.
const (
	endpointSQL     = "sql"
	endpointRevenue = "order_revenue_minute"
	endpointStatus  = "status"
	endpointLineage = "lineage"
	endpointModels  = "models"
)

// Outcome label values of eventlake_query_duration_seconds.
const (
	outcomeOK          = "ok"
	outcomeClientError = "client_error"
	outcomeServerError = "server_error"
)

// Rejection reasons: work refused before it reached DuckDB.
const (
	rejectBusy     = "concurrency_limit"
	rejectReadOnly = "read_only"
	rejectRequest  = "bad_request"
	rejectNotReady = "not_ready"
)

type metrics struct {
	requests        *prometheus.CounterVec   // endpoint, code
	duration        *prometheus.HistogramVec // endpoint, outcome
	rejected        *prometheus.CounterVec   // reason
	inflight        prometheus.Gauge
	refreshDuration prometheus.Histogram
	refreshErrors   prometheus.Counter
	lastRefresh     prometheus.Gauge
	generation      prometheus.Gauge
	snapshotAge     *prometheus.GaugeVec // table
	rowsReturned    *prometheus.CounterVec
	hotRows         prometheus.Gauge
	hotFull         prometheus.Gauge
	filesSkipped    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_query_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventlake_query_duration_seconds", Help: "Request latency by endpoint and outcome (ok, client_error: 4xx, server_error: 5xx), including the wait for a query slot.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"endpoint", "outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_query_rejected_total", Help: "Requests refused before running: concurrency_limit (503), read_only, bad_request, not_ready.",
		}, []string{"reason"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_query_inflight_queries", Help: "Queries holding a DuckDB connection.",
		}),
		refreshDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventlake_query_refresh_duration_seconds", Help: "One catalog poll, including scan planning and view validation when a snapshot changed.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		refreshErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_query_refresh_errors_total", Help: "Catalog polls that failed; the previous view generation stays in service.",
		}),
		lastRefresh: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_query_last_refresh_timestamp_seconds", Help: "Unix time of the last successful catalog poll (service staleness = time() - this).",
		}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_query_view_generation", Help: "Number of the view generation in service; it grows with every snapshot change seen.",
		}),
		snapshotAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventlake_query_snapshot_age_seconds", Help: "Age of the snapshot queries read per table (freshness of the data served).",
		}, []string{"table"}),
		rowsReturned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_query_rows_returned_total", Help: "Result rows sent to clients.",
		}, []string{"endpoint"}),
		hotRows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_query_hot_rows", Help: "Fresh rows held in memory until the lake covers them.",
		}),
		hotFull: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_query_hot_full", Help: "1 while the hot tables are full (query.hot_max_rows) and the hot tier waits for ingest.",
		}),
		filesSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_query_lookup_files_skipped_total", Help: "Data files that statements over one view did not visit because their manifest bounds hold none of the identifier values (event_id, order_id ... = constant) or event times (ts compared with an instant) the WHERE clause requires.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.rejected, m.inflight, m.refreshDuration, m.refreshErrors,
		m.lastRefresh, m.generation, m.snapshotAge, m.rowsReturned, m.hotRows, m.hotFull, m.filesSkipped)
	for _, r := range []string{rejectBusy, rejectReadOnly, rejectRequest, rejectNotReady} {
		m.rejected.WithLabelValues(r)
	}
	return m
}
