package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/iceberg-go/table"
	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventlake/eventlake/audit"
	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/internal/health"
	"github.com/eventlake/eventlake/internal/hll"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/readmodel"
	"github.com/eventlake/eventlake/schema"
)

// Deps are the query service's collaborators.
type Deps struct {
	Catalog *lake.Catalog
	// Layout names the raw tables ingest writes (raw tables created for
	// topics taken by pattern are found in the catalog) and the
	// dead-letter table.
	Layout *lake.Layout
	// Inputs say which events the revenue endpoint counts, and name the
	// default type views.
	Inputs lake.ModelInputs
	// Models are the declared read models (their tables are served, and
	// GET /v1/models describes them).
	Models []*readmodel.Model
	// Codecs, if set, give the columns of each event type's view (else
	// they come from the tables that hold the type).
	Codecs schema.Codecs
	// ReadModels are served under their own names as committed; nil
	// means the declared models'.
	ReadModels []string
	// Health holds the readiness checks of the process, served on
	// /readyz and in GET /v1/status; the service adds its own (health.Query). Nil: the
	// service's own only.
	Health *health.Checks
	// Audit records every statement Query runs or refuses, durably before
	// the answer goes out; nil records nothing.
	Audit Auditor
	// Policy holds the roles whose grants Query enforces for the
	// principal of each request (auth.From); nil serves every request
	// as admin (authentication disabled).
	Policy   *auth.Policy
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Gatherer is served on /metrics, and GET /v1/status reads the
	// process's ingest figures from it; nil leaves /metrics out (404)
	// and those figures null.
	Gatherer prometheus.Gatherer
	// Now is the clock for freshness figures.
	Now func() time.Time
	// Tracer records a span per Postgres statement (nil: none); HTTP
	// requests get theirs from the listener (tracing.Provider.HTTP).
	Tracer trace.TracerProvider
}

// Auditor is the audit log (audit.Log): Append returns once the record
// is durable.
type Auditor interface {
	Append(ctx context.Context, rec audit.Record) error
}

// Service serves SQL over the lake. Build it with New, start Run, and
// serve Handler.
type Service struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	m        *metrics
	specs    []*tableSpec // grows when raw tables appear in the catalog (refresher only)
	known    map[string]bool
	lakeDirs []string     // with a trailing separator
	remote   *remoteFiles // local copies of s3:// data files; nil for a local warehouse

	db         *sql.DB
	admin      *sql.Conn         // the refresher's connection
	adminViews map[string]string // the views it holds (refresher only)
	pool       *connPool
	hot        *hotStore // fresh rows from the hot tier
	sampler    *sampler  // recent metric samples for GET /v1/status

	gen atomic.Pointer[generation] // nil until the first refresh succeeded
	// lastOK is when the catalog was last polled successfully (unix
	// nanos); lastErr the error of the last poll, nil when it succeeded.
	lastOK  atomic.Int64
	lastErr atomic.Pointer[string]
	// models answers the model endpoints (ServeHot; nil: no hot tier).
	models HotModels
	bufs   bufPool // of the model endpoints' answers
}

// tableSpec is a configured table.
type tableSpec struct {
	name string
	dlq  bool
	// readModel: served as committed (no hot rows, not in the events view).
	readModel bool
	topic     string
	def       lake.TableDef // the layout used while the table does not exist
}

