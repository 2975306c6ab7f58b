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
	"github.com/eventlake/eventlake/streamer"
)

// reaggregator recomputes the read models of minutes whose raw rows
// changed under them: an erasure removed some (compactor.ReadModelRefresher),
// a DLQ replay added some. It is implemented with the streamer's backfill,
// and lives here because stages do not import each other.
type reaggregator struct {
	cat      *lake.Catalog
	com      *lake.Committer
	rawTable string
	dlqTable string
	orders   lake.OrderInputs
	log      *slog.Logger
}

func newReaggregator(cfg *Config, cat *lake.Catalog, log *slog.Logger, fp *failpoint.Set) *reaggregator {
	if layout, err := cfg.Ingest.Layout(); err == nil {
		if table, ok := layout.TableFor(cfg.ReadModels.Orders.Topic); ok {
			com := lake.NewCommitter(cat, lake.CommitConfig{Writer: lake.WriterName("erase")}, lake.CommitHooks{}, log, fp)
			return &reaggregator{cat: cat, com: com, rawTable: table, dlqTable: cfg.Ingest.DLQTable, orders: cfg.ReadModels.Orders, log: log}
		}
	}
	return nil
}

// erasureRefresher is the compactor's ReadModelRefresher: nil when no
// read model reads the lake's raw tables.
func erasureRefresher(r *reaggregator) compactor.ReadModelRefresher {
	if r == nil {
		return nil
	}
	return r
}

// Reaggregate recomputes the read models of the orders raw table's
// minutes that an erasure touched.
func (r *reaggregator) Reaggregate(ctx context.Context, erased []compactor.Erased) error {
	var minutes []time.Time
	for _, e := range erased {
		if e.Table == r.rawTable {
			minutes = append(minutes, e.Minutes...)
		}
	}
	return r.Minutes(ctx, r.rawTable, minutes)
}

// Minutes recomputes order_revenue_minute and user_activity_minute for
// every contiguous run of the minutes of raw table name; other tables feed
// no read model.
func (r *reaggregator) Minutes(ctx context.Context, name string, minutes []time.Time) error {
	if r == nil || name != r.rawTable || len(minutes) == 0 {
		return nil
	}
	// The hot tier derives read models from Kafka: events the read models
	// have not committed yet would be counted again (an erased event would
	// come back). Wait until they cover everything the raw table holds;
	// the recomputation below then reads the minutes from the lake.
	if err := r.waitReadModels(ctx, 2*time.Minute); err != nil {
		return err
	}
	slices.SortFunc(minutes, func(a, b time.Time) int { return a.Compare(b) })
	type span struct{ from, to time.Time }
	var spans []span
	for _, m := range minutes {
		m = m.UTC().Truncate(time.Minute)
		if n := len(spans); n > 0 && !m.After(spans[n-1].to) {
			if m.Add(time.Minute).After(spans[n-1].to) {
				spans[n-1].to = m.Add(time.Minute)
			}
			continue
		}
		spans = append(spans, span{m, m.Add(time.Minute)})
	}
	run := "reaggregate-" + uuid.NewString()
	var errs []error
	for _, t := range []string{lake.TableOrderRevenueMinute, lake.TableUserActivityMinute} {
		for i, s := range spans {
			_, err := streamer.Backfill(ctx, r.cat, r.com, streamer.BackfillConfig{
				Table: t, From: s.from, To: s.to, Chunk: time.Hour, RawTable: r.rawTable, Orders: r.orders,
				Wait: time.Minute, RunID: fmt.Sprintf("%s-%d", run, i), DLQTable: r.dlqTable,
			}, r.log)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// waitReadModels waits until the read models store, for every partition,
// at least the offsets of the raw table.
func (r *reaggregator) waitReadModels(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		raw, err := r.cat.LoadTable(ctx, r.rawTable)
		if err != nil {
			return err
		}
		rawOff, err := lake.StoredOffsets(raw)
		if err != nil {
			return err
		}
		behind := ""
		for _, t := range []string{lake.TableOrderRevenueMinute, lake.TableUserActivityMinute} {
			rm, err := r.cat.LoadTable(ctx, t)
			if err != nil {
				return err
			}
			rmOff, err := lake.StoredOffsets(rm)
			if err != nil {
				return err
			}
			for p, o := range rawOff[r.orders.Topic] {
				if got, _ := rmOff.Get(r.orders.Topic, p); got < o {
					behind = fmt.Sprintf("%s is at offset %d of partition %d, the raw table at %d", t, got, p, o)
				}
			}
		}
		if behind == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("read models lag behind the raw table (%s): is the hot tier's committer running? "+
				"run `eventlake backfill` over the affected minutes once it has caught up", behind)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
