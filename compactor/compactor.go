package compactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/health"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/lake/objstore"
)

// Table roles: what the compactor may assume about a table's columns.
const (
	RoleRaw   = "raw"   // raw events: envelope columns, typed payload columns, hour(ts)
	RoleDLQ   = "dlq"   // dead letters: raw bytes, day(ingested_at)
	RoleOther = "other" // read models and anything else: compaction, expiry, retention only
)

// Table is one lake table the compactor maintains.
type Table struct {
	Name string
	Role string
}

// Tasks, in the order a maintenance cycle runs them.
const (
	TaskRetention = "retention"
	TaskCompact   = "compact"
	TaskTier      = "tier"
	TaskExpire    = "expire"
	TaskOrphans   = "orphans"
	TaskErase     = "erase"
)

// AllTasks is every periodic task, in cycle order: retention first (no
// point compacting what is dropped), tiering after compaction (compacted
// files of old partitions are written to the cold location directly),
// expiry and orphan cleanup last.
var AllTasks = []string{TaskRetention, TaskCompact, TaskTier, TaskExpire, TaskOrphans}

// Erased describes rows removed from one table by an erasure, for read
// models built from it.
type Erased struct {
	Table string
	// Minutes are the event-time minutes (UTC, truncated) of the removed
	// rows: every read-model bucket that must be recomputed.
	Minutes []time.Time
	Rows    int64
}

// ReadModelRefresher re-aggregates read models (order_revenue_minute and
// the like, built by the streamer) after an erasure removed raw rows. The
// compactor calls it once per erasure with every affected table; the
// streamer implements it. A nil refresher is allowed: the erasure then
// logs which minutes are stale.
type ReadModelRefresher interface {
	Reaggregate(ctx context.Context, erased []Erased) error
}

// Deps are the compactor's collaborators.
type Deps struct {
	Catalog *lake.Catalog
	// Tables are the tables to maintain.
	Tables   []Table
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Now      func() time.Time
	// ReadModels may be nil (see ReadModelRefresher).
	ReadModels ReadModelRefresher
	// Failpoints stop the process at protocol points in crash tests.
	Failpoints *failpoint.Set
}

// Compactor maintains lake tables: compaction, retention, tiering,
// snapshot expiry, orphan cleanup and GDPR erasure.
type Compactor struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	m    *metrics
	eng  *engine
	com  *lake.Committer
	// progress is the daemon's cycle (Run): due every Interval, stuck
	// when none has succeeded for a few.
	progress *health.Committer
}