// New validates the configuration and opens a sandboxed in-memory DuckDB.
// Run must be called: it serves the lake and closes DuckDB when it returns.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Catalog == nil {
		return nil, errors.New("query: a catalog is required")
	}
	if deps.Layout == nil {
		return nil, errors.New("query: a table layout is required")
	}
	deps.Inputs.Defaults()
	if deps.ReadModels == nil {
		deps.ReadModels = servedModels(deps.Models)
	}
	cfg.TypeViews = typeViewsOf(cfg, deps.Inputs)
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Health == nil {
		deps.Health = health.New(nil)
	}
	s := &Service{
		cfg:     cfg,
		deps:    deps,
		log:     deps.Logger.With(logkey.Component, "query"),
		m:       newMetrics(deps.Registry),
		sampler: &sampler{g: deps.Gatherer},
	}
	deps.Health.Add(health.Query, s.ready)
	specs, err := configuredSpecs(deps.Layout, deps.ReadModels, deps.Models)
	if err != nil {
		return nil, err
	}
	s.known = map[string]bool{}
	for _, spec := range specs {
		s.specs = append(s.specs, spec)
		s.known[spec.name] = true
	}
	for view := range cfg.TypeViews {
		if s.known[view] || strings.EqualFold(view, ViewEvents) || strings.EqualFold(view, ViewDLQ) {
			return nil, fmt.Errorf("query.type_views: view %q would hide a table or view of the same name; rename it", view)
		}
	}

	if err := s.openRemote(cfg, deps); err != nil {
		return nil, err
	}
	dirs, err := lakeDirs(deps.Catalog.Config().Warehouse, append(s.remoteDirs(), cfg.LakeDirs...))
	if err != nil {
		return nil, err
	}
	s.lakeDirs = dirs
	if err := s.openDuckDB(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

// typeViewsOf are the aliases of type views: query.type_views, by
// default orders and inventory, the read models' inputs.
func typeViewsOf(cfg Config, in lake.ModelInputs) map[string]string {
	if cfg.TypeViews != nil {
		return cfg.TypeViews
	}
	return map[string]string{"orders": in.Orders.Type, "inventory": in.Inventory.Type}
}

// configuredSpecs are the tables served whatever the catalog holds: the
// raw tables of the explicitly mapped topics (empty until they exist),
// the dead-letter table, the read models and the audit log.
func configuredSpecs(layout *lake.Layout, readModels []string, models []*readmodel.Model) ([]*tableSpec, error) {
	var specs []*tableSpec
	for _, t := range layout.Topics() {
		specs = append(specs, rawSpec(t.Table, t.Topic))
	}
	specs = append(specs, &tableSpec{name: layout.DLQ(), dlq: true, def: lake.DLQTableDef(layout.DLQ())})
	defs := map[string]lake.TableDef{}
	for _, m := range models {
		defs[m.Name] = m.TableDef()
	}
	for _, name := range readModels {
		def, ok := defs[name]
		if !ok {
			return nil, fmt.Errorf("query: %q is not a read-model table", name)
		}
		specs = append(specs, &tableSpec{name: name, readModel: true, def: def})
	}
	// The audit log is served (empty until its first commit) to the roles
	// granted it by name.
	specs = append(specs, &tableSpec{name: lake.TableAuditLog, readModel: true, def: lake.AuditLogTableDef(lake.TableAuditLog)})
	return specs, nil
}

// rawSpec is the spec of a raw table (before or after it exists).
func rawSpec(name, topic string) *tableSpec {
	return &tableSpec{name: name, topic: topic, def: lake.RawTableDef(name, topic, nil, nil)}
}

// foundSpec is the spec of a table found in the catalog that the
// configuration does not name: the raw table of a topic taken by
// pattern, or another table of eventlake's (the erasure log), served as
// committed under its own name; nil for a table that is not
// eventlake's.
func foundSpec(name string, tbl *table.Table) *tableSpec {
	switch kind := tbl.Properties()[lake.PropKind]; kind {
	case lake.KindRaw:
		return rawSpec(name, tbl.Properties()[lake.PropTopic])
	case "":
		return nil
	default:
		return &tableSpec{name: name, readModel: true,
			def: lake.TableDef{Name: name, Schema: tbl.Schema(), Spec: tbl.Spec(), Properties: tbl.Properties()}}
	}
}

// ordersSpec is the raw table the revenue endpoint reads: the one of the
// orders' topic (read_models.orders.topic).
func (s *Service) ordersSpec(gen *generation) *tableState {
	for _, st := range gen.tables {
		if st.spec.hasHot() && st.spec.topic == s.deps.Inputs.Orders.Topic {
			return st
		}
	}
	return nil
}

// lakeDirs are the directories DuckDB may read: the local warehouse and
// the configured extra directories.
func lakeDirs(warehouse string, extra []string) ([]string, error) {
	var dirs []string
	if p, ok := lake.LocalPath(warehouse); ok && warehouse != "" {
		dirs = append(dirs, p)
	}
	for _, d := range extra {
		p, ok := lake.LocalPath(d)
		if !ok {
			p = d
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("query.lake_dirs: make %q absolute: %w", d, err)
		}
		dirs = append(dirs, abs)
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("query: the warehouse %q is not a local directory and query.lake_dirs is empty; DuckDB here reads local files only", warehouse)
	}
	for i, d := range dirs {
		d = filepath.Clean(d)
		if strings.ContainsAny(d, "'") {
			return nil, fmt.Errorf("query: lake directory %q contains a quote", d)
		}
		dirs[i] = strings.TrimSuffix(d, string(filepath.Separator)) + string(filepath.Separator)
	}
	return dirs, nil
}

// inLake reports whether a local path is inside a lake directory.
func (s *Service) inLake(path string) bool {
	clean := filepath.Clean(path)
	for _, d := range s.lakeDirs {
		if strings.HasPrefix(clean, d) {
			return true
		}
	}
	return false
}

// openDuckDB opens the database, configures and locks it, defines the
// macros every statement may call, and opens the refresher's connection
// and the query connections.
//
// The sandbox: external access is off except for the lake directories
// (read_parquet on the lake works; read_csv('/etc/passwd'), COPY TO,
// ATTACH, INSTALL/LOAD and globs elsewhere fail), and the configuration is
// locked, so no later SET can undo it. Everything else is set before the
// lock. In-memory writes (CREATE TABLE) are still possible in DuckDB; the
// service refuses them itself (checkText, checkStatementType).
func (s *Service) openDuckDB(ctx context.Context) error {
	conn, err := duckdb.NewConnector("", nil)
	if err != nil {
		return fmt.Errorf("open duckdb: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(s.cfg.MaxConcurrentQueries + 2)
	db.SetMaxIdleConns(s.cfg.MaxConcurrentQueries + 2)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	fail := func(err error) error {
		if cerr := db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close duckdb: %w", cerr))
		}
		return err
	}
	admin, err := db.Conn(ctx)
	if err != nil {
		return fail(fmt.Errorf("connect to duckdb: %w", err))
	}
	quoted := make([]string, len(s.lakeDirs))
	for i, d := range s.lakeDirs {
		quoted[i] = duck.QuoteString(d)
	}
	settings := []string{
		"SET GLOBAL TimeZone = 'UTC'",
		"SET GLOBAL memory_limit = " + duck.QuoteString(s.cfg.MemoryLimit),
		"SET GLOBAL parquet_metadata_cache = true",
		// Cached blocks of local files are not checked against the file
		// on every read: the service reads data files, which are written
		// once under a new name and never changed (a rewrite writes a new
		// file), and remote ones through its local cache. With the sandbox
		// below, the check costs DuckDB 1.5.6 about 0.1 ms a file: an
		// event_id lookup over a month of hourly files (720, all pruned
		// by statistics) took 178 ms with it and 108 ms without (medians,
		// `eventlake-bench -only lookups`' lake, DuckDB alone).
		"SET GLOBAL validate_external_file_cache = 'VALIDATE_REMOTE'",
		"SET GLOBAL temp_directory = " + duck.QuoteString(s.cfg.TempDir),
		"SET GLOBAL autoinstall_known_extensions = false",
		"SET GLOBAL autoload_known_extensions = false",
	}
	if s.cfg.Threads > 0 {
		settings = append(settings, "SET GLOBAL threads = "+strconv.Itoa(s.cfg.Threads))
	}
	// The temp directory needs no entry in allowed_directories: DuckDB
	// spills there with external access off (checked on 1.5.6).
	settings = append(settings,
		"SET GLOBAL allowed_directories = ["+strings.Join(quoted, ", ")+"]",
		"SET GLOBAL enable_external_access = false",
		"SET GLOBAL lock_configuration = true",
	)
	for _, st := range settings {
		if _, err := admin.ExecContext(ctx, st); err != nil {
			return fail(fmt.Errorf("configure duckdb (%s): %w", st, err))
		}
	}
	// The distinct-count functions over sketch columns (hll_count,
	// hll_merge, hll_estimate): macros in the database's main schema, so
	// every connection has them. They read only their arguments, so the
	// guard's view of a statement (authz.go) stays whole.
	for _, m := range hll.DuckDBMacros() {
		if _, err := admin.ExecContext(ctx, m); err != nil {
			return fail(fmt.Errorf("create duckdb macros: %w", err))
		}
	}
	hotConn, err := db.Conn(ctx)
	if err != nil {
		return fail(fmt.Errorf("connect to duckdb: %w", err))
	}
	if err := s.openHot(ctx, hotConn); err != nil {
		return fail(err)
	}
	pool := &connPool{ch: make(chan *qconn, s.cfg.MaxConcurrentQueries), closed: make(chan struct{})}
	for range s.cfg.MaxConcurrentQueries {
		c, err := db.Conn(ctx)
		if err != nil {
			return fail(fmt.Errorf("connect to duckdb: %w", err))
		}
		pool.ch <- &qconn{c: c}
	}
	s.db, s.admin, s.pool = db, admin, pool
	return nil
}

// Run polls the catalog every RefreshInterval and publishes a new view
// generation whenever a table's snapshot changed. It returns when ctx ends,
// after in-flight queries finished (bounded by QueryTimeout) and DuckDB is
// closed.
func (s *Service) Run(ctx context.Context) error {
	s.refresh(ctx)
	s.sampler.record(s.sampler.gather(s.deps.Now()))
	t := time.NewTicker(s.cfg.RefreshInterval)
	defer t.Stop()
	sample := time.NewTicker(sampleEvery)
	defer sample.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.close()
		case <-t.C:
			s.refresh(ctx)
		case <-sample.C:
			s.sampler.record(s.sampler.gather(s.deps.Now()))
		}
	}
}

