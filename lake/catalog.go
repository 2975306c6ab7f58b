// Package lake is the foundation every eventlake stage stands on. It owns
// the lake itself: the Iceberg catalog (SQLite embedded by default,
// PostgreSQL shared by several processes, or a REST catalog), the
// warehouse's storage (local files or S3-compatible object storage,
// objstore), the table Layout (column layout, partition spec and
// properties of raw, dead-letter, read-model and log tables), data files
// (Parquet writers that describe what they wrote), the Kafka offsets
// stored in Iceberg snapshot summaries, and the one commit protocol
// (commit.go) every writer uses.
//
//	ingest -> streamer -> (lake tables) -> compactor -> query
//	   \____________ schema (registry, envelope, codec) ____________/
//	    \___________________________ lake ___________________________/
//
// Storage is explicit: every table this package hands out reads and
// writes through the Catalog's object store client (one connection pool,
// bounded timeouts); callers never put it in a context.
package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	iceio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // s3:// FileIO (only the S3 backend of gocloud)
	"github.com/apache/iceberg-go/table"
	"github.com/apache/iceberg-go/utils"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for the shared PostgreSQL catalog
	_ "modernc.org/sqlite"             // database/sql driver "sqlite" for the embedded catalog

	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/lake/objstore"
)

// Catalog types.
const (
	TypeSQLite   = "sqlite"
	TypePostgres = "postgres"
	TypeREST     = "rest"
)

// Config says which Iceberg catalog to use and where the warehouse is.
type Config struct {
	// Type is "sqlite" (default, embedded), "postgres" (a shared SQL
	// catalog for several processes) or "rest".
	Type string `yaml:"type"`
	// Name is the catalog name recorded in the catalog database.
	Name string `yaml:"name"`
	// URI is the SQLite database file for "sqlite", a connection URI
	// (postgres://user:password@host:port/db?sslmode=...) for "postgres"
	// and the endpoint for "rest". A postgres URI may hold a password: it
	// is never logged.
	URI string `yaml:"uri"`
	// Warehouse is where table data lives: an absolute file:// URI (or a
	// local path, made absolute) or s3://bucket/prefix. For a REST
	// catalog it may also be a warehouse name the server knows.
	Warehouse string `yaml:"warehouse"`
	// S3 is how to reach an s3:// warehouse: endpoint, region,
	// path-style addressing, credentials (default: the AWS chain).
	S3 objstore.Config `yaml:"s3"`
	// MaxOpenConns bounds the connections to a postgres catalog.
	MaxOpenConns int `yaml:"max_open_conns"`
	// Namespace holds eventlake's tables.
	Namespace string `yaml:"namespace"`
	// Credential ("client_id:client_secret", OAuth2) and Token authenticate
	// to a REST catalog; never logged.
	Credential string `yaml:"credential"`
	Token      string `yaml:"token"`
	// SigV4 signs REST catalog requests with AWS Signature V4 (Amazon S3
	// Tables, SeaweedFS), with the credentials of S3 (or the AWS default
	// chain); SigningName is the service name (default s3tables).
	SigV4       bool   `yaml:"sigv4"`
	SigningName string `yaml:"signing_name"`
	// Properties are passed to iceberg-go as catalog properties (for
	// example s3.* settings); never logged.
	Properties map[string]string `yaml:"properties"`
}

// Defaults fills unset fields for an embedded catalog under dataDir.
func (c *Config) Defaults(dataDir string) {
	if c.Type == "" {
		c.Type = TypeSQLite
	}
	if c.Name == "" {
		c.Name = "eventlake"
	}
	if c.Namespace == "" {
		c.Namespace = "lake"
	}
	if c.Type == TypeSQLite && c.URI == "" && dataDir != "" {
		c.URI = filepath.Join(dataDir, "catalog.db")
	}
	if c.Warehouse == "" && dataDir != "" {
		c.Warehouse = filepath.Join(dataDir, "warehouse")
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = 8
	}
	c.S3.Defaults()
}

