package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/compactor"
	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
)

// compactorDefaults fills the compactor section: defaults, a spill
// directory under the data directory, and the cold location among the
// directories the query service may read.
func compactorDefaults(cfg *Config) {
	cfg.Compactor.Defaults()
	if cfg.Compactor.TempDir == "" {
		cfg.Compactor.TempDir = filepath.Join(cfg.DataDir, "tmp", "compactor")
	}
	if cold := cfg.Compactor.ColdLocation; cold != "" {
		if loc, err := lake.NormalizeWarehouse(cold); err == nil {
			if p, ok := lake.LocalPath(loc); ok && !slices.Contains(cfg.Query.LakeDirs, p) {
				cfg.Query.LakeDirs = append(cfg.Query.LakeDirs, p)
			}
		}
	}
}

// compactorTables lists the tables to maintain: ingest's raw tables and
// dead-letter table, the hot tier's read models, and every other table
// named in compactor.tables. Tables that do not exist yet are skipped.
func compactorTables(cfg *Config) []compactor.Table {
	var out []compactor.Table
	seen := map[string]bool{}
	// Raw tables of topics taken by pattern are found in the catalog.
	for _, tc := range cfg.Ingest.Topics {
		if !seen[tc.Table] {
			out = append(out, compactor.Table{Name: tc.Table, Role: compactor.RoleRaw})
			seen[tc.Table] = true
		}
	}
	if !seen[cfg.Ingest.DLQTable] {
		out = append(out, compactor.Table{Name: cfg.Ingest.DLQTable, Role: compactor.RoleDLQ})
		seen[cfg.Ingest.DLQTable] = true
	}
	var extra []string
	// The audit log is compacted and expired like a read model (never
	// erased: the compactor skips its kind).
	names := modelNames(cfg)
	if !cfg.ReadModels.Sessions.Off && cfg.ReadModels.Sessions.Table != "" {
		names = append(names, cfg.ReadModels.Sessions.Table)
	}
	for _, name := range append(names, lake.TableAuditLog) {
		if !seen[name] {
			extra = append(extra, name)
			seen[name] = true
		}
	}
	for name := range cfg.Compactor.Tables {
		if !seen[name] {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	for _, name := range extra {
		out = append(out, compactor.Table{Name: name, Role: compactor.RoleOther})
	}
	return out
}

func newCompactor(cfg *Config, cat *lake.Catalog, log *slog.Logger, reg prometheus.Registerer, fp *failpoint.Set) (*compactor.Compactor, error) {
	return compactor.New(cfg.Compactor, compactor.Deps{
		Catalog: cat, Tables: compactorTables(cfg), Logger: log, Registry: reg, Now: time.Now,
		ReadModels: erasureRefresher(newReaggregator(cfg, cat, log, fp)), Failpoints: fp,
	})
}

// runCompact runs the maintenance daemon, or one task (or every task) once:
//
//	eventlake compact                     daemon: every task every compactor.interval
//	eventlake compact once                every task once
//	eventlake compact rewrite|retention|tier|expire|orphans   that task once
func runCompact(ctx context.Context, args []string, env *runEnv) error {
	task := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		task, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("compact", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, false, true, "127.0.0.1:8082 for the daemon (metrics and health; 'off' disables)")
	dryRun := fs.Bool("dry-run", false, "plan and report, change nothing")
	tables := fs.String("tables", "", "tables to maintain, comma separated (default: every ingest table, the dead-letter table and compactor.tables)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	var tasks []string
	switch task {
	case "":
	case "once":
		tasks = compactor.AllTasks
	case "rewrite", compactor.TaskCompact:
		tasks = []string{compactor.TaskCompact}
	default:
		if !slices.Contains(compactor.AllTasks, task) {
			return usageError{fmt.Sprintf("compact: unknown task %q (want once, rewrite, retention, tier, expire or orphans)", task)}
		}
		tasks = []string{task}
	}
	if *dryRun && tasks == nil {
		tasks = compactor.AllTasks
	}
	cfg, fp, err := loadConfig(&cf, env)
	if err != nil {
		return err
	}
	if cfg.HTTP.Listen == "" {
		cfg.HTTP.Listen = "127.0.0.1:8082"
	}
	reg := newRegistry()
	ctx, log, c, done, err := openMaintenance(ctx, cfg, fp, env, reg)
	if err != nil {
		return err
	}
	defer done()
	if tasks != nil {
		reports, err := c.RunOnce(ctx, compactor.Options{Tasks: tasks, Tables: splitList(*tables), DryRun: *dryRun})
		if perr := printReports(env.stdout, reports, *asJSON); perr != nil {
			return errors.Join(err, perr)
		}
		return err
	}
	if *tables != "" {
		return usageError{"compact: --tables applies to one-shot runs (once or a task)"}
	}
	g, gctx := errgroup.WithContext(ctx)
	httpAddr := "off"
	if cfg.HTTP.Listen != "off" {
		ln, err := listen(cfg.HTTP, log)
		if err != nil {
			return err
		}
		httpAddr = ln.Addr().String()
		acc, err := openAccess(ctx, cfg, c.Catalog(), log, httpAddr)
		if err != nil {
			ln.Close()
			return err
		}
		defer acc.close()
		g.Go(func() error { return acc.run(gctx) })
		checks := newProcessHealth(reg)
		checks.compactor(c)
		g.Go(func() error { return serveHTTP(gctx, cfg.HTTP, ln, opsMux(cfg.HTTP, acc, reg, checks.Checks), log) })
	}
	g.Go(func() error { return c.Run(gctx) })
	log.Info("ready", logkey.Component, "compactor", "http", httpAddr, "interval", cfg.Compactor.Interval, "warehouse", cfg.Catalog.Warehouse)
	return g.Wait()
}

func printReports(w io.Writer, reports []compactor.TaskReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if reports == nil {
			reports = []compactor.TaskReport{}
		}
		return enc.Encode(reports)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "task\ttable\tpartitions\tfiles before\tfiles after\tbytes rewritten\tbytes written\tsnapshots expired\tfiles deleted\tseconds\tdry run")
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%v\n", r.Task, r.Table, r.Partitions, r.FilesBefore, r.FilesAfter,
			r.BytesRead, r.BytesWritten, r.SnapshotsExpired, r.FilesDeleted, r.DurationSeconds, r.DryRun)
	}
	return tw.Flush()
}

