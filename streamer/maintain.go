package streamer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/tracing"
	"github.com/eventlake/eventlake/readmodel"
)

// TaskReadModel is the commit task of read-model deltas.
const TaskReadModel = "read-model"

// maintain closes windows, follows commits made by others and, on the
// committer, commits the read models.
func (s *Streamer) maintain(ctx context.Context) error {
	tick := time.NewTicker(min(s.cfg.RefreshInterval, 250*time.Millisecond))
	defer tick.Stop()
	lastRefresh, lastCommit, lastReagg, lastDiscover := time.Now(), time.Now(), time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		s.closeWindows()
		if time.Since(lastRefresh) >= s.cfg.RefreshInterval {
			lastRefresh = time.Now()
			if err := s.refresh(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("follow read-model commits", logkey.Err, err)
			}
		}
		if time.Since(lastDiscover) >= s.cfg.TopicRefresh {
			lastDiscover = time.Now()
			if err := s.discover(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("look for new topics", logkey.Err, err)
			}
		}
		if s.cfg.Commit && time.Since(lastCommit) >= s.cfg.CommitInterval {
			lastCommit = time.Now()
			committed, err := s.commitReadModels(ctx)
			if ctx.Err() == nil {
				s.noteCommit(committed, err)
			}
		}
		if s.cfg.Commit && s.cfg.ReaggregateEvery > 0 && time.Since(lastReagg) >= s.cfg.ReaggregateEvery {
			lastReagg = time.Now()
			s.reaggregate(ctx)
		}
	}
}

// noteCommit records the outcome of a read-model commit: a failure is
// logged (at the first one and when it recovers, not at every interval)
// and counted; the committer's progress (ReadModelsReady) says when work
// waits too long. Called by maintain only.
func (s *Streamer) noteCommit(committed bool, err error) {
	switch {
	case err != nil:
		s.progress.Failed(err)
	case committed:
		s.progress.Committed(s.deps.Now())
	default:
		s.progress.Idle()
	}
	if err == nil {
		if s.commitFails > 0 {
			s.log.Info("read models committed again", "failed_commits", s.commitFails)
		}
		s.commitFails = 0
		s.m.commitFailing.Set(0)
		return
	}
	if s.commitFails == 0 {
		s.log.Warn("commit read models; retrying at the next interval", logkey.Err, err)
	}
	s.commitFails++
	s.m.commitFailing.Set(float64(s.commitFails))
}

// HotTierReady reports whether the hot tier serves fresh figures: nil, or
// why not (still loading the read models, or full: fetching paused at
// max_hot_events until the read models are committed).
func (s *Streamer) HotTierReady() error {
	if !s.ready.Load() {
		return errors.New("the hot tier is loading the read models")
	}
	s.pauseMu.Lock()
	paused := s.paused
	s.pauseMu.Unlock()
	if paused {
		return fmt.Errorf("the hot tier is full (%d events held, streamer.max_hot_events %d): fetching the read models' topics is paused until they are committed",
			s.hot.Load(), s.cfg.MaxHotEvents)
	}
	return nil
}

// ReadModelsReady reports whether the read-model committer keeps up (nil
// when this process does not commit them).
func (s *Streamer) ReadModelsReady() error {
	if !s.cfg.Commit {
		return nil
	}
	return s.progress.Check()
}

// BrokersReady reports whether the Kafka brokers answer the hot tier.
func (s *Streamer) BrokersReady() error { return s.brokers.Check() }

