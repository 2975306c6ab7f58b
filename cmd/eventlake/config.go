package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/compactor"
	"github.com/eventlake/eventlake/ingest"
	"github.com/eventlake/eventlake/internal/broker"
	"github.com/eventlake/eventlake/internal/config"
	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/kafkaconf"
	"github.com/eventlake/eventlake/internal/route"
	"github.com/eventlake/eventlake/internal/tracing"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/pgwire"
	"github.com/eventlake/eventlake/query"
	"github.com/eventlake/eventlake/readmodel"
	"github.com/eventlake/eventlake/schema"
	"github.com/eventlake/eventlake/schema/registry"
	"github.com/eventlake/eventlake/streamer"
	"github.com/eventlake/eventlake/web"
)

// Config is the whole configuration file. Every section belongs to one
// component; a subcommand uses the sections it runs.
type Config struct {
	// DataDir holds the embedded defaults: catalog.db, warehouse/, kafka/.
	DataDir string           `yaml:"data_dir"`
	Log     LogConfig        `yaml:"log"`
	HTTP    HTTPConfig       `yaml:"http"`
	Kafka   kafkaconf.Config `yaml:"kafka"`
	Broker  broker.Config    `yaml:"broker"`
	Catalog lake.Config      `yaml:"catalog"`
	Ingest  ingest.Config    `yaml:"ingest"`
	// DLQ configures dead-letter replays (automatic on registration).
	DLQ      ingest.ReplayConfig `yaml:"dlq"`
	Query    query.Config        `yaml:"query"`
	Streamer streamer.Config     `yaml:"streamer"`
	// Stream is the hot tier's live push (GET /v1/stream/...).
	Stream streamer.StreamConfig `yaml:"stream"`
	Demo   DemoConfig            `yaml:"demo"`
	// SchemaRegistry is the registry event types are checked against: the
	// built-in one in the catalog database (default), or an external
	// Confluent-compatible one (url).
	SchemaRegistry registry.Config `yaml:"schema_registry"`
	// ReadModels are the declared read models (models; default: the
	// shipped ones, readmodel/shipped.yaml) and the inputs of the windows,
	// the enrichment and the orders and inventory views (defaults:
	// lake/models.yaml).
	ReadModels ReadModelsConfig `yaml:"read_models"`

	Compactor compactor.Config `yaml:"compactor"`
	// Auth is who may call the query service and what each role reads.
	Auth auth.Config `yaml:"auth"`
	// Postgres serves the query service over the Postgres wire protocol
	// (dev: 127.0.0.1:5433; query: off unless listen is set).
	Postgres pgwire.Config `yaml:"postgres"`
	// Audit is the query audit log of processes that serve data.
	Audit AuditConfig `yaml:"audit"`
	// Tracing sends sampled OpenTelemetry spans to an OTLP/HTTP receiver
	// (off unless tracing.endpoint is set).
	Tracing tracing.Config `yaml:"tracing"`
}