// Validate checks the configuration and normalizes the warehouse location
// to an absolute URI.
func (c *Config) Validate() error {
	switch c.Type {
	case TypeSQLite:
		if c.URI == "" {
			return errors.New("catalog.uri: the SQLite database path is required")
		}
	case TypePostgres:
		u, err := url.Parse(c.URI)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			// Never echo the URI: it may carry a password.
			return fmt.Errorf("catalog.uri: %s is not a postgres://user:password@host:port/database URI", RedactURI(c.URI))
		}
		if c.MaxOpenConns < 1 {
			return errors.New("catalog.max_open_conns must be positive")
		}
	case TypeREST:
		if _, err := url.ParseRequestURI(c.URI); err != nil {
			return fmt.Errorf("catalog.uri: %s is not a URL: %w", RedactURI(c.URI), err)
		}
	default:
		return fmt.Errorf("catalog.type: %q is not one of %q, %q, %q", c.Type, TypeSQLite, TypePostgres, TypeREST)
	}
	if c.Namespace == "" || strings.Contains(c.Namespace, ".") {
		return fmt.Errorf("catalog.namespace: %q must be one non-empty identifier without dots", c.Namespace)
	}
	if c.Warehouse == "" && c.Type != TypeREST {
		return errors.New("catalog.warehouse is required")
	}
	if c.Type == TypeREST && c.Warehouse != "" && !strings.Contains(c.Warehouse, "://") {
		// A REST warehouse may be a name the server resolves, not a path.
		return nil
	}
	w, err := NormalizeWarehouse(c.Warehouse)
	if err != nil {
		return fmt.Errorf("catalog.warehouse: %w", err)
	}
	c.Warehouse = w
	if objstore.IsS3(w) {
		if err := c.S3.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// RedactURI hides the password (and any query parameter naming one) of a
// connection URI, for error messages and logs.
func RedactURI(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URI)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") || strings.Contains(strings.ToLower(k), "secret") {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// String describes the configuration without secrets.
func (c Config) String() string {
	return fmt.Sprintf("type=%s uri=%s warehouse=%s namespace=%s", c.Type, RedactURI(c.URI), c.Warehouse, c.Namespace)
}

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("type", c.Type), slog.String("uri", RedactURI(c.URI)),
		slog.String("warehouse", c.Warehouse), slog.String("namespace", c.Namespace),
	}
	if objstore.IsS3(c.Warehouse) {
		attrs = append(attrs, slog.Any("s3", c.S3))
	}
	return slog.GroupValue(attrs...)
}

// NormalizeWarehouse turns a local path into an absolute file:// URI and
// checks that URIs are absolute (iceberg-go resolves relative file:// paths
// against the working directory, which silently splits a lake in two).
func NormalizeWarehouse(w string) (string, error) {
	if w == "" {
		return "", nil
	}
	if !strings.Contains(w, "://") {
		abs, err := filepath.Abs(w)
		if err != nil {
			return "", fmt.Errorf("make %q absolute: %w", w, err)
		}
		return "file://" + abs, nil
	}
	u, err := url.Parse(w)
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", w, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return "", fmt.Errorf("%q must be an absolute file:///path URI", w)
		}
		return "file://" + filepath.Clean(u.Path), nil
	case "s3", "s3a", "gs", "abfs", "abfss", "mem":
		return strings.TrimSuffix(w, "/"), nil
	default:
		return "", fmt.Errorf("%q: unsupported scheme %q", w, u.Scheme)
	}
}

// LocalPath returns the local filesystem path of a file:// location, and
// false for any other scheme.
func LocalPath(location string) (string, bool) {
	if strings.HasPrefix(location, "file://") {
		return strings.TrimPrefix(location, "file://"), true
	}
	if strings.HasPrefix(location, "/") {
		return location, true
	}
	return "", false
}

// Catalog is an opened Iceberg catalog plus eventlake's namespace.
type Catalog struct {
	cfg   Config
	cat   icecat.Catalog
	db    *sql.DB         // set for SQL catalogs; closed by Close
	store *objstore.Store // set for s3:// warehouses
	// schemaCommitter commits schema changes (Evolve).
	schemaCommitter *Committer
}

// ErrNoLake is OpenExisting's answer for a catalog that holds no lake: a
// SQLite database that does not exist, a SQL database without the
// catalog's tables, or a catalog without eventlake's namespace.
var ErrNoLake = errors.New("no lake here")