// runErase erases one user's events from every raw table and the
// dead-letter table and records the erasure in the erasure log.
// openMaintenance validates the configuration, opens the catalog and the
// compactor for `compact` and `erase`. The returned context carries the
// catalog's S3 client (bounded timeouts for every table's FileIO); done
// closes both.
func openMaintenance(ctx context.Context, cfg *Config, fp *failpoint.Set, env *runEnv, reg *prometheus.Registry) (context.Context, *slog.Logger, *compactor.Compactor, func(), error) {
	log, err := newLogger(env.stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if err := validateAll(cfg.Catalog.Validate(), cfg.Ingest.Validate(), cfg.Compactor.Validate()); err != nil {
		return nil, nil, nil, nil, err
	}
	cat, err := openLake(ctx, cfg, false)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	c, err := newCompactor(cfg, cat, log, reg, fp)
	if err != nil {
		cat.Close()
		return nil, nil, nil, nil, err
	}
	done := func() {
		if cerr := c.Close(); cerr != nil {
			log.Warn("close compactor", logkey.Err, cerr)
		}
		cat.Close()
	}
	return ctx, log, c, done, nil
}

func runErase(ctx context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("erase", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, false, false, "")
	userID := fs.String("user-id", "", "the user whose events are erased (required)")
	requestedBy := fs.String("requested-by", "", "who asked for the erasure, for the audit record (required)")
	dryRun := fs.Bool("dry-run", false, "report which files and rows would be erased, change nothing")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if *userID == "" || *requestedBy == "" {
		return usageError{"erase: --user-id and --requested-by are required"}
	}
	cfg, fp, err := loadConfig(&cf, env)
	if err != nil {
		return err
	}
	ctx, _, c, done, err := openMaintenance(ctx, cfg, fp, env, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer done()
	rep, err := c.Erase(ctx, compactor.EraseRequest{UserID: *userID, RequestedBy: *requestedBy, DryRun: *dryRun})
	if rep != nil {
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			if perr := enc.Encode(rep); perr != nil {
				return errors.Join(err, perr)
			}
		} else {
			tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "erasure %s (subject sha256 %s, dry run %v)\n", rep.ErasureID, rep.SubjectSHA256, rep.DryRun)
			fmt.Fprintln(tw, "table\trows removed\tfiles rewritten\tsnapshot after\tsnapshots expired\tfiles deleted")
			for _, t := range rep.Tables {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", t.Table, t.Rows, t.FilesRewritten, t.SnapshotAfter, t.SnapshotsExpired, t.FilesDeleted)
			}
			if perr := tw.Flush(); perr != nil {
				return errors.Join(err, perr)
			}
		}
	}
	return err
}

// devMaintenance is the compactor inside `eventlake dev`: a no-op when
// compactor.disabled is set.
type devMaintenance struct {
	c   *compactor.Compactor
	log *slog.Logger
}

func devCompactor(cfg *Config, cat *lake.Catalog, log *slog.Logger, reg prometheus.Registerer, fp *failpoint.Set) (*devMaintenance, error) {
	if cfg.Compactor.Disabled {
		return &devMaintenance{}, nil
	}
	c, err := newCompactor(cfg, cat, log, reg, fp)
	if err != nil {
		return nil, err
	}
	return &devMaintenance{c: c, log: log}, nil
}

func (d *devMaintenance) run(ctx context.Context) error {
	if d.c == nil {
		return nil
	}
	return d.c.Run(ctx)
}

func (d *devMaintenance) close() {
	if d.c == nil {
		return
	}
	if err := d.c.Close(); err != nil {
		d.log.Warn("close compactor", logkey.Err, err)
	}
}
