package main

import (
	"context"
	"errors"
	"log/slog"
	"maps"
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
	return a.begin(r, p, outcome, errMsg, objects)()
}

// begin queues the record of an HTTP request; wait returns once it is on
// disk (record's error).
func (a *auditTrail) begin(r *http.Request, p auth.Principal, outcome, errMsg string, objects []string) (wait func() error) {
	return a.log.Begin(context.WithoutCancel(r.Context()), audit.Record{
		Principal: p.Name, Role: p.Role, Client: r.RemoteAddr, Protocol: audit.ProtocolHTTP, Kind: kindOf(r.URL.Path),
		Statement: r.Method + " " + r.URL.RequestURI(), Objects: objects, Outcome: outcome, Error: errMsg,
		RequestID: httpmw.IDFrom(r.Context()),
	})
}

// serveRecorded serves r with h while its audit record is written, and
// sends nothing of the answer before the record is on disk: the first
// byte (or header, or flush) waits for it. The fsync then overlaps the
// answer's work instead of preceding it. When the record fails, the
// answer is dropped and the request refused (503), as before any work.
func (a *auditTrail) serveRecorded(w http.ResponseWriter, r *http.Request, p auth.Principal, objects []string, h http.Handler) {
	if a == nil {
		h.ServeHTTP(w, r)
		return
	}
	held := &heldUntilLogged{w: w, wait: a.begin(r, p, audit.OutcomeOK, "", objects), before: w.Header().Clone()}
	h.ServeHTTP(held, r)
	held.logged() // an answer without a body waits too
}

// heldUntilLogged is a ResponseWriter that sends nothing until its
// request's audit record is on disk.
type heldUntilLogged struct {
	w      http.ResponseWriter
	wait   func() error
	before http.Header // the headers set before the handler's
	done   bool
	err    error
}

// logged waits for the record once; on failure it answers the refusal in
// place of the answer (the handler's headers dropped, those set before it
// kept).
func (h *heldUntilLogged) logged() bool {
	if !h.done {
		h.done = true
		if h.err = h.wait(); h.err != nil {
			hdr := h.w.Header()
			clear(hdr)
			maps.Copy(hdr, h.before)
			auth.WriteError(h.w, http.StatusServiceUnavailable, "audit_unavailable",
				"the audit log could not record this request, so it is not served: "+h.err.Error())
		}
	}
	return h.err == nil
}

func (h *heldUntilLogged) Header() http.Header { return h.w.Header() }

func (h *heldUntilLogged) WriteHeader(code int) {
	if h.logged() {
		h.w.WriteHeader(code)
	}
}

func (h *heldUntilLogged) Write(b []byte) (int, error) {
	if !h.logged() {
		return 0, h.err
	}
	return h.w.Write(b)
}

// Flush sends what is buffered (a stream's first events), once logged.
func (h *heldUntilLogged) Flush() {
	if h.logged() {
		_ = http.NewResponseController(h.w).Flush()
	}
}

// Unwrap lets http.ResponseController set deadlines on the connection.
func (h *heldUntilLogged) Unwrap() http.ResponseWriter { return h.w }
