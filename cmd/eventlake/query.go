package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/query"
	"github.com/eventlake/eventlake/streamer"
)

// runQuery serves the query API over an existing lake.
func runQuery(ctx context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, true, true, "127.0.0.1:8080")
	cf.registerPostgres(fs, "off")
	commit := fs.Bool("commit-read-models", false, "commit the read models from this process (exactly one process per deployment should)")
	noHot := fs.Bool("no-hot", false, "serve the lake only: no hot tier (no Kafka connection)")
	cf.registerCreate(fs)
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
	tp, stopTracing, err := openTracing(cfg, "query", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	if *commit {
		cfg.Streamer.Commit = true
	}
	if *noHot {
		cfg.Streamer.Disabled = true
	}
	errs := []error{cfg.Catalog.Validate(), cfg.SchemaRegistry.Validate(), cfg.Ingest.Validate(), cfg.Query.Validate()}
	if !cfg.Streamer.Disabled {
		kerr := cfg.Kafka.Validate()
		if kerr != nil {
			kerr = fmt.Errorf("%w (the hot tier reads the topics; pass --brokers, or --no-hot to serve the lake only)", kerr)
		}
		errs = append(errs, kerr, cfg.Streamer.Validate(), cfg.Stream.Validate())
	}
	if err := validateAll(errs...); err != nil {
		return err
	}
	if !cfg.Streamer.Disabled {
		if err := cfg.Kafka.CheckAccess(ctx); err != nil {
			return err
		}
	}
	cat, err := openLake(ctx, cfg, cf.createLake)
	if err != nil {
		return err
	}
	defer cat.Close()
	reg := newRegistry()
	layout, sch, err := openStage(ctx, cfg, cat, log, reg)
	if err != nil {
		return err
	}
	defer sch.Close()
	models, err := declaredModels(ctx, cfg, sch.resolver.Set())
	if err != nil {
		return err
	}
	var st *streamer.Streamer
	ln, err := listen(cfg.HTTP, log)
	if err != nil {
		return err
	}
	listeners := []string{ln.Addr().String()}
	if cfg.Postgres.Listen != "" && cfg.Postgres.Listen != "off" {
		listeners = append(listeners, cfg.Postgres.Listen)
	}
	acc, err := openDataAccess(ctx, cfg, cat, log, reg, nil, listeners...)
	if err != nil {
		ln.Close()
		return err
	}
	defer acc.shutdown()
	checks := newProcessHealth(reg)
	checks.audit(acc)
	qs, err := query.New(cfg.Query, query.Deps{Catalog: cat, Layout: layout, Inputs: cfg.ReadModels.ModelInputs, Models: models, Codecs: sch.resolver,
		Health: checks.Checks, Logger: log, Registry: reg, Gatherer: reg, Policy: acc.policy, Audit: acc.auditLog(), Tracer: tp})
	if err != nil {
		ln.Close()
		return err
	}
	pg, pgln, err := acc.postgres(cfg, qs, log, reg)
	if err != nil {
		ln.Close()
		return err
	}
	if !cfg.Streamer.Disabled {
		kopts, err := cfg.Kafka.Opts(log)
		if err != nil {
			ln.Close()
			return err
		}
		st, err = newStreamer(cfg, layout, sch.resolver, models, qs, streamer.Deps{Catalog: cat, KafkaOpts: kopts, Logger: log, Registry: reg, Now: time.Now, Tracer: tp})
		if err != nil {
			ln.Close()
			return err
		}
		checks.streamer(st)
		qs.ServeHot(st)
	}
	checks.query(qs)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sch.resolver.Run(gctx) })
	g.Go(func() error { return qs.Run(gctx) })
	g.Go(func() error { return acc.run(gctx) })
	pgAddr := "off"
	if pg != nil {
		pgAddr = pgln.Addr().String()
		g.Go(func() error { return pg.Run(gctx, pgln) })
	}
	if st != nil {
		g.Go(func() error { return st.Run(gctx) })
	}
	api := tp.HTTP(apiHandler(cfg.HTTP, acc, qs, st, sch.api, pg != nil))
	g.Go(func() error { return serveHTTP(gctx, cfg.HTTP, ln, api, log) })
	log.Info("ready", logkey.Component, "query", "http", ln.Addr().String(), "postgres", pgAddr, "warehouse", cfg.Catalog.Warehouse)
	return g.Wait()
}