// close refuses new queries, waits for running ones and closes DuckDB.
func (s *Service) close() error {
	close(s.pool.closed)
	var errs []error
	// A query holds its connection for at most QueryTimeout plus the time
	// to notice the interrupt.
	wait := time.NewTimer(s.cfg.QueryTimeout + 5*time.Second)
	defer wait.Stop()
drain:
	for range s.cfg.MaxConcurrentQueries {
		select {
		case qc := <-s.pool.ch:
			if err := qc.c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close duckdb connection: %w", err))
			}
		case <-wait.C:
			s.log.Warn("closing duckdb with queries still running")
			break drain
		}
	}
	if err := s.admin.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close duckdb connection: %w", err))
	}
	s.hot.mu.Lock()
	if err := s.hot.conn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close duckdb connection: %w", err))
	}
	s.hot.mu.Unlock()
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close duckdb: %w", err))
	}
	return errors.Join(errs...)
}

// qconn is a pooled DuckDB connection and the generation of its views.
type qconn struct {
	c   *sql.Conn
	gen uint64 // 0: views absent or half-built
	// views are the views the connection holds: name -> SQL.
	views map[string]string
}

// connPool holds the query connections; its capacity is the concurrency
// limit.
type connPool struct {
	ch     chan *qconn
	closed chan struct{}
}

var (
	errBusy   = errors.New("all query slots are busy")
	errClosed = errors.New("the query service is shutting down")
)

// acquire takes a connection, waiting at most wait.
func (p *connPool) acquire(ctx context.Context, wait time.Duration) (*qconn, error) {
	select {
	case <-p.closed:
		return nil, errClosed
	default:
	}
	select {
	case qc := <-p.ch:
		return qc, nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case qc := <-p.ch:
		return qc, nil
	case <-t.C:
		return nil, errBusy
	case <-p.closed:
		return nil, errClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *connPool) release(qc *qconn) { p.ch <- qc }
