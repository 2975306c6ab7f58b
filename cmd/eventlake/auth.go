package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/audit"
	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/pgwire"
	"github.com/eventlake/eventlake/query"
	"github.com/eventlake/eventlake/schema/registry"
	"github.com/eventlake/eventlake/web"
)

// access is the front door of a process that serves HTTP (or Postgres
// wire): who may call, with which role, how often.
type access struct {
	cfg     auth.Config
	policy  *auth.Policy
	store   *auth.Store         // nil when authentication is disabled
	authn   *auth.Authenticator // nil when authentication is disabled
	limiter *auth.Limiter
	// sessions are the live page's browser sessions (?token= logs in).
	sessions *auth.Sessions
	close    func() error
	// trail, if set, records refused requests and model API calls (SQL
	// is recorded by the query service).
	trail *auditTrail
	log   *slog.Logger
}

// openTokenStore opens the token store: in the catalog's SQL database,
// or auth.database (a REST catalog has none).
func openTokenStore(ctx context.Context, cfg *Config, cat *lake.Catalog) (*auth.Store, func() error, error) {
	db, dialect := cat.DB()
	closeDB := func() error { return nil }
	if cfg.Auth.Database != "" || db == nil {
		if cfg.Auth.Database == "" {
			return nil, nil, errors.New("with a REST catalog, set auth.database (a PostgreSQL URI or a SQLite file): tokens live in the catalog's SQL database by default, and a REST catalog has none")
		}
		var err error
		if db, dialect, err = openSQLDB("auth.database", cfg.Auth.Database); err != nil {
			return nil, nil, err
		}
		closeDB = db.Close
	}
	store, err := auth.OpenStore(ctx, db, dialect)
	if err != nil {
		_ = closeDB()
		return nil, nil, err
	}
	return store, closeDB, nil
}

// openAccess prepares authentication and authorization of a process whose
// listeners are addrs. With auth.disabled every listener must be on a
// loopback address.
func openAccess(ctx context.Context, cfg *Config, cat *lake.Catalog, log *slog.Logger, addrs ...string) (*access, error) {
	policy, err := auth.NewPolicy(cfg.Auth)
	if err != nil {
		return nil, err
	}
	lim := cfg.Auth.Limits
	lim.Defaults()
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	a := &access{cfg: cfg.Auth, policy: policy, limiter: auth.NewLimiter(lim), sessions: auth.NewSessions(0, 0, nil),
		close: func() error { return nil }, log: log}
	if cfg.Auth.Disabled {
		for _, addr := range addrs {
			if !isLoopback(addr) {
				return nil, fmt.Errorf("auth.disabled is allowed only when every listener is on a loopback address, and %s is not: anyone who reaches it would read everything as admin (listen on 127.0.0.1, or keep authentication on and create tokens with `eventlake token create`)", addr)
			}
		}
		log.Warn("authentication is disabled: every request acts as admin (loopback listeners only)")
		return a, nil
	}
	store, closeDB, err := openTokenStore(ctx, cfg, cat)
	if err != nil {
		return nil, err
	}
	a.store, a.close = store, closeDB
	a.authn = auth.NewAuthenticator(store, cfg.Auth.RefreshInterval, log.With(logkey.Component, "auth"))
	if err := a.authn.Refresh(ctx); err != nil {
		_ = closeDB()
		return nil, err
	}
	return a, nil
}

// isLoopback reports whether a listen address (host:port) binds only
// loopback interfaces: "" and 0.0.0.0 bind every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// openDataAccess is openAccess for a process that serves data: with the
// audit log, which records what its front doors let in and refuse.
func openDataAccess(ctx context.Context, cfg *Config, cat *lake.Catalog, log *slog.Logger, reg prometheus.Registerer, fp *failpoint.Set, addrs ...string) (*access, error) {
	a, err := openAccess(ctx, cfg, cat, log, addrs...)
	if err != nil {
		return nil, err
	}
	if a.trail, err = openAudit(cfg, cat, log, reg, fp); err != nil {
		_ = a.close()
		return nil, err
	}
	return a, nil
}

// run reloads tokens and ships the audit log until ctx ends.
func (a *access) run(ctx context.Context) error {
	var g errgroup.Group
	if a.authn != nil {
		g.Go(func() error { a.authn.Run(ctx); return nil })
	}
	if a.trail != nil {
		g.Go(func() error { return a.trail.run(ctx) })
	}
	return g.Wait()
}

