package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventlake/eventlake/compactor"
	"github.com/eventlake/eventlake/ingest"
	"github.com/eventlake/eventlake/internal/health"
	"github.com/eventlake/eventlake/query"
	"github.com/eventlake/eventlake/streamer"
)

// processHealth gathers the readiness checks of one process (GET /readyz,
// eventlake_component_ready) from the parts it runs, as they are built.
// A dependency that several parts use (the catalog, the brokers) is one
// component, failing when any of them sees it fail.
type processHealth struct {
	*health.Checks
	brokers, catalog []func() error
}

func newProcessHealth(reg prometheus.Registerer) *processHealth {
	return &processHealth{Checks: health.New(reg)}
}

func (p *processHealth) addBrokers(check func() error) {
	p.brokers = append(p.brokers, check)
	p.Add(health.Brokers, health.All(p.brokers...))
}

func (p *processHealth) addCatalog(check func() error) {
	p.catalog = append(p.catalog, check)
	p.Add(health.Catalog, health.All(p.catalog...))
}

// ingest adds the ingester: its loop and what pauses it.
func (p *processHealth) ingest(ing *ingest.Ingester) {
	p.Add(health.Ingest, ing.Ready)
	p.addBrokers(ing.BrokersReady)
	p.addCatalog(ing.Fault(health.Catalog))
	p.Add(health.ObjectStorage, ing.Fault(health.ObjectStorage))
	p.Add(health.Schemas, ing.Fault(health.Schemas))
}

// query adds the query service's catalog polls (the service adds its own
// health.Query check when built with p.Checks).
func (p *processHealth) query(qs *query.Service) { p.addCatalog(qs.CatalogReady) }

// streamer adds the hot tier and, on the committer, the read models.
func (p *processHealth) streamer(st *streamer.Streamer) {
	p.addBrokers(st.BrokersReady)
	p.Add(health.HotTier, st.HotTierReady)
	p.Add(health.ReadModels, st.ReadModelsReady)
}

// compactor adds the maintenance daemon's cycle.
func (p *processHealth) compactor(c *compactor.Compactor) { p.Add(health.Compactor, c.Ready) }

// audit adds the audit shipper of a process that serves data.
func (p *processHealth) audit(acc *access) {
	if acc.trail != nil {
		p.Add(health.Audit, acc.trail.shipper.Ready)
	}
}
