package main

import (
	"context"
	"flag"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/demo"
	"github.com/eventlake/eventlake/ingest"
	"github.com/eventlake/eventlake/internal/broker"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/producer"
	"github.com/eventlake/eventlake/pgwire"
	"github.com/eventlake/eventlake/query"
	"github.com/eventlake/eventlake/streamer"
)

// runDev runs the embedded default: broker, catalog, warehouse, ingest,
// query service and (unless --no-demo) the demo producer, in one process.
func runDev(ctx context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, false, true, "127.0.0.1:8080")
	cf.registerPostgres(fs, pgwire.DefaultListen)
	kafkaListen := fs.String("kafka-listen", "", "embedded broker address for any Kafka client (default 127.0.0.1:9092; port 0 picks one)")
	noDemo := fs.Bool("no-demo", false, "do not run the demo producer")
	demoRate := fs.Float64("demo-rate", 0, "demo events per second (default 200)")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	cfg, fp, err := loadConfig(&cf, env)
	if err != nil {
		return err
	}
	if *kafkaListen != "" {
		cfg.Broker.Listen = *kafkaListen
	}
	if cfg.HTTP.Listen == "" {
		cfg.HTTP.Listen = "127.0.0.1:8080"
	}
	if cfg.Postgres.Listen == "" {
		cfg.Postgres.Listen = pgwire.DefaultListen
	}
	if *demoRate > 0 {
		cfg.Demo.Rate = *demoRate
	}
	if cfg.Demo.Rate == 0 {
		cfg.Demo.Rate = 200
	}
	log, err := newLogger(env.stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	tp, stopTracing, err := openTracing(cfg, "dev", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	cfg.Broker.Defaults()
	// Every topic ingest and the hot tier read or write exists in the
	// embedded broker (the defaults hold the canonical ones).
	want := []string{cfg.Streamer.EnrichedTopic}
	for _, tc := range cfg.Ingest.Topics {
		want = append(want, tc.Topic)
	}
	if cfg.Ingest.DLQTopic != "" {
		want = append(want, cfg.Ingest.DLQTopic)
	}
	for _, name := range want {
		found := false
		for _, t := range cfg.Broker.Topics {
			found = found || t.Name == name
		}
		if !found {
			cfg.Broker.Topics = append(cfg.Broker.Topics, broker.Topic{Name: name, Partitions: 3})
		}
	}
	if found := slices.ContainsFunc(cfg.Broker.Topics, func(t broker.Topic) bool { return t.Name == cfg.Streamer.ProductsTopic }); !found {
		cfg.Broker.Topics = append(cfg.Broker.Topics, broker.Topic{Name: cfg.Streamer.ProductsTopic, Partitions: 1,
			Configs: map[string]string{"cleanup.policy": "compact"}})
	}
	if !cfg.Streamer.Commit {
		// The one process of the embedded default commits the read models.
		cfg.Streamer.Commit = true
	}
	if cfg.Ingest.TopicPattern == "" {
		// The embedded default takes every topic: a team that starts
		// publishing payments.captured gets a payments_captured table on
		// its first event. eventlake's own output topics and the product
		// changelog are not envelopes.
		cfg.Ingest.TopicPattern = ".*"
	}
	for _, t := range []string{cfg.Streamer.EnrichedTopic, cfg.Streamer.ProductsTopic, cfg.Ingest.DLQTopic} {
		if t != "" && !slices.Contains(cfg.Ingest.ExcludeTopics, t) {
			cfg.Ingest.ExcludeTopics = append(cfg.Ingest.ExcludeTopics, t)
		}
	}
	if cfg.Ingest.InstanceID == "" {
		// One dev process per data directory: a restart after a crash takes
		// the partitions back at once.
		cfg.Ingest.InstanceID = "eventlake-dev"
	}
	if err := validateAll(cfg.Broker.Validate(), cfg.Catalog.Validate(), cfg.SchemaRegistry.Validate(), cfg.Ingest.Validate(), cfg.Query.Validate(),
		cfg.Stream.Validate()); err != nil {
		return err
	}
	ln, err := listen(cfg.HTTP, log)
	if err != nil {
		return err
	}
	b, err := broker.Start(cfg.Broker, log)
	if err != nil {
		ln.Close()
		return portTaken(err, "--kafka-listen")
	}
	defer b.Close() // last: ingest leaves its group and commits offsets through it
	cfg.Kafka.Brokers = []string{b.Addr()}

	cat, err := openLake(ctx, cfg, true)
	if err != nil {
		ln.Close()
		return err
	}
	defer cat.Close()
	cat.SetFailpoints(fp)
	reg := newRegistry()
	layout, sch, err := openStage(ctx, cfg, cat, log, reg)
	if err != nil {
		ln.Close()
		return err
	}
	defer sch.Close()
	models, err := declaredModels(ctx, cfg, sch.resolver.Set())
	if err != nil {
		return err
	}
	kopts, err := cfg.Kafka.Opts(log)
	if err != nil {
		ln.Close()
		return err
	}
	ing, err := ingest.New(cfg.Ingest, ingest.Deps{
		Catalog: cat, Layout: layout, Codecs: sch.resolver, KafkaOpts: kopts, Logger: log, Registry: reg,
		Now: time.Now, Failpoints: fp, Tracer: tp,
	})
	if err != nil {
		ln.Close()
		return err
	}
	acc, err := openDataAccess(ctx, cfg, cat, log, reg, fp, ln.Addr().String(), cfg.Postgres.Listen)
	if err != nil {
		ln.Close()
		return err
	}
	defer acc.shutdown()
	tokenFile, err := ensureDevAdminToken(ctx, acc, cfg.DataDir, log)
	if err != nil {
		ln.Close()
		return err
	}
	checks := newProcessHealth(reg)
	checks.ingest(ing)
	checks.audit(acc)
	qs, err := query.New(cfg.Query, query.Deps{
		Catalog: cat, Layout: layout, Inputs: cfg.ReadModels.ModelInputs, Models: models, Codecs: sch.resolver, Health: checks.Checks,
		Logger: log, Registry: reg, Gatherer: reg, Policy: acc.policy, Audit: acc.auditLog(), Tracer: tp,
	})
	if err != nil {
		ln.Close()
		return err
	}
	pg, pgln, err := acc.postgres(cfg, qs, log, reg)
	if err != nil {
		ln.Close()
		return err
	}
	var st *streamer.Streamer
	if !cfg.Streamer.Disabled {
		st, err = newStreamer(cfg, layout, sch.resolver, models, qs, streamer.Deps{Catalog: cat, KafkaOpts: kopts,
			Logger: log, Registry: reg, Now: time.Now, Failpoints: fp, Tracer: tp})
		if err != nil {
			ln.Close()
			return err
		}
		checks.streamer(st)
		qs.ServeHot(st)
	}
	checks.query(qs)
	maint, err := devCompactor(cfg, cat, log, reg, fp)
	if err != nil {
		ln.Close()
		return err
	}
	if maint.c != nil {
		checks.compactor(maint.c)
	}
	defer maint.close()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sch.resolver.Run(gctx) })
	if err := autoReplay(g, gctx, cfg, cat, layout, sch, log, fp); err != nil {
		ln.Close()
		return err
	}
	g.Go(func() error { return ing.Run(gctx) })
	g.Go(func() error { return qs.Run(gctx) })
	g.Go(func() error { return acc.run(gctx) })
	pgAddr := "off"
	if pg != nil {
		pgAddr = pgln.Addr().String()
		g.Go(func() error { return pg.Run(gctx, pgln) })
	}
	g.Go(func() error { return maint.run(gctx) })
	if st != nil {
		g.Go(func() error { return st.Run(gctx) })
	}
	api := tp.HTTP(apiHandler(cfg.HTTP, acc, qs, st, sch.api, pg != nil))
	g.Go(func() error { return serveHTTP(gctx, cfg.HTTP, ln, api, log) })
	if !*noDemo {
		g.Go(func() error { return runDemo(gctx, cfg, log, tp) })
	}
	log.Info("live page", logkey.Component, "dev", "page", pageURL(cfg.HTTP, ln.Addr().String(), tokenFile))
	log.Info("ready", logkey.Component, "dev", "kafka", b.Addr(), "http", ln.Addr().String(),
		"data_dir", cfg.DataDir, "postgres", pgAddr, "demo", !*noDemo, "admin_token_file", tokenFile)
	return g.Wait()
}