// New validates cfg and opens the rewrite engine. Close releases it.
func New(cfg Config, deps Deps) (*Compactor, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Catalog == nil {
		return nil, errors.New("compactor: a catalog is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	for _, t := range deps.Tables {
		switch t.Role {
		case RoleRaw, RoleDLQ, RoleOther:
		default:
			return nil, fmt.Errorf("compactor: table %s has unknown role %q", t.Name, t.Role)
		}
	}
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	if cfg.TempDir != "" {
		if err := os.MkdirAll(cfg.TempDir, 0o755); err != nil {
			return nil, fmt.Errorf("create compactor temp dir: %w", err)
		}
	}
	if err := checkColdConfig(cfg, deps.Catalog); err != nil {
		return nil, err
	}
	eng, err := openEngine(&cfg)
	if err != nil {
		return nil, err
	}
	eng.store = deps.Catalog.Store()
	c := &Compactor{cfg: cfg, deps: deps, m: m, eng: eng, log: deps.Logger.With(logkey.Component, "compactor"),
		progress: health.NewCommitter("compactor's maintenance cycle", 3*cfg.Interval+time.Minute, deps.Now)}
	c.com = lake.NewCommitter(deps.Catalog, lake.CommitConfig{Writer: lake.WriterName("compactor"), MaxFailures: maxFailures},
		lake.CommitHooks{
			Conflict:  func(t string) { m.conflicts.WithLabelValues(t).Inc() },
			Committed: func(t, task string, _ time.Duration) { m.commits.WithLabelValues(t, task).Inc() },
		}, c.log, deps.Failpoints)
	return c, nil
}

// checkColdConfig refuses, before any work, an S3 cold location the
// warehouse cannot serve: on other storage, in another bucket (iceberg-go's
// S3 FileIO serves one bucket per table), or with a storage class but no
// S3 client to set it with.
func checkColdConfig(cfg Config, cat *lake.Catalog) error {
	if !objstore.IsS3(cfg.ColdLocation) {
		return nil
	}
	wh := cat.Config().Warehouse
	if strings.Contains(wh, "://") && !objstore.IsS3(wh) {
		return fmt.Errorf("compactor.cold_location %s is on S3 but the warehouse %s is not: tiering stays on one storage", cfg.ColdLocation, wh)
	}
	if objstore.IsS3(wh) {
		cold, _, err := objstore.SplitURI(cfg.ColdLocation + "/")
		if err != nil {
			return fmt.Errorf("compactor.cold_location: %w", err)
		}
		own, _, err := objstore.SplitURI(wh + "/")
		if err != nil {
			return fmt.Errorf("catalog.warehouse: %w", err)
		}
		if cold != own {
			return fmt.Errorf("compactor.cold_location %s is in bucket %q, the warehouse in bucket %q: use a prefix of the table's bucket (iceberg-go's S3 FileIO serves one bucket per table)", cfg.ColdLocation, cold, own)
		}
	}
	if cfg.ColdStorageClass != "" && cat.Store() == nil {
		return fmt.Errorf("compactor.cold_storage_class %s needs an s3:// catalog.warehouse (the S3 client that sets storage classes is built for it; warehouse %q)", cfg.ColdStorageClass, wh)
	}
	return nil
}

// tables are the configured tables and every raw table in the catalog
// that is not among them (ingest creates the tables of topics taken by
// pattern while it runs).
func (c *Compactor) tables(ctx context.Context) ([]Table, error) {
	out := slices.Clone(c.deps.Tables)
	ns := table.Identifier{c.deps.Catalog.Config().Namespace}
	for ident, err := range c.deps.Catalog.Iceberg().ListTables(ctx, ns) {
		if err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		name := ident[len(ident)-1]
		if slices.ContainsFunc(out, func(t Table) bool { return t.Name == name }) {
			continue
		}
		tbl, err := c.deps.Catalog.LoadTable(ctx, name)
		if err != nil {
			continue // dropped meanwhile, or not loadable now: the next cycle sees it
		}
		if tbl.Properties()[lake.PropKind] == lake.KindRaw {
			out = append(out, Table{Name: name, Role: RoleRaw})
		}
	}
	return out, nil
}

// Close releases the rewrite engine.
func (c *Compactor) Close() error { return c.eng.close() }

// Config returns the validated configuration.
func (c *Compactor) Config() Config { return c.cfg }

// Run runs a maintenance cycle every cfg.Interval until ctx ends. A failed
// cycle is logged and counted; the next one starts over from the lake.
// A cycle in progress when ctx ends stops at its next step; nothing it
// committed is undone and nothing half-written is referenced.
func (c *Compactor) Run(ctx context.Context) error {
	c.log.Info("compactor started", logInterval, c.cfg.Interval, logTables, len(c.deps.Tables))
	t := time.NewTimer(c.cfg.Interval)
	defer t.Stop()
	var lastOrphans time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		tasks := AllTasks
		if now := c.deps.Now(); now.Sub(lastOrphans) >= c.cfg.OrphanInterval {
			lastOrphans = now
		} else {
			tasks = slices.DeleteFunc(slices.Clone(AllTasks), func(s string) bool { return s == TaskOrphans })
		}
		c.progress.Pending(c.deps.Now())
		_, err := c.RunOnce(ctx, Options{Tasks: tasks})
		switch {
		case ctx.Err() != nil:
		case err != nil:
			c.progress.Failed(err)
			c.log.Warn("maintenance cycle failed; retrying next interval", logkey.Err, err)
		default:
			c.progress.Committed(c.deps.Now())
		}
		t.Reset(c.cfg.Interval)
	}
}

// Ready reports whether the daemon's maintenance cycles succeed: an
// error once none has for about three intervals (Run only).
func (c *Compactor) Ready() error { return c.progress.Check() }

// Options select what one run does.
type Options struct {
	// Tasks to run, in AllTasks order; empty is every task.
	Tasks []string
	// Tables to maintain, by name; empty is every table.
	Tables []string
	// DryRun plans and reports without writing or deleting anything.
	DryRun bool
}

// TaskReport is what one task did (or would do, in a dry run) to one table.
type TaskReport struct {
	Task  string `json:"task"`
	Table string `json:"table"`
	// Partitions touched (compacted, tiered or dropped).
	Partitions int `json:"partitions"`
	// FilesBefore and FilesAfter count the table's data files in its
	// current snapshot before and after the task.
	FilesBefore int `json:"files_before"`
	FilesAfter  int `json:"files_after"`
	// FilesRemoved were replaced or dropped; FilesAdded written.
	FilesRemoved int   `json:"files_removed"`
	FilesAdded   int   `json:"files_added"`
	BytesRead    int64 `json:"bytes_rewritten"`
	BytesWritten int64 `json:"bytes_written"`
	Rows         int64 `json:"rows"`
	// SnapshotsExpired and FilesDeleted: expiry and orphan cleanup.
	SnapshotsExpired int     `json:"snapshots_expired"`
	FilesDeleted     int     `json:"files_deleted"`
	SnapshotID       int64   `json:"snapshot_id"`
	DurationSeconds  float64 `json:"duration_seconds"`
	DryRun           bool    `json:"dry_run"`
}

