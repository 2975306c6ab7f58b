package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/streamer"
)

// runBackfill recomputes read-model rows from the raw events in the lake.
func runBackfill(ctx context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, false, false, "")
	tableName := fs.String("table", lake.TableOrderRevenueMinute, "read model to recompute: order_revenue_minute or user_activity_minute")
	fromS := fs.String("from", "", "first event-time minute to recompute (RFC 3339)")
	toS := fs.String("to", "", "end of the range, exclusive (RFC 3339)")
	chunk := fs.Duration("chunk", time.Hour, "span replaced by one commit")
	wait := fs.Duration("wait", time.Minute, "how long to wait for ingest when the raw table is behind the read model")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	from, err := time.Parse(time.RFC3339Nano, *fromS)
	if err != nil {
		return usageError{fmt.Sprintf("--from %q: want RFC 3339, e.g. 2026-11-26T00:00:00Z", *fromS)}
	}
	to, err := time.Parse(time.RFC3339Nano, *toS)
	if err != nil {
		return usageError{fmt.Sprintf("--to %q: want RFC 3339, e.g. 2026-11-27T00:00:00Z", *toS)}
	}
	cfg, fp, err := loadConfig(&cf, env)
	if err != nil {
		return err
	}
	log, err := newLogger(env.stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	layout, err := cfg.Ingest.Layout()
	if err != nil {
		return err
	}
	rawTable, ok := layout.TableFor(cfg.ReadModels.Orders.Topic)
	if !ok {
		return fmt.Errorf("backfill: no raw table holds the orders' topic %s (read_models.orders.topic)", cfg.ReadModels.Orders.Topic)
	}
	cat, err := openLake(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer cat.Close()
	com := lake.NewCommitter(cat, lake.CommitConfig{Writer: lake.WriterName("backfill")}, lake.CommitHooks{}, log, fp)
	res, err := streamer.Backfill(ctx, cat, com, streamer.BackfillConfig{
		Table: *tableName, From: from, To: to, Chunk: *chunk, RawTable: rawTable, Orders: cfg.ReadModels.Orders, Wait: *wait,
		DLQTable: cfg.Ingest.DLQTable,
		Progress: env.stderr, Terminal: isTerminal(env.stderr),
		Failpoints: fp,
	}, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "backfill %s: %d chunks recomputed (%d already done), %d rows, snapshot %d\n",
		*tableName, res.Chunks, res.Skipped, res.Rows, res.SnapshotID)
	return nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
