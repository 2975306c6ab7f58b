package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/eventlake/eventlake/compactor"
	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/readmodel"
	"github.com/eventlake/eventlake/streamer"
)

// reaggregator recomputes the declared read models of buckets whose raw
// rows changed under them: an erasure removed some
// (compactor.ReadModelRefresher), a DLQ replay added some. It is
// implemented with the streamer's backfill, and lives here because stages
// do not import each other.
type reaggregator struct {
	cfg      *Config
	cat      *lake.Catalog
	com      *lake.Committer
	dlqTable string
	log      *slog.Logger
}

func newReaggregator(cfg *Config, cat *lake.Catalog, log *slog.Logger, fp *failpoint.Set) *reaggregator {
	com := lake.NewCommitter(cat, lake.CommitConfig{Writer: lake.WriterName("erase")}, lake.CommitHooks{}, log, fp)
	return &reaggregator{cfg: cfg, cat: cat, com: com, dlqTable: cfg.Ingest.DLQTable, log: log}
}

// erasureRefresher is the compactor's ReadModelRefresher.
func erasureRefresher(r *reaggregator) compactor.ReadModelRefresher {
	if r == nil {
		return nil
	}
	return r
}

// Reaggregate recomputes the read models of the raw tables' minutes that
// an erasure touched.
func (r *reaggregator) Reaggregate(ctx context.Context, erased []compactor.Erased) error {
	var errs []error
	for _, e := range erased {
		errs = append(errs, r.Minutes(ctx, e.Table, e.Minutes))
	}
	return errors.Join(errs...)
}

// Minutes recomputes, in every declared model whose source the raw table
// name holds, the buckets of the given minutes (contiguous runs as one
// range).
func (r *reaggregator) Minutes(ctx context.Context, name string, minutes []time.Time) error {
	if r == nil || len(minutes) == 0 {
		return nil
	}
	raw, err := r.cat.LoadTable(ctx, name)
	if err != nil {
		return err
	}
	types := lake.TypesOf(raw.Properties())
	models, err := lakeModels(ctx, r.cfg, r.cat)
	if err != nil {
		return err
	}
	var affected []*readmodel.Model
	for _, m := range models {
		if slices.Contains(types, m.Type) {
			affected = append(affected, m)
		}
	}
	if len(affected) == 0 {
		return nil
	}
	// The hot tier derives read models from Kafka: events the read models
	// have not committed yet would be counted again (an erased event would
	// come back). Wait until they cover everything the raw table holds;
	// the recomputation below then reads the buckets from the lake.
	if err := r.waitReadModels(ctx, name, affected, 2*time.Minute); err != nil {
		return err
	}
	run := "reaggregate-" + uuid.NewString()
	var errs []error
	for _, m := range affected {
		type span struct{ from, to time.Time }
		var spans []span
		w := m.Bucket.Width
		sorted := slices.Clone(minutes)
		slices.SortFunc(sorted, func(a, b time.Time) int { return a.Compare(b) })
		for _, t := range sorted {
			b := time.UnixMicro(m.Bucket.Of(t.UnixMicro())).UTC()
			if n := len(spans); n > 0 && !b.After(spans[n-1].to) {
				if b.Add(w).After(spans[n-1].to) {
					spans[n-1].to = b.Add(w)
				}
				continue
			}
			spans = append(spans, span{b, b.Add(w)})
		}
		for i, s := range spans {
			_, err := streamer.Backfill(ctx, r.cat, r.com, streamer.BackfillConfig{
				Model: m, From: s.from, To: s.to, Chunk: max(time.Hour, w),
				Wait: time.Minute, RunID: fmt.Sprintf("%s-%s-%d", run, m.Name, i), DLQTable: r.dlqTable, SkipUnchanged: true,
			}, r.log)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// waitReadModels waits until the models store, for every partition, at
// least the offsets of raw table name.
func (r *reaggregator) waitReadModels(ctx context.Context, name string, models []*readmodel.Model, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		raw, err := r.cat.LoadTable(ctx, name)
		if err != nil {
			return err
		}
		rawOff, err := lake.StoredOffsets(raw)
		if err != nil {
			return err
		}
		behind := ""
		for _, m := range models {
			rm, err := r.cat.LoadTable(ctx, m.Name)
			if err != nil {
				return fmt.Errorf("read model %s: %w", m.Name, err)
			}
			rmOff, err := lake.StoredOffsets(rm)
			if err != nil {
				return err
			}
			for topic, parts := range rawOff {
				for p, o := range parts {
					if got, _ := rmOff.Get(topic, p); got < o {
						behind = fmt.Sprintf("%s is at offset %d of %s partition %d, the raw table at %d", m.Name, got, topic, p, o)
					}
				}
			}
		}
		if behind == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("read models lag behind the raw table (%s): is the hot tier's committer running? "+
				"run `eventlake backfill` over the affected buckets once it has caught up", behind)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