// shutdown releases what the access opened, after run returned.
func (a *access) shutdown() {
	if a.trail != nil {
		a.trail.close(a.log)
	}
	_ = a.close()
}

// auditLog is what the query service records statements in; nil without
// an audit trail.
func (a *access) auditLog() query.Auditor {
	if a.trail == nil {
		return nil
	}
	return a.trail.log
}

// gate is the HTTP gate of the process's API.
func (a *access) gate() *auth.Gate {
	return &auth.Gate{
		Authn: a.authn, Policy: a.policy, Limits: a.limiter,
		Public: func(r *http.Request) bool {
			switch r.URL.Path {
			case "/healthz", "/readyz":
				return true
			case "/metrics":
				return !a.cfg.ProtectMetrics
			}
			return strings.HasPrefix(r.URL.Path, web.AssetsPrefix)
		},
		Sessions: a.sessions,
		// The live page reads these; everything else (POST /v1/sql above
		// all) takes the bearer header only.
		SessionPaths: func(r *http.Request) bool {
			switch r.URL.Path {
			case "/", "/v1/status", "/v1/stream/order_revenue_minute", "/v1/metrics/order_revenue_minute":
				return true
			}
			return false
		},
		Page: func(r *http.Request) bool { return r.URL.Path == "/" },
		Uncounted: func(r *http.Request) bool {
			return strings.HasPrefix(r.URL.Path, "/v1/stream/") || strings.HasPrefix(r.URL.Path, "/v1/models/") && strings.HasSuffix(r.URL.Path, "/stream")
		},
		Refused: func(r *http.Request, p auth.Principal, status int, msg string) {
			if err := a.trail.record(r, p, audit.OutcomeDenied, msg, nil); err != nil {
				a.log.Error("record a refused request in the audit log", logkey.Err, err)
			}
		},
	}
}

// adminTokenFile is where `eventlake dev` keeps the admin token it
// created.
const adminTokenFile = "admin.token"

// ensureDevAdminToken creates an admin token on the first start of a dev
// data directory and writes it to <data-dir>/admin.token (0600). It logs
// the path, never the token.
func ensureDevAdminToken(ctx context.Context, a *access, dataDir string, log *slog.Logger) (string, error) {
	if a.store == nil {
		return "", nil
	}
	path := filepath.Join(dataDir, adminTokenFile)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	const name = "dev-admin"
	tok, err := a.store.Create(ctx, name, auth.RoleAdmin)
	if errors.Is(err, auth.ErrExists) {
		// The file is gone but its token lives: nobody can know it now.
		log.Warn("the dev admin token file was missing; revoking its token and creating a new one", "file", path)
		if err = a.store.Revoke(ctx, name); err == nil {
			tok, err = a.store.Create(ctx, name, auth.RoleAdmin)
		}
	}
	if err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write the admin token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write the admin token: %w", err)
	}
	log.Info("created an admin token (send it as \"Authorization: Bearer <token>\")", "file", path, "name", name)
	return path, nil
}

// openSQLDB opens a PostgreSQL URI or a SQLite file of setting.
func openSQLDB(setting, dsn string) (*sql.DB, string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, "", fmt.Errorf("open %s %s: %w", setting, lake.RedactURI(dsn), err)
		}
		return db, lake.DialectPostgres, nil
	}
	db, err := sql.Open("sqlite", lake.SQLiteDSN(dsn))
	if err != nil {
		return nil, "", fmt.Errorf("open %s %s: %w", setting, dsn, err)
	}
	return db, lake.DialectSQLite, nil
}

// protect serves mux behind the gate: pprof admin only, schema registry
// writes for roles that manage schemas, the model endpoints for roles
// with an unrestricted grant on the model they read.
func (a *access) protect(mux http.Handler) http.Handler {
	g := a.gate()
	return g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, "/debug/pprof"):
			g.Require(auth.IsAdmin, "the admin role (profiles reveal internals)", mux).ServeHTTP(w, r)
		case registry.IsWrite(r.Method, p):
			g.Require(auth.CanManageSchemas, "the right to manage schemas (admin, or auth.roles.<role>.manage_schemas)", mux).ServeHTTP(w, r)
		case modelObject(p) != "":
			obj := modelObject(p)
			// Recorded before the answer is sent, as SQL is.
			recorded := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				pr, _ := auth.From(r.Context())
				a.trail.serveRecorded(w, r, pr, []string{obj}, mux)
			})
			g.Require(func(role *auth.Role) bool { gr := role.Grant(obj); return gr != nil && !gr.Restricted() },
				"an unrestricted grant on "+strconv.Quote(obj)+" (masked or filtered grants are served by SQL only)", recorded).ServeHTTP(w, r)
		default:
			mux.ServeHTTP(w, r)
		}
	}))
}

