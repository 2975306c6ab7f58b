package streamer

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events          *prometheus.CounterVec // topic
	late            prometheus.Counter
	hotEvents       prometheus.Gauge
	paused          prometheus.Gauge
	pauses          prometheus.Counter
	watermark       prometheus.Gauge
	unknownProducts prometheus.Counter
	enriched        prometheus.Counter
	enrichErrors    prometheus.Counter
	products        prometheus.Gauge
	commitDuration  *prometheus.HistogramVec // table
	commitErrors    *prometheus.CounterVec   // table
	conflicts       *prometheus.CounterVec   // table
	reloads         *prometheus.CounterVec   // table, kind
	sseClients      prometheus.Gauge
	sseDropped      prometheus.Counter
	sseCoalesced    prometheus.Counter
	lag             *prometheus.GaugeVec // topic, partition
	commitFailing   prometheus.Gauge
	lastCommit      *prometheus.GaugeVec   // model
	stateEntries    *prometheus.GaugeVec   // kind
	notCounted      *prometheus.CounterVec // model
	rewrites        *prometheus.CounterVec // table, task
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		commitFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_streamer_commit_failures_in_a_row", Help: "Read-model commits that failed in a row (0 when the last one succeeded).",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_streamer_events_total", Help: "Accepted events read by the hot tier.",
		}, []string{"topic"}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_streamer_late_events_total", Help: "Orders that arrived after the watermark closed their windows (they are still in the lake and in the exact read models).",
		}),
		hotEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_streamer_hot_events", Help: "Events held in memory beyond the read models' offsets.",
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_streamer_fetch_paused", Help: "1 while fetching is paused because max_hot_events is reached.",
		}),
		pauses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_streamer_pauses_total", Help: "Times fetching paused because the hot tier held streamer.max_hot_events events (the read models' commits lag behind reading).",
		}),
		watermark: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_streamer_watermark_seconds", Help: "Event-time watermark (unix seconds).",
		}),
		unknownProducts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_streamer_unknown_products_total", Help: "Orders enriched with nulls because their product is not in the catalog.",
		}),
		enriched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_streamer_enriched_published_total", Help: "Enriched orders published.",
		}),
		enrichErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_streamer_enriched_errors_total", Help: "Enriched orders that could not be published.",
		}),
		products: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_streamer_products", Help: "Products in the enrichment table.",
		}),
		commitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventlake_streamer_commit_duration_seconds", Help: "Read-model commit latency.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"table"}),
		commitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_streamer_commit_errors_total", Help: "Failed read-model commit attempts.",
		}, []string{"table"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_streamer_commit_conflicts_total", Help: "Read-model commits re-done on a refreshed table.",
		}, []string{"table"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_streamer_read_model_loads_total", Help: "Read-model snapshots loaded (incremental or full).",
		}, []string{"table", "kind"}),
		sseClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_streamer_sse_clients", Help: "Connected live-push clients.",
		}),
		sseDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_streamer_sse_dropped_total", Help: "Live-push clients disconnected because they fell behind (they resume with Last-Event-ID).",
		}),
		sseCoalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_streamer_sse_coalesced_total", Help: "Live-push updates not sent because a later update of the same minute replaced them within one stream.coalesce interval.",
		}),
		lastCommit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventlake_streamer_last_commit_timestamp_seconds", Help: "Unix time of the last successful commit per read model (committer process only).",
		}, []string{"model"}),
		stateEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventlake_streamer_state_entries", Help: "Entries the hot tier holds in memory by kind: <model>_rows (a declared read model's committed rows), <model>_hot_rows (its rows of events after the committed offsets), products.",
		}, []string{"kind"}),
		notCounted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_streamer_events_not_counted_total", Help: "Accepted events a read model does not count because a column's type or decimal places do not fit its declaration.",
		}, []string{"model"}),
		rewrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_streamer_read_model_rewrites_total", Help: "Snapshots of a declared model's table made by others that the hot tier followed (re-aggregation, backfill, compaction), by their commit task.",
		}, []string{"table", "task"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventlake_streamer_lag_records", Help: "High watermark minus the next offset the hot tier reads.",
		}, []string{"topic", "partition"}),
	}
	reg.MustRegister(m.commitFailing, m.events, m.late, m.hotEvents, m.paused, m.pauses, m.watermark, m.unknownProducts, m.enriched,
		m.enrichErrors, m.products, m.commitDuration, m.commitErrors, m.conflicts, m.reloads, m.sseClients, m.sseDropped, m.sseCoalesced, m.lag,
		m.lastCommit, m.stateEntries, m.notCounted, m.rewrites)
	return m
}
