package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/streamer"
)

// runBackfill recomputes a declared read model's rows from the raw events
// in the lake.
func runBackfill(ctx context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, false, false, "")
	model := fs.String("model", lake.TableOrderRevenueMinute, "declared read model to recompute (read_models.models)")
	tableName := fs.String("table", "", "the same as --model (its former name)")
	fromS := fs.String("from", "", "first event-time bucket to recompute (RFC 3339)")
	toS := fs.String("to", "", "end of the range, exclusive (RFC 3339)")
	chunk := fs.Duration("chunk", time.Hour, "span replaced by one commit (at least one bucket)")
	wait := fs.Duration("wait", time.Minute, "how long to wait for ingest when the raw tables are behind the read model")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if *tableName != "" {
		*model = *tableName
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
	cat, err := openLake(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer cat.Close()
	models, err := lakeModels(ctx, cfg, cat)
	if err != nil {
		return err
	}
	var names []string
	for _, m := range models {
		names = append(names, m.Name)
		if m.Name != *model {
			continue
		}
		com := lake.NewCommitter(cat, lake.CommitConfig{Writer: lake.WriterName("backfill")}, lake.CommitHooks{}, log, fp)
		bar := progressBar{w: env.stderr, terminal: isTerminal(env.stderr), model: m.Name}
		res, err := streamer.Backfill(ctx, cat, com, streamer.BackfillConfig{
			Model: m, From: from, To: to, Chunk: *chunk, Wait: *wait, DLQTable: cfg.Ingest.DLQTable,
			Progress: bar.show, Failpoints: fp,
		}, log)
		bar.done()
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "backfill %s: %d chunks recomputed (%d already done), %d rows, snapshot %d\n",
			m.Name, res.Chunks, res.Skipped, res.Rows, res.SnapshotID)
		return nil
	}
	return usageError{fmt.Sprintf("--model %q is not a declared read model whose source the lake holds (declared: %s)", *model, strings.Join(names, ", "))}
}

// progressBar shows a backfill's progress: a bar on a terminal, plain
// lines otherwise.
type progressBar struct {
	w        io.Writer
	terminal bool
	model    string
	shown    bool
}

func (p *progressBar) show(done, total int, through time.Time) {
	if p.w == nil {
		return
	}
	p.shown = true
	if p.terminal {
		const width = 30
		filled := width * done / max(total, 1)
		fmt.Fprintf(p.w, "\rbackfill %s [%s%s] %d/%d chunks, through %s ", p.model,
			strings.Repeat("#", filled), strings.Repeat(" ", width-filled), done, total, through.Format(time.RFC3339))
		return
	}
	fmt.Fprintf(p.w, "backfill %s: %d/%d chunks done, through %s\n", p.model, done, total, through.Format(time.RFC3339))
}

func (p *progressBar) done() {
	if p.w != nil && p.terminal && p.shown {
		fmt.Fprintln(p.w)
	}
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
