package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
	"github.com/eventlake/eventlake/schema/registry"
)

// schemas is the schema registry a process reads: the compiled schemas
// (a Resolver to run beside the process's components) and, for the
// built-in registry, the HTTP API to serve.
type schemas struct {
	resolver *schema.Resolver
	api      http.Handler // nil with an external registry
	close    func() error // closes a database of its own; nil otherwise
}

// Close releases what openSchemas opened.
func (s *schemas) Close() error {
	if s == nil || s.close == nil {
		return nil
	}
	return s.close()
}

// openStage opens what every stage reads besides the catalog: the table
// layout (loaded once and handed to every component) and the event
// schemas.
func openStage(ctx context.Context, cfg *Config, cat *lake.Catalog, log *slog.Logger, reg prometheus.Registerer) (*lake.Layout, *schemas, error) {
	layout, err := cfg.Ingest.Layout()
	if err != nil {
		return nil, nil, err
	}
	sch, err := openSchemas(ctx, cfg, cat, log, reg)
	if err != nil {
		return nil, nil, err
	}
	return layout, sch, nil
}

// openRegistryDB opens schema_registry.database.
func openRegistryDB(dsn string) (*sql.DB, string, error) {
	return openSQLDB("schema_registry.database", dsn)
}

// openSchemas opens the registry of schema_registry: the built-in one in
// the catalog's SQL database (the shipped schemas registered on first
// start; schemas the lake cannot store refused at registration), or an
// external Confluent-compatible registry (url). The resolver is loaded
// before it returns, so that the first event is checked against the
// registry, not against nothing. Its requests to the registry are
// counted in reg.
func openSchemas(ctx context.Context, cfg *Config, cat *lake.Catalog, log *slog.Logger, reg prometheus.Registerer) (_ *schemas, err error) {
	var (
		src registry.Source
		out = &schemas{}
	)
	defer func() {
		if err != nil && out.close != nil {
			out.close() // the registry's own database
		}
	}()
	if cfg.SchemaRegistry.URL != "" {
		cl, err := registry.NewClient(cfg.SchemaRegistry)
		if err != nil {
			return nil, err
		}
		src = cl
		log.Info("schema registry", logkey.Component, "schemas", "registry", cfg.SchemaRegistry)
	} else {
		db, dialect := cat.DB()
		if cfg.SchemaRegistry.Database != "" || db == nil {
			if cfg.SchemaRegistry.Database == "" {
				return nil, errors.New("with a REST catalog, set schema_registry.database (a PostgreSQL URI or a SQLite file for the built-in registry) or schema_registry.url (an external registry): the built-in registry lives in the catalog's SQL database by default, and a REST catalog has none")
			}
			var err error
			if db, dialect, err = openRegistryDB(cfg.SchemaRegistry.Database); err != nil {
				return nil, err
			}
			out.close = db.Close
		}
		store, err := registry.Open(ctx, db, dialect)
		if err != nil {
			return nil, err
		}
		store.SetAcceptor(func(next registry.Version, earlier []registry.Version) error { return schema.Check(next, earlier) })
		if err := schema.RegisterShipped(ctx, store); err != nil {
			return nil, err
		}
		src = store
		out.api = registry.NewHandler(store, log)
	}
	out.resolver = schema.NewResolver(src, cfg.SchemaRegistry.PollInterval, log)
	res := out.resolver
	for cause, n := range map[string]func() int64{
		"poll": func() int64 { p, _ := res.Reads(); return p },
		"miss": func() int64 { _, m := res.Reads(); return m },
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "eventlake_schema_registry_reads_total",
			Help:        "Requests to the schema registry: periodic polls, and lookups of a type, version or schema id an event named that was not loaded. Decoding an event of a loaded version makes none.",
			ConstLabels: prometheus.Labels{"cause": cause},
		}, func() float64 { return float64(n()) }))
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := out.resolver.Refresh(ctx)
		if err == nil {
			return out, nil
		}
		if attempt >= 8 || ctx.Err() != nil {
			return nil, fmt.Errorf("load schemas: %w", err)
		}
		log.Warn("load schemas, retrying", logkey.Attempt, attempt, logkey.Err, err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
