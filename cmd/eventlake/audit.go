package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventlake/eventlake/audit"
	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/httpmw"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
)

// AuditConfig is the query audit log of a process that serves data.
type AuditConfig struct {
	// Dir holds the local log (fsynced before an answer goes out); one
	// process per directory. Default <data-dir>/audit.
	Dir string `yaml:"dir"`
	// ShipInterval is how often the log is committed to the audit_log
	// table; default 1 s.
	ShipInterval time.Duration `yaml:"ship_interval"`
}

// auditTrail is a process's audit log and the shipper that commits it.
type auditTrail struct {
	log     *audit.Log
	shipper *audit.Shipper
}

// openAudit opens the process's audit log and its shipper to the catalog.
func openAudit(cfg *Config, cat *lake.Catalog, log *slog.Logger, reg prometheus.Registerer, fp *failpoint.Set) (*auditTrail, error) {
	dir := cfg.Audit.Dir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "audit")
	}
	l, err := audit.Open(dir, audit.Options{Logger: log, Registry: reg})
	if err != nil {
		return nil, err
	}
	com := lake.NewCommitter(cat, lake.CommitConfig{Writer: lake.WriterName("audit")}, lake.CommitHooks{}, log, fp)
	sh, err := audit.NewShipper(l, audit.ShipperConfig{Interval: cfg.Audit.ShipInterval},
		audit.ShipperDeps{Catalog: cat, Committer: com, Logger: log, Registry: reg})
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	return &auditTrail{log: l, shipper: sh}, nil
}

// run ships the log until ctx ends (then a last flush).
func (a *auditTrail) run(ctx context.Context) error { return a.shipper.Run(ctx) }

// close closes the log: after run returned.
func (a *auditTrail) close(log *slog.Logger) {
	if err := a.log.Close(); err != nil && !errors.Is(err, audit.ErrClosed) {
		log.Warn("close the audit log", logkey.Err, err)
	}
}

// kindOf is the audit kind of an API path.
func kindOf(path string) string {
	switch {
	case path == "/v1/sql":
		return audit.KindSQL
	case strings.HasPrefix(path, "/v1/stream/"):
		return audit.KindStream
	case modelObject(path) != "":
		return audit.KindModel
	}
	return "api"
}

// record appends an HTTP request to the audit log.
func (a *auditTrail) record(r *http.Request, p auth.Principal, outcome, errMsg string, objects []string) error {
	if a == nil {
		return nil
	}
	return a.log.Append(context.WithoutCancel(r.Context()), audit.Record{
		Principal: p.Name, Role: p.Role, Client: r.RemoteAddr, Protocol: audit.ProtocolHTTP, Kind: kindOf(r.URL.Path),
		Statement: r.Method + " " + r.URL.RequestURI(), Objects: objects, Outcome: outcome, Error: errMsg,
		RequestID: httpmw.IDFrom(r.Context()),
	})
}