// Open opens the catalog and its namespace, creating them (and for
// SQLite, the database file and the local warehouse directory) when they
// are missing. Only the processes that write events should create a lake;
// the others use OpenExisting.
func Open(ctx context.Context, cfg Config) (*Catalog, error) {
	return open(ctx, cfg, true)
}

// OpenExisting opens a catalog that already holds a lake, and creates
// nothing: a wrong data directory or database is ErrNoLake, not a new
// empty lake that the caller then reads or maintains.
func OpenExisting(ctx context.Context, cfg Config) (*Catalog, error) {
	return open(ctx, cfg, false)
}

func open(ctx context.Context, cfg Config, create bool) (*Catalog, error) {
	cfg.S3.Defaults() // idempotent; a caller that built Config by hand gets the same S3 defaults
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	props := iceberg.Properties{}
	for k, v := range cfg.Properties {
		props[k] = v
	}
	if cfg.Warehouse != "" {
		props["warehouse"] = cfg.Warehouse
	}
	if !create {
		// iceberg-go's SQL catalog creates its tables on open unless told
		// not to; whether they exist is checked below.
		props["init_catalog_tables"] = "false"
	}
	c := &Catalog{cfg: cfg}
	if objstore.IsS3(cfg.Warehouse) {
		// The FileIO of every table reads these; every table this
		// catalog hands out also gets the process-wide client with
		// bounded timeouts (wrap).
		for k, v := range cfg.S3.IcebergProperties() {
			if _, set := props[k]; !set {
				props[k] = v
			}
		}
		st, err := objstore.New(ctx, cfg.S3)
		if err != nil {
			return nil, fmt.Errorf("open s3 warehouse %s: %w", cfg.Warehouse, err)
		}
		c.store = st
	}
	switch cfg.Type {
	case TypeSQLite:
		if !create {
			// Opening a SQLite database that does not exist creates it.
			if _, err := os.Stat(cfg.URI); errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%w: the SQLite catalog %s does not exist", ErrNoLake, cfg.URI)
			}
		}
		if err := os.MkdirAll(filepath.Dir(cfg.URI), 0o755); err != nil {
			return nil, fmt.Errorf("create catalog directory: %w", err)
		}
		if p, ok := LocalPath(cfg.Warehouse); ok {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return nil, fmt.Errorf("create warehouse directory: %w", err)
			}
		}
		db, err := sql.Open("sqlite", SQLiteDSN(cfg.URI))
		if err != nil {
			return nil, fmt.Errorf("open sqlite catalog %s: %w", cfg.URI, err)
		}
		sc, err := newSQLCatalog(ctx, cfg.Name, db, sqlcat.SQLite, props)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("open sqlite catalog %s: %w", cfg.URI, err)
		}
		c.cat, c.db = sc, db
	case TypePostgres:
		db, sc, err := openPostgres(ctx, cfg, props)
		if err != nil {
			return nil, err
		}
		c.cat, c.db = sc, db
	case TypeREST:
		var opts []rest.Option
		if cfg.Warehouse != "" {
			opts = append(opts, rest.WithWarehouseLocation(cfg.Warehouse))
		}
		if cfg.Credential != "" {
			opts = append(opts, rest.WithCredential(cfg.Credential))
		}
		if cfg.Token != "" {
			opts = append(opts, rest.WithOAuthToken(cfg.Token))
		}
		if cfg.SigV4 {
			name := cfg.SigningName
			if name == "" {
				name = "s3tables"
			}
			opts = append(opts, rest.WithSigV4RegionSvc(cfg.S3.Region, name))
			if c.store != nil {
				opts = append(opts, rest.WithAwsConfig(*c.store.AWSConfig()))
			}
		}
		if len(props) > 0 {
			opts = append(opts, rest.WithAdditionalProps(props))
		}
		rc, err := rest.NewCatalog(ctx, cfg.Name, cfg.URI, opts...)
		if err != nil {
			return nil, fmt.Errorf("open rest catalog %s: %w", RedactURI(cfg.URI), err)
		}
		c.cat = rc
	}
	c.schemaCommitter = NewCommitter(c, CommitConfig{Writer: WriterName("schema"), MaxFailures: 5}, CommitHooks{}, nil, nil)
	ensure := c.ensureNamespace
	if !create {
		ensure = c.checkLake
	}
	if err := ensure(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// checkLake returns ErrNoLake unless the catalog holds eventlake's
// namespace (and, for a SQL catalog, the catalog's own tables).
func (c *Catalog) checkLake(ctx context.Context) error {
	where := RedactURI(c.cfg.URI)
	if c.db != nil {
		q := "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'iceberg_namespace_properties'"
		if c.cfg.Type == TypePostgres {
			q = "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'iceberg_namespace_properties' AND schemaname = ANY (current_schemas(false))"
		}
		var n int
		if err := c.db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return fmt.Errorf("look for a lake in the %s catalog %s: %w", c.cfg.Type, where, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: the %s catalog %s holds no Iceberg catalog tables", ErrNoLake, c.cfg.Type, where)
		}
	}
	exists, err := c.cat.CheckNamespaceExists(ctx, table.Identifier{c.cfg.Namespace})
	if err != nil {
		return fmt.Errorf("check namespace %s: %w", c.cfg.Namespace, err)
	}
	if !exists {
		return fmt.Errorf("%w: the %s catalog %s has no namespace %q", ErrNoLake, c.cfg.Type, where, c.cfg.Namespace)
	}
	return nil
}

func (c *Catalog) ensureNamespace(ctx context.Context) error {
	ns := table.Identifier{c.cfg.Namespace}
	exists, err := c.cat.CheckNamespaceExists(ctx, ns)
	if err != nil {
		return fmt.Errorf("check namespace %s: %w", c.cfg.Namespace, err)
	}
	if exists {
		return nil
	}
	if err := c.cat.CreateNamespace(ctx, ns, nil); err != nil && !errors.Is(err, icecat.ErrNamespaceAlreadyExists) {
		// Several processes starting at once race to create it; the
		// loser's error is not always ErrNamespaceAlreadyExists (a unique
		// violation from the database). It exists now: that is success.
		if again, cerr := c.cat.CheckNamespaceExists(ctx, ns); cerr == nil && again {
			return nil
		}
		return fmt.Errorf("create namespace %s: %w", c.cfg.Namespace, err)
	}
	return nil
}

// Close releases the catalog's database handle.
func (c *Catalog) Close() error {
	if c.db != nil {
		return c.db.Close()
	}
	return nil
}

// Store is the object store of an s3:// warehouse, nil for a local one.
func (c *Catalog) Store() *objstore.Store { return c.store }

// Iceberg returns the underlying iceberg-go catalog.
func (c *Catalog) Iceberg() icecat.Catalog { return c.cat }

// Config returns the validated configuration.
func (c *Catalog) Config() Config { return c.cfg }

// Ident returns the identifier of table name in eventlake's namespace.
func (c *Catalog) Ident(name string) table.Identifier {
	return table.Identifier{c.cfg.Namespace, name}
}

// LoadTable loads the current metadata of table name.
func (c *Catalog) LoadTable(ctx context.Context, name string) (*table.Table, error) {
	t, err := c.cat.LoadTable(c.storage(ctx), c.Ident(name))
	if err != nil {
		return nil, fmt.Errorf("load table %s.%s: %w", c.cfg.Namespace, name, err)
	}
	return c.wrap(t), nil
}

// storage returns ctx carrying the process-wide S3 client settings, which
// iceberg-go's S3 FileIO reads from the context it is opened with.
func (c *Catalog) storage(ctx context.Context) context.Context {
	if c.store == nil {
		return ctx
	}
	return utils.WithAwsConfig(ctx, c.store.AWSConfig())
}

// wrap makes every FileIO of t use the catalog's object store client (one
// connection pool, bounded connect and response timeouts, the retry
// budget), whatever context its callers pass. Without it iceberg-go builds
// a client per call from the catalog properties, with no response
// timeout. Tables committed from t keep its FileIO, so the wrapping holds
// for their whole lineage.
func (c *Catalog) wrap(t *table.Table) *table.Table {
	if c.store == nil || t == nil {
		return t
	}
	cio, ok := c.cat.(table.CatalogIO)
	if !ok {
		return t
	}
	orig := t
	fsF := func(ctx context.Context) (iceio.IO, error) { return orig.FS(c.storage(ctx)) }
	return table.New(t.Identifier(), t.Metadata(), t.MetadataLocation(), fsF, cio)
}

// EnsureTable creates table def.Name if it does not exist, and adds any
// columns of def that an existing table lacks (tables written by an older
// eventlake, or a layout that grew with a schema). It returns the loaded
// table.
func (c *Catalog) EnsureTable(ctx context.Context, def TableDef) (*table.Table, error) {
	ident := c.Ident(def.Name)
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		t, err := c.LoadTable(ctx, def.Name)
		if err == nil {
			return c.Evolve(ctx, t, def.Schema.Fields(), nil)
		}
		if !errors.Is(err, icecat.ErrNoSuchTable) {
			return nil, err
		}
		spec := def.Spec
		t, err = c.cat.CreateTable(c.storage(ctx), ident, def.Schema,
			icecat.WithPartitionSpec(&spec),
			icecat.WithProperties(def.Properties))
		if err == nil {
			return c.wrap(t), nil
		}
		// Another process created it first: ErrTableAlreadyExists, for
		// some databases a unique violation, for some REST catalogs a
		// conflict to retry ("table changed during create") while the
		// other create is not visible yet. Load it, or try again.
		if t, lerr := c.LoadTable(ctx, def.Name); lerr == nil {
			return c.Evolve(ctx, t, def.Schema.Fields(), nil)
		}
		if attempt >= 8 {
			return nil, fmt.Errorf("create table %s (%d attempts): %w", def.Name, attempt, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("create table %s: %w", def.Name, errors.Join(err, ctx.Err()))
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// TaskSchema is the commit task of schema changes.
const TaskSchema = "schema"

// Evolve makes the table's schema hold every field of want, and its
// properties hold props (keys set to these values; other keys kept): missing
// columns are added as optional columns (new field ids: rows written
// before read null), a decimal column whose precision want widens is
// widened (a legal Iceberg promotion).
// It never drops, renames or narrows a column; a column whose type cannot
// become want's is an error. Two processes evolving the same table at
// once converge: each attempt is staged on the table as it is then, and
// one that finds nothing missing commits nothing (commit.go).
func (c *Catalog) Evolve(ctx context.Context, t *table.Table, want []iceberg.NestedField, props iceberg.Properties) (*table.Table, error) {
	name := t.Identifier()[len(t.Identifier())-1]
	type change struct {
		add, widen []iceberg.NestedField
		props      iceberg.Properties
	}
	changes := func(t *table.Table) (change, error) {
		var ch change
		have := t.Schema()
		for _, f := range want {
			got, ok := have.FindFieldByName(f.Name)
			if !ok {
				ch.add = append(ch.add, f)
				continue
			}
			if got.Type.Equals(f.Type) {
				continue
			}
			if wider, ok := widens(got.Type, f.Type); ok {
				if wider {
					ch.widen = append(ch.widen, f)
				}
				continue
			}
			return ch, fmt.Errorf("table %s: column %s is %s in the lake but eventlake writes %s; migrate the table or choose another name",
				name, f.Name, got.Type, f.Type)
		}
		for key, v := range props {
			if cur, ok := t.Properties()[key]; !ok || cur != v {
				if ch.props == nil {
					ch.props = iceberg.Properties{}
				}
				ch.props[key] = v
			}
		}
		return ch, nil
	}
	empty := func(ch change) bool { return len(ch.add) == 0 && len(ch.widen) == 0 && len(ch.props) == 0 }
	ch, err := changes(t)
	if err != nil {
		return nil, err
	}
	if empty(ch) {
		return t, nil
	}
	return c.schemaCommitter.Commit(ctx, Change{
		Table: name, Task: TaskSchema, Base: t,
		Stage: func(_ context.Context, tx *table.Transaction, _ iceberg.Properties) error {
			staged, err := tx.StagedTable()
			if err != nil {
				return err
			}
			ch, err := changes(staged.Table)
			if err != nil {
				return err
			}
			if empty(ch) {
				return ErrNothingToCommit
			}
			if len(ch.add) > 0 || len(ch.widen) > 0 {
				upd := tx.UpdateSchema(true, false)
				for _, f := range ch.add {
					upd = upd.AddColumn([]string{f.Name}, f.Type, f.Doc, false, nil)
				}
				for _, f := range ch.widen {
					upd = upd.UpdateColumn([]string{f.Name}, table.ColumnUpdate{FieldType: iceberg.Optional[iceberg.Type]{Val: f.Type, Valid: true}})
				}
				if err := upd.Commit(); err != nil {
					return fmt.Errorf("change the schema of %s: %w", name, err)
				}
			}
			if len(ch.props) > 0 {
				if err := tx.SetProperties(ch.props); err != nil {
					return fmt.Errorf("set properties of %s: %w", name, err)
				}
			}
			return nil
		},
		// A schema change makes no snapshot: it is applied when nothing
		// is missing any more.
		Applied: func(fresh *table.Table) bool {
			ch, err := changes(fresh)
			return err == nil && empty(ch)
		},
	})
}

// widens reports whether a column of type have can hold want: equal, or
// a decimal of the same scale and at least the same precision (wider
// true when the column must be widened to want).
func widens(have, want iceberg.Type) (wider, ok bool) {
	hd, ok1 := have.(iceberg.DecimalType)
	wd, ok2 := want.(iceberg.DecimalType)
	if ok1 && ok2 && hd.Scale() == wd.Scale() {
		return wd.Precision() > hd.Precision(), true
	}
	return false, have.Equals(want)
}

// openPostgres opens the shared SQL catalog.
func openPostgres(ctx context.Context, cfg Config, props iceberg.Properties) (*sql.DB, *sqlcat.Catalog, error) {
	db, err := sql.Open("pgx", cfg.URI)
	if err != nil {
		return nil, nil, fmt.Errorf("open postgres catalog %s: %w", RedactURI(cfg.URI), err)
	}
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxOpenConns)
	// Connections broken by a database restart are replaced, not reused.
	db.SetConnMaxIdleTime(time.Minute)
	sc, err := newSQLCatalog(ctx, cfg.Name, db, sqlcat.Postgres, props)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("open postgres catalog %s: %w", RedactURI(cfg.URI), err)
	}
	return db, sc, nil
}

// newSQLCatalog creates iceberg-go's SQL catalog, retrying a few times:
// several processes starting together race on creating the catalog's
// tables (PostgreSQL can fail CREATE TABLE IF NOT EXISTS with a unique
// violation; SQLite can refuse the switch to WAL without waiting), and a
// database that is just restarting refuses connections for a moment.
func newSQLCatalog(ctx context.Context, name string, db *sql.DB, dialect sqlcat.SupportedDialect, props iceberg.Properties) (*sqlcat.Catalog, error) {
	var lastErr error
	for attempt := range 6 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
			}
		}
		sc, err := sqlcat.NewCatalog(name, db, dialect, props)
		if err == nil {
			return sc, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// SetFailpoints arms the protocol's failpoints for the catalog's own
// commits (schema changes), for crash tests. Call it before the catalog
// is used.
func (c *Catalog) SetFailpoints(fp *failpoint.Set) {
	c.schemaCommitter = NewCommitter(c, CommitConfig{Writer: WriterName("schema"), MaxFailures: 5}, CommitHooks{}, nil, fp)
}

// SQLiteDSN is how eventlake opens a SQLite database that several
// processes share: WAL lets readers run beside the writer; the busy
// timeout makes concurrent writers wait instead of failing (it comes
// first: switching a new database to WAL takes a lock that several
// processes opening it at once contend for); synchronous=FULL makes a
// commit durable once it returns; immediate transactions take the write
// lock up front.
func SQLiteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
}

// SQL dialects of SQL catalogs, for stores that share the catalog's
// database (the schema registry).
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// DB returns the catalog's SQL database and its dialect, for stores that
// share it (the schema registry); nil for a REST catalog.
func (c *Catalog) DB() (*sql.DB, string) {
	switch c.cfg.Type {
	case TypeSQLite:
		return c.db, DialectSQLite
	case TypePostgres:
		return c.db, DialectPostgres
	}
	return nil, ""
}