// LogConfig selects log verbosity and format.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// HTTPConfig is the HTTP listener (query API, /metrics, /healthz).
type HTTPConfig struct {
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiler under /debug/pprof/ (off by default:
	// profiles and the command line reveal internals).
	Pprof bool `yaml:"pprof"`
	// CORSOrigins are the origins (scheme://host[:port], or "*") whose
	// browser pages may call the API; none by default.
	CORSOrigins []string `yaml:"cors_origins"`
	// TLS serves HTTPS with this certificate and key (PEM), reloaded on
	// SIGHUP.
	TLS HTTPTLSConfig `yaml:"tls"`
}

// HTTPTLSConfig is the HTTP listener's certificate.
type HTTPTLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// DemoConfig shapes the demo producer of `eventlake dev`.
type DemoConfig struct {
	Rate              float64 `yaml:"rate"`
	Seed              uint64  `yaml:"seed"`
	LateFraction      float64 `yaml:"late_fraction"`
	InventoryFraction float64 `yaml:"inventory_fraction"`
	MalformedFraction float64 `yaml:"malformed_fraction"`
}

// commonFlags are the flags every long-running subcommand takes.
type commonFlags struct {
	config   string
	dataDir  string
	logLevel string
	brokers  string
	http     string
	pgListen string
	// createLake lets a command that only reads or maintains a lake
	// create an empty one (--create-lake).
	createLake bool
}

func (c *commonFlags) register(fs *flag.FlagSet, withBrokers, withHTTP bool, httpDefault string) {
	fs.StringVar(&c.config, "config", "", "YAML config file (settings also come from EVENTLAKE_* environment variables)")
	fs.StringVar(&c.dataDir, "data-dir", "", "data directory for the embedded catalog, warehouse and broker (default ./data)")
	fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn or error (default info)")
	if withBrokers {
		fs.StringVar(&c.brokers, "brokers", "", "Kafka seed brokers, comma separated host:port")
	}
	if withHTTP {
		fs.StringVar(&c.http, "http", "", "HTTP listen address (default "+httpDefault+")")
	}
}

// registerPostgres adds --pg-listen.
func (c *commonFlags) registerPostgres(fs *flag.FlagSet, def string) {
	fs.StringVar(&c.pgListen, "pg-listen", "", "Postgres wire protocol listen address, for psql and BI tools (default "+def+"; :0 picks a port)")
}

// registerCreate adds --create-lake, for the commands that may usefully
// start on an empty lake (query, token).
func (c *commonFlags) registerCreate(fs *flag.FlagSet) {
	fs.BoolVar(&c.createLake, "create-lake", false, "create an empty lake when the catalog holds none (dev and ingest always do)")
}

// openLake opens the lake of cfg.Catalog. Only the commands that write
// events (dev, ingest) create one by default: the others refuse a data
// directory or catalog that holds no lake, so that a mistyped --data-dir
// or database is an error instead of a new empty catalog.
func openLake(ctx context.Context, cfg *Config, create bool) (*lake.Catalog, error) {
	if err := cfg.Catalog.Validate(); err != nil {
		return nil, err
	}
	if create {
		return lake.Open(ctx, cfg.Catalog)
	}
	cat, err := lake.OpenExisting(ctx, cfg.Catalog)
	if errors.Is(err, lake.ErrNoLake) {
		return nil, fmt.Errorf("%w; point --data-dir or --config (catalog.uri) at an existing lake, or start `eventlake dev` or `eventlake ingest` there first to create one", err)
	}
	return cat, err
}

// loadClientConfig is loadConfig for the commands that are Kafka clients
// only (produce, topic): brokers default to the embedded broker's address.
func loadClientConfig(ctx context.Context, cf *commonFlags, env *runEnv) (*Config, *slog.Logger, error) {
	cfg, _, err := loadConfig(cf, env)
	if err != nil {
		return nil, nil, err
	}
	if len(cfg.Kafka.Brokers) == 0 {
		cfg.Kafka.Brokers = []string{"127.0.0.1:9092"}
	}
	if err := cfg.Kafka.Validate(); err != nil {
		return nil, nil, err
	}
	if err := cfg.Kafka.CheckAccess(ctx); err != nil {
		return nil, nil, err
	}
	log, err := newLogger(env.stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return nil, nil, err
	}
	return cfg, log, nil
}

// loadConfig builds the configuration: defaults < file < environment <
// flags. Defaults that depend on the data directory are filled last.
func loadConfig(fl *commonFlags, env *runEnv) (*Config, *failpoint.Set, error) {
	cfg := &Config{}
	if fl.config != "" {
		if err := config.LoadFile(fl.config, cfg, env.environ); err != nil {
			return nil, nil, err
		}
	}
	if _, err := config.ApplyEnv(cfg, env.environ, failpoint.EnvVar, tokenEnv); err != nil {
		return nil, nil, fmt.Errorf("environment: %w", err)
	}
	if fl.dataDir != "" {
		cfg.DataDir = fl.dataDir
	}
	if fl.logLevel != "" {
		cfg.Log.Level = fl.logLevel
	}
	if fl.brokers != "" {
		cfg.Kafka.Brokers = splitList(fl.brokers)
	}
	if fl.http != "" {
		cfg.HTTP.Listen = fl.http
	}
	if fl.pgListen != "" {
		cfg.Postgres.Listen = fl.pgListen
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "data"
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	cfg.DataDir = abs
	if cfg.Log.Level == "" {
		cfg.Log.Level = "info"
	}
	cfg.Kafka.Defaults()
	cfg.Catalog.Defaults(cfg.DataDir)
	cfg.Ingest.Defaults()
	cfg.DLQ.Defaults()
	cfg.Query.Defaults()
	cfg.Streamer.Defaults()
	cfg.Stream.Defaults()
	cfg.SchemaRegistry.Defaults()
	cfg.ReadModels.Defaults()
	cfg.ReadModels.Sessions.Defaults(cfg.ReadModels.ModelInputs)
	cfg.Tracing.Defaults()
	if cfg.Query.S3Cache.Dir == "" {
		cfg.Query.S3Cache.Dir = filepath.Join(cfg.DataDir, "s3cache")
	}
	compactorDefaults(cfg)
	if cfg.Broker.DataDir == "" {
		cfg.Broker.DataDir = filepath.Join(cfg.DataDir, "kafka")
	}
	fp, err := failpoint.Parse(env.getenv(failpoint.EnvVar))
	if err != nil {
		return nil, nil, err
	}
	return cfg, fp, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func validateAll(errs ...error) error { return errors.Join(errs...) }

// newStreamer builds the hot tier of a query process: it reads the topics
// ingest reads, hands fresh raw rows to the query service and serves the
// exact read-model endpoints. It checks events with ingest's contract and
// the same schemas, so that it accepts exactly what ingest accepts.
func newStreamer(cfg *Config, layout *lake.Layout, codecs *schema.Resolver, models []*readmodel.Model, qs *query.Service, deps streamer.Deps) (*streamer.Streamer, error) {
	deps.Layout, deps.Codecs, deps.Inputs, deps.Models = layout, codecs, cfg.ReadModels.ModelInputs, models
	sess, err := declaredSessions(cfg, codecs.Set())
	if err != nil {
		return nil, err
	}
	deps.Sessions = sess
	deps.Contract = cfg.Ingest.Contract
	deps.DedupeWindow = int64(cfg.Ingest.DedupeWindow)
	deps.Sink = qs
	sc := cfg.Streamer
	sc.Stream = cfg.Stream
	return streamer.New(sc, deps)
}

// apiHandler serves the query service and its live page, with the hot
// tier's routes in place of the service's own of the same pattern when it
// runs, and the schema registry's API at its root paths when the
// registry is the built-in one. pg says the process also serves the
// Postgres wire protocol (named in the lineage).
func apiHandler(hc HTTPConfig, acc *access, qs *query.Service, st *streamer.Streamer, sr http.Handler, pg bool) http.Handler {
	mux := http.NewServeMux()
	if sr != nil {
		for _, p := range registry.Paths() {
			mux.Handle(p, sr)
		}
	}
	page := web.Handler(web.Options{Stream: st != nil})
	mux.Handle("GET /{$}", page)
	mux.Handle("GET "+web.AssetsPrefix, page)
	var more []route.Route
	if st != nil {
		more = append(more, st.Routes()...)
	}
	if pg {
		more = append(more, pgwire.Route())
	}
	mux.Handle("/", qs.Handler(more...))
	addPprof(hc, mux)
	return acc.protect(mux)
}
