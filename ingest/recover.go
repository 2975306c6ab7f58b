package ingest

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventlake/eventlake/internal/logkey"
)

// What ingest does when a dependency fails (docs/SCALE_OUT.md, "Faults"):
//
//   - A commit that fails is retried on the spot with back-off
//     (commitTable), each attempt bounded by CommitTimeout, so that a
//     catalog that stops answering turns into an error, and the outcome
//     of an attempt that timed out after sending is looked up by commit id.
//   - Anything else that breaks the consume loop (object storage refusing
//     writes, the catalog down while the batch is rewound, a record of a
//     type or schema id not loaded while the schema registry does not
//     answer) drops the
//     batch, pauses fetching, and retries with back-off to read the
//     offsets stored in the lake; when that works, the partitions are
//     re-read from those offsets and fetching resumes. Nothing is
//     buffered meanwhile: the batch was dropped, and a paused client
//     fetches nothing, so memory stays at its idle level however long the
//     outage lasts.
//   - Data files of a dropped batch are deleted when storage allows; the
//     ones it refuses, and those of a commit whose outcome stayed unknown,
//     are orphans left to the compactor's orphan cleanup
//     (eventlake_ingest_orphan_files_total counts them).

// defaultCommitTimeout bounds one commit attempt when CommitTimeout is 0.
const defaultCommitTimeout = 30 * time.Second

type recoveryMetrics struct {
	pauses   prometheus.Counter
	failures prometheus.Gauge
	orphans  prometheus.Counter
	paused   prometheus.Gauge
}

func newRecoveryMetrics(reg prometheus.Registerer) *recoveryMetrics {
	m := &recoveryMetrics{
		pauses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_ingest_pauses_total", Help: "Times ingest dropped its batch and paused fetching because the catalog or object storage failed.",
		}),
		failures: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_ingest_consecutive_failures", Help: "Failed attempts since ingest last resumed consuming (0 when healthy).",
		}),
		orphans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_ingest_orphan_files_total", Help: "Data files written but neither committed nor deleted (storage refused the delete, or the commit outcome stayed unknown); the compactor's orphan cleanup removes them.",
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_ingest_paused_seconds", Help: "How long ingest has been paused by the current failure (0 when consuming).",
		}),
	}
	reg.MustRegister(m.pauses, m.failures, m.orphans, m.paused)
	return m
}

// noteOrphans counts files that abort could not delete.
func (ing *Ingester) noteOrphans(errs []error) {
	n := 0
	for _, err := range errs {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			n += len(j.Unwrap())
		} else {
			n++
		}
	}
	ing.rec.orphans.Add(float64(n))
}

// openTablesRetrying opens the tables, waiting with back-off while the
// catalog or the warehouse is unreachable at start.
func (ing *Ingester) openTablesRetrying(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := ing.openTables(ctx)
		if err == nil {
			ing.faults.clear()
		}
		if err == nil || ctx.Err() != nil || attempt >= 8 {
			return err
		}
		ing.faults.set(err, ing.deps.Now())
		ing.log.Warn("open tables failed, retrying", logkey.Attempt, attempt, logkey.Err, err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, ing.cfg.CommitRetryMax)
	}
}

// recover handles an error of the consume loop: the batch is dropped,
// fetching pauses, and the offsets stored in the lake are read again
// with back-off until the catalog and the warehouse answer; then every
// owned partition is rewound to them and fetching resumes. It returns
// only when consumption can go on (nil) or ctx ended (nil: shutdown).
func (ing *Ingester) recover(ctx context.Context, cl *kgo.Client, cause error) error {
	ing.rec.pauses.Inc()
	ing.consecutive++
	ing.rec.failures.Set(float64(ing.consecutive))
	ing.m.setState(statePaused)
	start := ing.deps.Now()
	ing.faults.set(cause, start)

	ing.mu.Lock()
	if ing.b.records > 0 {
		// The batch failed while being built (a data file could not be
		// written): wait for the encoder, then drop it.
		ing.enc.drain()
		_ = ing.abort(ctx, cause)
	}
	ing.mu.Unlock()

	topics := ing.topicNames()
	cl.PauseFetchTopics(topics...)
	backoff := time.Duration(min(int64(100*time.Millisecond)<<min(ing.consecutive-1, 16), int64(ing.cfg.CommitRetryMax)))
	ing.log.Warn("ingest paused: batch dropped, fetching paused until the lake answers again",
		logkey.Err, cause, logkey.Attempt, ing.consecutive, "retry_in", backoff)
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			ing.rec.paused.Set(0)
			return nil
		case <-time.After(backoff):
		}
		ing.rec.paused.Set(ing.deps.Now().Sub(start).Seconds())
		ing.mu.Lock()
		err := ing.rewind(ctx)
		ing.mu.Unlock()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			ing.rec.paused.Set(0)
			return nil
		}
		backoff = min(backoff*2, ing.cfg.CommitRetryMax)
		ing.faults.set(err, ing.deps.Now())
		ing.log.Warn("lake still unavailable, staying paused", logkey.Attempt, attempt, logkey.Err, err, "retry_in", backoff)
	}
	cl.ResumeFetchTopics(topics...)
	ing.faults.clear()
	ing.rec.paused.Set(0)
	ing.m.setState(stateConsuming)
	ing.log.Info("ingest resumed from the offsets stored in the lake", logkey.Duration, ing.deps.Now().Sub(start))
	return nil
}

// healthy resets the failure count after a successful commit.
func (ing *Ingester) healthy() {
	if ing.consecutive != 0 {
		ing.consecutive = 0
		ing.rec.failures.Set(0)
	}
}

// leaveTimeout bounds leaving the consumer group at shutdown.
const leaveTimeout = 10 * time.Second

// leave leaves the group and closes the client, waiting at most
// leaveTimeout for the group: a rebalance in progress can hold a join (and
// with it the leave and Close) for the group's whole rebalance timeout (a
// static member that stopped without leaving is waited for). The lake is
// already committed, so an abandoned leave only delays the partitions'
// next owner, never data. cancelClient cancels the client's context,
// which interrupts its blocked requests.
func (ing *Ingester) leave(ctx context.Context, cl *kgo.Client, cancelClient context.CancelFunc) {
	lctx, cancel := context.WithTimeout(ctx, leaveTimeout)
	defer cancel()
	cl.AllowRebalance()
	if err := cl.LeaveGroupContext(lctx); err != nil {
		ing.log.Warn("leaving the consumer group did not finish; closing anyway", logkey.Err, err)
		cancelClient()
	}
	cl.Close()
}
