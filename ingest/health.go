package ingest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventlake/eventlake/internal/health"
	"github.com/eventlake/eventlake/schema"
)

// What ingest tells about itself (cmd registers it in the process's
// health.Checks):
//
//   - Ready ("ingest"): consuming, not paused, and its committer keeps up:
//     consumed records are committed within CommitDeadline.
//   - BrokersReady ("brokers"): a Kafka broker answered lately (a
//     consumer that cannot dial any broker only logs and retries).
//   - Fault(health.Catalog), Fault(health.ObjectStorage),
//     Fault(health.Schemas): the dependency whose failure paused ingest
//     (recover.go), until it answers again.

// Ready reports whether ingest does its job: nil, or why not.
func (ing *Ingester) Ready() error {
	if comp, err, since := ing.faults.current(); err != nil {
		return fmt.Errorf("ingest is paused since %s: %s failing, fetching stays paused until it answers (see component %s)",
			since.UTC().Format(time.RFC3339), comp, comp)
	}
	if !ing.consuming.Load() {
		return errors.New("ingest is not consuming: opening its tables, or shutting down")
	}
	return ing.progress.Check()
}

// BrokersReady reports whether the Kafka brokers answer ingest's client.
func (ing *Ingester) BrokersReady() error { return ing.brokers.Check() }

// Fault returns the check of one dependency of ingest (health.Catalog,
// health.ObjectStorage or health.Schemas): the error that paused ingest,
// while it lasts.
func (ing *Ingester) Fault(component string) func() error {
	return func() error { return ing.faults.check(component) }
}

// storageError marks a failure to write or close a data file: object
// storage, not the catalog.
type storageError struct{ err error }

func (e *storageError) Error() string { return e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

// componentOf names the dependency an error of the consume loop comes
// from: a data file (object storage), a schema the registry could not be
// asked about, else the catalog (tables loaded, evolved or committed).
func componentOf(err error) string {
	var se *storageError
	var derr *schema.Error
	switch {
	case errors.As(err, &se):
		return health.ObjectStorage
	case errors.As(err, &derr):
		return health.Schemas
	}
	return health.Catalog
}

// faults is the dependency failure that paused ingest, if any.
type faults struct {
	mu    sync.Mutex
	comp  string
	err   error
	since time.Time
}

func (f *faults) set(err error, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	comp := componentOf(err)
	if f.err == nil || f.comp != comp {
		f.since = now
	}
	f.comp, f.err = comp, err
}

func (f *faults) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.comp, f.err = "", nil
}

func (f *faults) current() (string, error, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.comp, f.err, f.since
}

func (f *faults) check(comp string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil || f.comp != comp {
		return nil
	}
	return fmt.Errorf("ingest: %s failing since %s: %v", comp, f.since.UTC().Format(time.RFC3339), f.err)
}

// lagTracker holds, per owned partition, the Kafka timestamp of the
// oldest record consumed and not yet committed to the lake, and exports
// its age as eventlake_ingest_consumer_lag_seconds. It is updated once
// per partition per poll and cleared by a commit, never per record.
type lagTracker struct {
	now  func() time.Time
	desc *prometheus.Desc

	mu    sync.Mutex
	parts map[lagKey]int64 // unix micros; 0: nothing waits
}

type lagKey struct {
	topic     string
	partition int32
}

func newLagTracker(now func() time.Time) *lagTracker {
	return &lagTracker{now: now, parts: map[lagKey]int64{},
		desc: prometheus.NewDesc("eventlake_ingest_consumer_lag_seconds",
			"Age of the oldest record consumed and not yet committed to the lake, from its Kafka timestamp (0 when caught up; an idle partition reads 0).",
			[]string{"topic", "partition"}, nil)}
}

// own starts tracking an assigned partition.
func (l *lagTracker) own(topic string, partition int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.parts[lagKey{topic, partition}]; !ok {
		l.parts[lagKey{topic, partition}] = 0
	}
}

// forget stops tracking a partition that moved away.
func (l *lagTracker) forget(topic string, partition int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.parts, lagKey{topic, partition})
}

// consumed records that records from micros on wait for a commit (the
// oldest is kept).
func (l *lagTracker) consumed(topic string, partition int32, micros int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := lagKey{topic, partition}
	if cur, ok := l.parts[k]; ok && cur == 0 {
		l.parts[k] = max(micros, 1)
	}
}

// committed records that everything consumed is in the lake.
func (l *lagTracker) committed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.parts {
		l.parts[k] = 0
	}
}

// pending reports whether consumed records wait for a commit.
func (l *lagTracker) pending() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range l.parts {
		if v != 0 {
			return true
		}
	}
	return false
}

func (l *lagTracker) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

func (l *lagTracker) Collect(ch chan<- prometheus.Metric) {
	now := l.now().UnixMicro()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, v := range l.parts {
		age := 0.0
		if v != 0 {
			age = max(float64(now-v)/1e6, 0)
		}
		ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, age, k.topic, strconv.Itoa(int(k.partition)))
	}
}

// stateGauge exports eventlake_ingest_state: the state the loop set, except
// that "consuming" reads "disconnected" while no broker answers.
type stateGauge struct {
	desc    *prometheus.Desc
	cur     atomic.Pointer[string]
	brokers func() error
}

// Ingester states exported as eventlake_ingest_state.
const (
	stateConsuming    = "consuming"
	stateCommitting   = "committing"
	stateRetrying     = "retrying"
	statePaused       = "paused"
	stateDisconnected = "disconnected"
)

var states = []string{stateConsuming, stateCommitting, stateRetrying, statePaused, stateDisconnected}

func newStateGauge() *stateGauge {
	return &stateGauge{desc: prometheus.NewDesc("eventlake_ingest_state",
		"1 for the ingester's current state: consuming, committing, retrying (a commit), paused (fetching stopped until the lake answers), disconnected (consuming, but no Kafka broker answers).",
		[]string{"state"}, nil)}
}

func (g *stateGauge) set(s string) { g.cur.Store(&s) }

func (g *stateGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *stateGauge) Collect(ch chan<- prometheus.Metric) {
	cur := ""
	if p := g.cur.Load(); p != nil {
		cur = *p
	}
	if cur == stateConsuming && g.brokers != nil && g.brokers() != nil {
		cur = stateDisconnected
	}
	for _, s := range states {
		v := 0.0
		if s == cur {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v, s)
	}
}
