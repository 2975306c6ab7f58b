package main

import (
	"context"
	"flag"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/ingest"
	"github.com/eventlake/eventlake/internal/logkey"
)

// runIngest runs the ingester alone against an external Kafka and catalog.
func runIngest(ctx context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, true, true, "127.0.0.1:8081 (metrics and health; 'off' disables)")
	group := fs.String("group", "", "consumer group (default eventlake-ingest)")
	instanceID := fs.String("instance-id", "", "static group member id of this process, unique in the group and stable across restarts (ingest.instance_id; e.g. the pod name)")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	cfg, fp, err := loadConfig(&cf, env)
	if err != nil {
		return err
	}
	if *group != "" {
		cfg.Ingest.Group = *group
	}
	if *instanceID != "" {
		cfg.Ingest.InstanceID = *instanceID
	}
	if cfg.HTTP.Listen == "" {
		cfg.HTTP.Listen = "127.0.0.1:8081"
	}
	log, err := newLogger(env.stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	tp, stopTracing, err := openTracing(cfg, "ingest", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	if err := validateAll(cfg.Kafka.Validate(), cfg.Catalog.Validate(), cfg.SchemaRegistry.Validate(), cfg.Ingest.Validate()); err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// The process lives in ingest.memory_limit: the collector works
		// harder as the heap nears it, instead of letting it double.
		debug.SetMemoryLimit(goMemoryLimit(cfg.Ingest.MemoryLimit))
	}
	if err := cfg.Kafka.CheckAccess(ctx); err != nil {
		return err
	}
	reg := newRegistry()
	cat, err := openLake(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer cat.Close()
	cat.SetFailpoints(fp)
	layout, sch, err := openStage(ctx, cfg, cat, log, reg)
	if err != nil {
		return err
	}
	defer sch.Close()
	kopts, err := cfg.Kafka.Opts(log)
	if err != nil {
		return err
	}
	ing, err := ingest.New(cfg.Ingest, ingest.Deps{
		Catalog: cat, Layout: layout, Codecs: sch.resolver, KafkaOpts: kopts, Logger: log, Registry: reg,
		Now: time.Now, Failpoints: fp, Tracer: tp,
	})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sch.resolver.Run(gctx) })
	if err := autoReplay(g, gctx, cfg, cat, layout, sch, log, fp); err != nil {
		return err
	}
	httpAddr := "off"
	if cfg.HTTP.Listen != "off" {
		ln, err := listen(cfg.HTTP, log)
		if err != nil {
			return err
		}
		httpAddr = ln.Addr().String()
		acc, err := openAccess(ctx, cfg, cat, log, httpAddr)
		if err != nil {
			ln.Close()
			return err
		}
		defer acc.close()
		g.Go(func() error { return acc.run(gctx) })
		checks := newProcessHealth(reg)
		checks.ingest(ing)
		g.Go(func() error { return serveHTTP(gctx, cfg.HTTP, ln, opsMux(cfg.HTTP, acc, reg, checks.Checks), log) })
	}
	g.Go(func() error { return ing.Run(gctx) })
	log.Info("ready", logkey.Component, "ingest", "instance_id", cfg.Ingest.InstanceID, "brokers", cfg.Kafka.Brokers, "http", httpAddr, "warehouse", cfg.Catalog.Warehouse)
	return g.Wait()
}

// goMemoryLimit is the Go runtime's share of a process that must live in
// limit bytes of resident memory: limit less what is resident and not
// the runtime's now (the binary's pages, C libraries), measured at start.
// Off Linux (no /proc), limit.
func goMemoryLimit(limit int64) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return limit
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return limit
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return limit
	}
	rss := pages * int64(os.Getpagesize())
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return limit
	}
	other := rss - int64(s[0].Value.Uint64()-s[1].Value.Uint64())
	// A tenth of margin: the runtime overshoots its limit a little, and
	// the other part grows a little (stacks of new connections, pages of
	// the binary first touched later).
	return max((limit-max(other, 0))*9/10, limit/2)
}
