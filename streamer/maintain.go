package streamer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/tracing"
	"github.com/eventlake/eventlake/lake"
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
// waits too long.
func (s *Streamer) noteCommit(committed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.ready {
		return errors.New("the hot tier is loading the read models")
	}
	if s.paused {
		return fmt.Errorf("the hot tier is full (%d events held, streamer.max_hot_events %d): fetching orders and inventory is paused until the read models are committed",
			s.hotCount, s.cfg.MaxHotEvents)
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

// closeWindows advances the watermark and pushes final figures.
func (s *Streamer) closeWindows() {
	s.mu.Lock()
	s.win.tick()
	closed := s.win.closeDue()
	var finals []string
	for _, r := range closed {
		list := append(s.closed[r.Spec], r)
		if len(list) > 60 {
			list = list[len(list)-60:]
		}
		s.closed[r.Spec] = list
		if r.Spec == "1m" && s.live != nil {
			// The live model's rows of the minute are final now.
			seen := map[string]bool{}
			for _, st := range []*readmodel.State{s.live.cold, s.live.hot} {
				st.InBucket(s.live.m.Bucket.Of(r.Start.UnixMicro()), func(row *readmodel.Row) {
					if !seen[row.Key] {
						seen[row.Key] = true
						finals = append(finals, row.Key)
					}
				})
			}
		}
	}
	if wm, ok := s.win.watermark(); ok {
		s.m.watermark.Set(float64(wm) / 1e6)
	}
	// Added under mu, like every live update, so that they reach the
	// coalescer in the order their figures were read (latest wins).
	s.push.add(s.updates(s.live, finals))
	s.mu.Unlock()
}

// refresh follows commits to the read models made by others.
func (s *Streamer) refresh(ctx context.Context) error {
	errs := []error{s.reloadInventory(ctx, false)}
	for _, md := range s.models {
		errs = append(errs, s.followModel(ctx, md, false))
	}
	return errors.Join(errs...)
}

// reloadInventory loads the latest stock per product.
func (s *Streamer) reloadInventory(ctx context.Context, first bool) error {
	s.mu.RLock()
	known, hasSnap, files := s.inv.snapshot, s.inv.hasSnap, s.inv.files
	s.mu.RUnlock()
	v, err := loadView(ctx, s.deps.Catalog, lake.TableInventoryHealth)
	if err != nil {
		return err
	}
	if !first && v.hasSnap == hasSnap && v.snapshot == known {
		return nil
	}
	incremental := !first && files != nil
	present := map[string]bool{}
	for _, f := range v.files {
		present[f.FilePath()] = true
	}
	for p := range files {
		if !present[p] {
			incremental = false
		}
	}
	latest := map[string]invState{}
	for _, f := range v.files {
		if incremental && files[f.FilePath()] {
			continue
		}
		err := inventoryRows(ctx, v.tbl, f.FilePath(), func(p string, stock, updated int64, wh string) {
			if cur, ok := latest[p]; !ok || updated >= cur.updated {
				latest[p] = invState{stock: stock, updated: updated, warehouse: wh}
			}
		})
		if err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !incremental || s.inv.cold == nil {
		s.inv.cold = map[string]invState{}
	}
	for p, st := range latest {
		if cur, ok := s.inv.cold[p]; !ok || st.updated >= cur.updated {
			s.inv.cold[p] = st
		}
	}
	s.inv.tbl, s.inv.snapshot, s.inv.hasSnap, s.inv.offsets, s.inv.files = v.tbl, v.snapshot, v.hasSnap, v.offsets, present
	s.trim()
	return nil
}

// trim drops hot inventory updates inventory_health has committed.
// Called with mu held.
func (s *Streamer) trim() {
	for p, evs := range s.invs {
		o, ok := s.inv.offsets.Get(s.in.Inventory.Topic, p)
		floor := offOr0(o, ok)
		i := 0
		for i < len(evs) && evs[i].off < floor {
			i++
		}
		if i > 0 {
			s.hotCount -= i
			s.invs[p] = append(evs[:0:0], evs[i:]...)
		}
	}
	s.setStateSizes()
	s.resumeIfDrained()
}

// resumeIfDrained resumes fetching paused at max_hot_events once commits
// have drained half of it. Called with mu held.
func (s *Streamer) resumeIfDrained() {
	if s.paused && s.hotCount < s.cfg.MaxHotEvents/2 && s.cl != nil {
		s.paused = false
		s.m.paused.Set(0)
		s.cl.ResumeFetchTopics(s.pausedTopics...)
		s.pausedTopics = nil
		s.log.Info("hot tier drained: fetching resumed", "hot_events", s.hotCount)
	}
}

// commitReadModels commits the events read since the read models' stored
// offsets: each declared model's touched buckets, the latest stock of
// each product. Each table is committed with the offsets it now covers,
// fenced on the ones it covered, like ingest.
func (s *Streamer) commitReadModels(ctx context.Context) (committed bool, err error) {
	ctx, span := s.tracer.Start(ctx, "hot tier read-model commit", trace.WithNewRoot())
	defer func() { tracing.EndSpan(span, err) }()
	s.mu.RLock()
	high := lake.Offsets{}
	for t, m := range s.high {
		for p, o := range m {
			high.Set(t, p, o)
		}
	}
	invDelta, invOffsets, invBase := map[string]invState{}, lake.Offsets{}, s.inv.offsets.Clone()
	for p, h := range high[s.in.Inventory.Topic] {
		io, iok := s.inv.offsets.Get(s.in.Inventory.Topic, p)
		if h > offOr0(io, iok) {
			invOffsets.Set(s.in.Inventory.Topic, p, h)
		}
		for _, e := range s.invs[p] {
			if e.off >= h {
				break
			}
			if e.off >= offOr0(io, iok) {
				if cur, ok := invDelta[e.product]; !ok || e.ts >= cur.updated {
					invDelta[e.product] = invState{stock: e.stock, updated: e.ts, warehouse: e.warehouse}
				}
			}
		}
	}
	invTbl := s.inv.tbl
	s.mu.RUnlock()

	var errs []error
	if s.sess != nil {
		// First, so that the models over the sessions table count what
		// it now holds.
		done, err := s.commitSessions(ctx)
		committed = committed || done
		errs = append(errs, err)
	}
	for _, md := range s.models {
		h := high
		if md.m.Table != "" {
			if s.sess == nil {
				continue // followed: the process that keeps the sessions commits it
			}
			s.mu.RLock()
			h = lake.Offsets{}
			h.Set(readmodel.SeqTopic(md.m.Table), 0, s.sess.next)
			s.mu.RUnlock()
		}
		done, err := s.commitModel(ctx, md, h)
		committed = committed || done
		errs = append(errs, err)
	}
	if len(invDelta) > 0 && invTbl != nil {
		committed = true
		errs = append(errs, s.commitDelta(ctx, &s.inv.coldTable, invTbl, invOffsets, invBase,
			func() ([]iceberg.DataFile, error) { return inventoryDeltaFile(ctx, invTbl, invDelta) },
			func(files []iceberg.DataFile) {
				for p, st := range invDelta {
					if cur, ok := s.inv.cold[p]; !ok || st.updated >= cur.updated {
						s.inv.cold[p] = st
					}
				}
				for _, f := range files {
					s.inv.files[f.FilePath()] = true
				}
			}))
	}
	return committed, errors.Join(errs...)
}

// commitDelta writes a read model's delta files (write), commits them on
// top of tbl and, under the lock, moves ct to the new snapshot and offsets
// and lets apply fold the delta into the in-memory model.
func (s *Streamer) commitDelta(ctx context.Context, ct *coldTable, tbl *icebergTable, offsets, base lake.Offsets,
	write func() ([]iceberg.DataFile, error), apply func([]iceberg.DataFile)) error {
	start := time.Now()
	files, err := write()
	if err == nil {
		var nt *icebergTable
		if nt, err = s.appendCommit(ctx, ct.name, tbl, files, offsets, base); err == nil {
			s.m.commitDuration.WithLabelValues(ct.name).Observe(time.Since(start).Seconds())
			s.m.lastCommit.WithLabelValues(ct.name).Set(float64(s.deps.Now().UnixNano()) / 1e9)
			s.mu.Lock()
			ct.tbl, ct.offsets = nt, ct.offsets.Merge(offsets)
			if snap := nt.CurrentSnapshot(); snap != nil {
				ct.snapshot, ct.hasSnap = snap.SnapshotID, true
			}
			if apply != nil {
				apply(files)
			}
			s.trim()
			s.mu.Unlock()
		}
	}
	if err != nil {
		return fmt.Errorf("commit %s: %w", ct.name, err)
	}
	return nil
}

// appendCommit commits files; a fence means another committer got there
// first: its commit is picked up by the next refresh and the files are
// removed.
func (s *Streamer) appendCommit(ctx context.Context, name string, tbl *icebergTable, files []iceberg.DataFile, offsets, base lake.Offsets) (*icebergTable, error) {
	nt, err := s.committer.Commit(ctx, lake.Change{Table: name, Task: TaskReadModel, Base: tbl,
		Offsets: offsets, Fence: base, Stage: lake.Append(files)})
	if err != nil && !errors.Is(err, lake.ErrCommitUnknown) {
		for _, f := range files {
			_ = removeFile(ctx, tbl, f.FilePath())
		}
	}
	return nt, err
}

// reaggregate recomputes the recent closed buckets of the declared
// models from the lake (see Backfill), folding late events the hot tier
// did not count (and dead letters replayed since) into their rows.
func (s *Streamer) reaggregate(ctx context.Context) {
	s.mu.RLock()
	wm, ok := s.win.watermark()
	s.mu.RUnlock()
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

// setStateSizes exports the size of the hot tier's state. Called with mu
// held (a write lock or the read lock; it reads only).
func (s *Streamer) setStateSizes() {
	s.m.hotEvents.Set(float64(s.hotCount))
	for _, md := range s.models {
		s.m.stateEntries.WithLabelValues(md.name + "_rows").Set(float64(md.cold.Len()))
		s.m.stateEntries.WithLabelValues(md.name + "_hot_rows").Set(float64(md.hot.Len()))
	}
	if s.sess != nil {
		s.m.stateEntries.WithLabelValues(s.sess.Table + "_open").Set(float64(s.sess.eng.Len()))
		s.m.stateEntries.WithLabelValues(s.sess.Table + "_pending").Set(float64(len(s.sess.pending)))
	}
	s.m.stateEntries.WithLabelValues("stock_products").Set(float64(len(s.inv.cold)))
	s.m.stateEntries.WithLabelValues("products").Set(float64(len(s.products)))
}