// RunOnce runs the selected tasks over the selected tables once and
// reports what each did. It stops at the first error of a task (other
// tables are still maintained) and returns every error joined.
func (c *Compactor) RunOnce(ctx context.Context, opts Options) ([]TaskReport, error) {
	tasks := AllTasks
	if len(opts.Tasks) > 0 {
		for _, t := range opts.Tasks {
			if !slices.Contains(AllTasks, t) {
				return nil, fmt.Errorf("unknown maintenance task %q (want one of %v)", t, AllTasks)
			}
		}
		tasks = nil
		for _, t := range AllTasks {
			if slices.Contains(opts.Tasks, t) {
				tasks = append(tasks, t)
			}
		}
	}
	all, err := c.tables(ctx)
	if err != nil {
		return nil, err
	}
	tables := all
	if len(opts.Tables) > 0 {
		tables = nil
		for _, name := range opts.Tables {
			i := slices.IndexFunc(all, func(t Table) bool { return t.Name == name })
			if i < 0 {
				return nil, fmt.Errorf("table %q is not maintained by this compactor", name)
			}
			tables = append(tables, all[i])
		}
	}
	var (
		reports []TaskReport
		errs    []error
	)
	for _, task := range tasks {
		start := c.deps.Now()
		var taskErrs []error
		for _, t := range tables {
			if ctx.Err() != nil {
				return reports, ctx.Err()
			}
			r, err := c.runTask(ctx, task, t, opts.DryRun)
			if errors.Is(err, icecat.ErrNoSuchTable) {
				continue // not created yet
			}
			if err != nil {
				taskErrs = append(taskErrs, fmt.Errorf("%s %s: %w", task, t.Name, err))
				continue
			}
			if r != nil {
				r.DryRun = opts.DryRun
				reports = append(reports, *r)
			}
		}
		c.m.runDuration.WithLabelValues(task).Observe(c.deps.Now().Sub(start).Seconds())
		if len(taskErrs) > 0 {
			c.m.runs.WithLabelValues(task, "error").Inc()
			errs = append(errs, taskErrs...)
		} else {
			c.m.runs.WithLabelValues(task, "ok").Inc()
			c.m.lastSuccess.WithLabelValues(task).Set(float64(c.deps.Now().UnixNano()) / 1e9)
		}
	}
	return reports, errors.Join(errs...)
}

func (c *Compactor) runTask(ctx context.Context, task string, t Table, dry bool) (*TaskReport, error) {
	start := c.deps.Now()
	var (
		r   *TaskReport
		err error
	)
	switch task {
	case TaskRetention:
		r, err = c.retention(ctx, t, dry)
	case TaskCompact:
		r, err = c.compact(ctx, t, dry)
	case TaskTier:
		r, err = c.tier(ctx, t, dry)
	case TaskExpire:
		r, err = c.expire(ctx, t, dry)
	case TaskOrphans:
		r, err = c.orphans(ctx, t, dry)
	}
	if r == nil || err != nil {
		return r, err
	}
	r.Task, r.Table = task, t.Name
	r.DurationSeconds = c.deps.Now().Sub(start).Seconds()
	if r.FilesRemoved > 0 || r.FilesAdded > 0 || r.SnapshotsExpired > 0 || r.FilesDeleted > 0 {
		c.log.Info("maintenance done", logTask, task, logkey.Table, t.Name, logDryRun, dry,
			logPartitions, r.Partitions, logFilesBefore, r.FilesBefore, logFilesAfter, r.FilesAfter,
			logBytesRewritten, r.BytesRead, logBytesWritten, r.BytesWritten, logkey.Rows, r.Rows,
			logSnapshotsExpired, r.SnapshotsExpired, logFilesDeleted, r.FilesDeleted,
			logkey.SnapshotID, r.SnapshotID, logkey.Duration, c.deps.Now().Sub(start))
	}
	return r, nil
}

func (c *Compactor) policy(name string) TablePolicy { return c.cfg.Tables[name] }

// Catalog is the catalog the compactor maintains.
func (c *Compactor) Catalog() *lake.Catalog { return c.deps.Catalog }