// modelObject names the read model (or view) an API path reads.
func modelObject(path string) string {
	switch path {
	case "/v1/metrics/order_revenue_minute", "/v1/stream/order_revenue_minute":
		return lake.TableOrderRevenueMinute
	case "/v1/windows":
		return "orders"
	case "/v1/models":
		return ""
	case "/v1/products":
		return "products"
	}
	// /v1/models/{name} and /v1/models/{name}/stream read the model.
	if rest, ok := strings.CutPrefix(path, "/v1/models/"); ok {
		name, _ := strings.CutSuffix(rest, "/stream")
		if name != "" && !strings.Contains(name, "/") {
			return name
		}
	}
	return ""
}

// runToken manages bearer tokens: create, list, revoke.
func runToken(ctx context.Context, args []string, env *runEnv) error {
	if len(args) == 0 {
		return usageError{"token: want create, list or revoke"}
	}
	sub, args := args[0], args[1:]
	if strings.HasPrefix(sub, "-") { // token --help
		sub, args = "", append([]string{sub}, args...)
	}
	fs := flag.NewFlagSet(strings.TrimSpace("token "+sub), flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, false, false, "")
	name := fs.String("name", "", "the token's name (the Postgres user name)")
	role := fs.String("role", "", "the token's role: admin, analyst, dashboard, compliance, or one of auth.roles")
	all := fs.Bool("all", false, "list revoked tokens too")
	cf.registerCreate(fs)
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if sub != "create" && sub != "list" && sub != "revoke" {
		return usageError{fmt.Sprintf("token: unknown command %q (want create, list or revoke)", sub)}
	}
	cfg, _, err := loadConfig(&cf, env)
	if err != nil {
		return err
	}
	cat, err := openLake(ctx, cfg, cf.createLake)
	if err != nil {
		return err
	}
	defer cat.Close()
	store, closeDB, err := openTokenStore(ctx, cfg, cat)
	if err != nil {
		return err
	}
	defer closeDB()
	switch sub {
	case "create":
		policy, err := auth.NewPolicy(cfg.Auth)
		if err != nil {
			return err
		}
		if *name == "" || *role == "" {
			return usageError{"token create: --name and --role are required"}
		}
		if _, ok := policy.Role(*role); !ok {
			return usageError{fmt.Sprintf("token create: role %q is not one of %s", *role, strings.Join(policy.Names(), ", "))}
		}
		tok, err := store.Create(ctx, *name, *role)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, tok)
		fmt.Fprintf(env.stderr, "created token %q with role %s; it is shown only now: keep it in a secret store\n", *name, *role)
		return nil
	case "list":
		toks, err := store.List(ctx, *all)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tREVOKED")
		for _, t := range toks {
			revoked := "-"
			if t.RevokedAt != nil {
				revoked = t.RevokedAt.Format("2006-01-02T15:04:05Z")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Role, t.CreatedAt.Format("2006-01-02T15:04:05Z"), revoked)
		}
		return tw.Flush()
	case "revoke":
		if *name == "" {
			return usageError{"token revoke: --name is required"}
		}
		if err := store.Revoke(ctx, *name); err != nil {
			return err
		}
		fmt.Fprintf(env.stderr, "revoked token %q; every process refuses it within auth.refresh_interval (default %v)\n", *name, auth.DefaultRefreshInterval)
		return nil
	}
	return nil // sub is checked above
}

// postgres opens the Postgres front end of qs on cfg.Postgres.Listen
// ("" or "off": none). It returns the server and its listener, to run
// with srv.Run(ctx, ln).
func (a *access) postgres(cfg *Config, qs *query.Service, log *slog.Logger, reg prometheus.Registerer) (*pgwire.Server, net.Listener, error) {
	if cfg.Postgres.Listen == "" || cfg.Postgres.Listen == "off" {
		return nil, nil, nil
	}
	srv, err := pgwire.New(cfg.Postgres, qs.PostgresBackend(a.authn, a.limiter), log, reg)
	if err != nil {
		return nil, nil, err
	}
	ln, err := srv.Listen()
	if err != nil {
		return nil, nil, portTaken(err, "--pg-listen")
	}
	return srv, ln, nil
}