// runDemo publishes the demo shop's events at cfg.Demo.Rate until ctx ends.
func runDemo(ctx context.Context, cfg *Config, log *slog.Logger, tp trace.TracerProvider) error {
	kopts, err := cfg.Kafka.Opts(log)
	if err != nil {
		return err
	}
	p, err := producer.New(producer.Config{}, kopts, log, tp)
	if err != nil {
		return err
	}
	d := cfg.Demo
	late, inv := d.LateFraction, d.InventoryFraction
	if late == 0 {
		late = 0.05
	}
	if inv == 0 {
		inv = 0.2
	}
	if d.Seed == 0 {
		d.Seed = uint64(time.Now().UnixNano())
	}
	g := demo.New(demo.Config{Seed: d.Seed, Clock: time.Now, LateFraction: late, InventoryFraction: inv, MalformedFraction: d.MalformedFraction})
	// The shop's catalog first, so that orders are enriched.
	for _, pr := range g.Products() {
		p.PublishRaw(ctx, cfg.Streamer.ProductsTopic, []byte(pr.ID), demo.ProductRecord(pr), nil)
	}
	if err := p.Flush(ctx); err != nil {
		return nil
	}
	log.Info("demo producer started", logkey.Component, "demo", "rate", d.Rate)
	var failed int64
	_, _ = generate(ctx, p, g, d.Rate, 0, func(err error) {
		if err != nil && failed == 0 {
			failed++
			log.Warn("demo event not acknowledged", logkey.Err, err)
		}
	})
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return p.Close(cctx)
}
