package pgwire

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	open        prometheus.Gauge
	connections *prometheus.CounterVec // outcome
	statements  *prometheus.CounterVec // kind, outcome
	cancels     *prometheus.CounterVec // outcome
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_pgwire_open_connections", Help: "Open Postgres wire protocol connections.",
		}),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_pgwire_connections_total",
			Help: "Postgres connections by outcome: accepted, auth_failed, tls_required, too_many, auth_error, protocol.",
		}, []string{"outcome"}),
		statements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_pgwire_statements_total",
			Help: "Statements by kind (query, catalog, session) and outcome (ok, error, canceled).",
		}, []string{"kind", "outcome"}),
		cancels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventlake_pgwire_cancel_requests_total",
			Help: "Cancel requests by outcome: canceled, idle (nothing running), unknown (no such key).",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.open, m.connections, m.statements, m.cancels)
	}
	return m
}
