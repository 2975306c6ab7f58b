// Package health answers the two questions an orchestrator and an operator
// ask of each eventlake process: is it alive (GET /healthz: the process
// answers HTTP) and is it ready to serve its role (GET /readyz: every
// component it runs works, or the answer names each one that does not and
// why).
//
// A component registers one check with Checks.Add. Checks run when asked
// (a /readyz request or a /metrics scrape), never in the background, so a
// check must be cheap: it reports state its component already keeps (the
// last error of its loop, a Committer's progress), not a fresh round trip.
package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Component names shared by every process (one name per dependency or
// loop, whichever process runs it).
const (
	Brokers       = "brokers"
	Catalog       = "catalog"
	ObjectStorage = "object_storage"
	Ingest        = "ingest"
	ReadModels    = "read_models"
	Compactor     = "compactor"
	Audit         = "audit"
	Query         = "query"
	HotTier       = "hot_tier"
	Schemas       = "schemas"
)

// All is a check that fails when any of checks fails (nil ones are
// skipped), for a component that several parts of one process see: the
// catalog is used by ingest and by the query service's refresh.
func All(checks ...func() error) func() error {
	return func() error {
		var msgs []string
		for _, c := range checks {
			if c == nil {
				continue
			}
			if err := c(); err != nil {
				msgs = append(msgs, err.Error())
			}
		}
		if len(msgs) == 0 {
			return nil
		}
		// One line: the reason is shown in JSON and on a status page.
		return errors.New(strings.Join(msgs, "; "))
	}
}

// Status is one component's readiness.
type Status struct {
	Component string `json:"component"`
	Ready     bool   `json:"ready"`
	// Reason says why the component is not ready ("" when it is).
	Reason string `json:"reason,omitempty"`
}

// Report is the answer of GET /readyz.
type Report struct {
	// Status is "ready" or "not_ready".
	Status     string   `json:"status"`
	Components []Status `json:"components"`
}

// Ready reports whether every component is ready.
func (r Report) Ready() bool { return r.Status == "ready" }

// Checks holds the readiness checks of one process. The zero value is not
// usable; build it with New.
type Checks struct {
	mu     sync.Mutex
	checks map[string]func() error
	desc   *prometheus.Desc
}

// New returns an empty set of checks. With a non-nil reg it exports
// eventlake_component_ready{component} (1 ready, 0 not), computed at
// scrape time from the same checks /readyz runs.
func New(reg prometheus.Registerer) *Checks {
	c := &Checks{
		checks: map[string]func() error{},
		desc: prometheus.NewDesc("eventlake_component_ready",
			"1 when the component is ready to serve its role, 0 when not (GET /readyz says why).", []string{"component"}, nil),
	}
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// Add registers the check of one component (ingest, catalog, brokers,
// object_storage, read_models, compactor, audit, query, hot_tier, ...). A
// nil error means ready; the error's text is the reason shown to people,
// so it says what fails and, where it can, what to do. Adding a name twice
// replaces its check.
func (c *Checks) Add(component string, check func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[component] = check
}

// Report runs every check, in component order.
func (c *Checks) Report() Report {
	c.mu.Lock()
	names := make([]string, 0, len(c.checks))
	fns := make(map[string]func() error, len(c.checks))
	for n, f := range c.checks {
		names = append(names, n)
		fns[n] = f
	}
	c.mu.Unlock()
	sort.Strings(names)
	r := Report{Status: "ready", Components: make([]Status, 0, len(names))}
	for _, n := range names {
		st := Status{Component: n, Ready: true}
		if err := fns[n](); err != nil {
			st.Ready, st.Reason, r.Status = false, err.Error(), "not_ready"
		}
		r.Components = append(r.Components, st)
	}
	return r
}

// Describe implements prometheus.Collector.
func (c *Checks) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *Checks) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.Report().Components {
		v := 0.0
		if st.Ready {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, st.Component)
	}
}

// ServeReady answers GET /readyz: 200 with every component ready, 503
// naming the ones that are not.
func (c *Checks) ServeReady(w http.ResponseWriter, _ *http.Request) {
	r := c.Report()
	code := http.StatusOK
	if !r.Ready() {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, r)
}

// ServeAlive answers GET /healthz: the process is up and serves HTTP.
// Readiness is /readyz; a liveness probe that failed on a dependency would
// restart a process that cannot fix it.
func ServeAlive(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// Committer tells whether a loop that commits work keeps up. Work that
// arrives is Pending; a commit clears it. The committer is stuck when work
// has waited longer than its expected interval: an idle committer (nothing
// pending, like ingest on a quiet topic) is never stuck, however long ago
// it last committed.
type Committer struct {
	name   string
	within time.Duration
	now    func() time.Time

	mu           sync.Mutex
	pendingSince time.Time // zero: nothing waits
	lastCommit   time.Time
	lastErr      error
}

// NewCommitter returns the progress of the committer called name (used in
// reasons: "the read-model committer"), expected to commit pending work
// within the given interval (allow for its flush interval plus a margin).
func NewCommitter(name string, within time.Duration, now func() time.Time) *Committer {
	if now == nil {
		now = time.Now
	}
	return &Committer{name: name, within: within, now: now}
}

// Pending records work waiting since t (the earliest time is kept until a
// commit).
func (c *Committer) Pending(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pendingSince.IsZero() || t.Before(c.pendingSince) {
		c.pendingSince = t
	}
}

// Committed records a successful commit at t of everything pending until
// then; work that is still waiting is recorded again with Pending.
func (c *Committer) Committed(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastCommit, c.pendingSince, c.lastErr = t, time.Time{}, nil
}

// Idle records that nothing waits (a commit was not needed).
func (c *Committer) Idle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pendingSince = time.Time{}
}

// Failed records the error of a failed commit attempt (the work stays
// pending).
func (c *Committer) Failed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastErr = err
}

// LastCommit is the time of the last successful commit (zero if none).
func (c *Committer) LastCommit() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastCommit
}

// Check is the committer's readiness: an error when work has waited
// longer than the expected interval.
func (c *Committer) Check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pendingSince.IsZero() {
		return nil
	}
	waited := c.now().Sub(c.pendingSince)
	if waited <= c.within {
		return nil
	}
	msg := fmt.Sprintf("the %s has had work waiting for %s (expected a commit within %s)",
		c.name, waited.Round(time.Second), c.within)
	if c.lastCommit.IsZero() {
		msg += "; it has not committed since the process started"
	} else {
		msg += "; last commit " + c.lastCommit.UTC().Format(time.RFC3339)
	}
	if c.lastErr != nil {
		msg += "; last error: " + c.lastErr.Error()
	}
	return fmt.Errorf("%s", msg)
}
