package main

import (
	"context"
	"flag"

	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/catalog"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/query"
)

// runQuery serves the query API over an existing lake.
func runQuery(ctx context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, false, true, "127.0.0.1:8080")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	cfg, _, err := loadConfig(&cf, env)
	if err != nil {
		return err
	}
	if cfg.HTTP.Listen == "" {
		cfg.HTTP.Listen = "127.0.0.1:8080"
	}
	log, err := newLogger(env.stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	if err := validateAll(cfg.Catalog.Validate(), cfg.Ingest.Validate(), cfg.Query.Validate()); err != nil {
		return err
	}
	cat, err := catalog.Open(ctx, cfg.Catalog)
	if err != nil {
		return err
	}
	defer cat.Close()
	ctx = cat.WithStorage(ctx) // one S3 client with bounded timeouts for every table's FileIO
	reg := newRegistry()
	qs, err := query.New(cfg.Query, query.Deps{Catalog: cat, Tables: queryTables(cfg.Ingest), Logger: log, Registry: reg, Gatherer: reg})
	if err != nil {
		return err
	}
	ln, err := listen(cfg.HTTP.Listen)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return qs.Run(gctx) })
	g.Go(func() error { return serveHTTP(gctx, ln, qs.Handler(), log) })
	log.Info("ready", logkey.Component, "query", "http", ln.Addr().String(), "warehouse", cfg.Catalog.Warehouse)
	return g.Wait()
}