// closeWindows advances the watermark and pushes final figures: the live
// model's rows of the minutes the 1-minute windows closed.
func (s *Streamer) closeWindows() {
	s.liveMu.Lock()
	s.win.tick()
	var minutes []int64
	for _, r := range s.win.closeDue() {
		list := append(s.closed[r.Spec], r)
		if len(list) > 60 {
			list = list[len(list)-60:]
		}
		s.closed[r.Spec] = list
		if r.Spec == "1m" {
			minutes = append(minutes, r.Start.UnixMicro())
		}
	}
	s.setWatermark()
	s.liveMu.Unlock()
	if wm, ok := s.watermark(); ok {
		s.m.watermark.Set(float64(wm) / 1e6)
	}
	md := s.live
	if md == nil || len(minutes) == 0 {
		return
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	seen := map[string]bool{}
	var finals []string
	for _, m := range minutes {
		for _, st := range []*readmodel.State{md.cold, md.hot} {
			st.InBucket(md.m.Bucket.Of(m), func(row *readmodel.Row) {
				if !seen[row.Key] {
					seen[row.Key] = true
					finals = append(finals, row.Key)
				}
			})
		}
	}
	s.push.add(s.updates(md, finals)) // under md.mu: see Streamer.push
}

// refresh follows commits to the read models made by others.
func (s *Streamer) refresh(ctx context.Context) error {
	var errs []error
	for _, md := range s.models {
		errs = append(errs, s.followModel(ctx, md, false))
	}
	return errors.Join(errs...)
}

// commitReadModels commits the events read since the read models' stored
// offsets: each declared model's touched buckets, with the offsets it now
// covers, fenced on the ones it covered, like ingest.
func (s *Streamer) commitReadModels(ctx context.Context) (committed bool, err error) {
	ctx, span := s.tracer.Start(ctx, "hot tier read-model commit", trace.WithNewRoot())
	defer func() { tracing.EndSpan(span, err) }()

	var errs []error
	if s.sess != nil {
		// First, so that the models over the sessions table count what
		// it now holds.
		done, err := s.commitSessions(ctx)
		committed = committed || done
		errs = append(errs, err)
	}
	for _, md := range s.models {
		if md.m.Table != "" && s.sess == nil {
			continue // followed: the process that keeps the sessions commits it
		}
		done, err := s.commitModel(ctx, md)
		committed = committed || done
		errs = append(errs, err)
	}
	return committed, errors.Join(errs...)
}

// reaggregate recomputes the recent closed buckets of the declared
// models from the lake (see Backfill), folding late events the hot tier
// did not count (and dead letters replayed since) into their rows.
func (s *Streamer) reaggregate(ctx context.Context) {
	wm, ok := s.watermark()
	if !ok {
		return
	}
	if s.sess != nil {
		s.reaggregateSessions(ctx)
	}
	for _, md := range s.models {
		if md.m.Table != "" {
			continue // with its table's, above
		}
		w := md.m.Bucket.Width
		to := time.UnixMicro(md.m.Bucket.Of(wm)).UTC()
		from := to.Add(-max(s.cfg.ReaggregateLookback, w)).Truncate(w)
		start := time.Now()
		res, err := Backfill(ctx, s.deps.Catalog, s.committer, BackfillConfig{
			Model: md.m, From: from, To: to, Chunk: max(time.Hour, w), Wait: 10 * time.Second, DLQTable: s.deps.Layout.DLQ(),
			RunID: "reaggregate-" + uuid.NewString(), SkipUnchanged: true,
		}, s.log)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("re-aggregate read model", logkey.Table, md.name, logkey.Err, err)
			}
			continue
		}
		s.log.Info("read model re-aggregated", logkey.Table, md.name, "from", from, "to", to, logkey.Rows, res.Rows, logkey.Duration, time.Since(start))
	}
}

// setStateSizes exports the size of the hot tier's state. Called with
// no job's lock held.
func (s *Streamer) setStateSizes() {
	s.setHotEvents()
	for _, md := range s.models {
		md.mu.RLock()
		cold, hot := md.cold.Len(), md.hot.Len()
		md.mu.RUnlock()
		s.m.stateEntries.WithLabelValues(md.name + "_rows").Set(float64(cold))
		s.m.stateEntries.WithLabelValues(md.name + "_hot_rows").Set(float64(hot))
	}
	if ss := s.sess; ss != nil {
		ss.mu.Lock()
		open, pending := ss.eng.Len(), len(ss.pending)
		ss.mu.Unlock()
		s.m.stateEntries.WithLabelValues(ss.Table + "_open").Set(float64(open))
		s.m.stateEntries.WithLabelValues(ss.Table + "_pending").Set(float64(pending))
	}
	s.liveMu.Lock()
	products := len(s.products)
	s.liveMu.Unlock()
	s.m.stateEntries.WithLabelValues("products").Set(float64(products))
}

// setHotEvents exports the events the hot tier holds. The poll loop and
// maintenance both set the gauge: each reads the count and sets it under
// pauseMu, so the gauge ends at the latest count read (not at an earlier
// one that the other goroutine set late, which could stay there while
// fetching is paused), and pauseIfFull sets the count it decides on.
func (s *Streamer) setHotEvents() {
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	s.m.hotEvents.Set(float64(s.hot.Load()))
}
