package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/ingest"
	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// runDLQ reads the dead-letter table and replays it: `dlq list` counts
// dead letters by reason, type, source, topic and status; `dlq show`
// prints them with their raw bytes; `dlq replay` checks the pending ones
// again and commits those now valid to their tables. list and show only
// read; all three may run beside a running dev or ingest.
func runDLQ(ctx context.Context, args []string, env *runEnv) (err error) {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "list", "show", "replay":
	case "":
		if len(args) > 0 && isHelpFlag(args[0]) {
			sub = "show" // its flags are list's and --limit
			break
		}
		return usageError{"dlq: a subcommand is required: list, show or replay"}
	default:
		return usageError{fmt.Sprintf("dlq: unknown subcommand %q (want list, show or replay)", sub)}
	}
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, false, false, "")
	reasons := fs.String("reason", "", "only these reasons, comma separated (e.g. not_json,schema_violation)")
	types := fs.String("type", "", "only these event types (the envelope's type, or the schema subject), comma separated")
	topics := fs.String("topic", "", "only these Kafka topics, comma separated")
	sinceS := fs.String("since", "", "only dead letters ingested at or after this time (RFC 3339, now, or now-DURATION such as now-1h)")
	untilS := fs.String("until", "", "only dead letters ingested before this time (RFC 3339, now, or now-DURATION)")
	ids := fs.String("ids", "", "only these dead letters, comma separated: event ids (as the raw bytes carry them) or Kafka coordinates topic/partition/offset")
	asJSON := fs.Bool("json", false, "print one JSON document")
	limit := new(int)
	if sub == "show" {
		fs.IntVar(limit, "limit", 20, "most dead letters to print, newest first (0: all)")
	}
	pending := fs.Bool("pending", false, "only dead letters no replay has resolved")
	dryRun, requestedBy := new(bool), new(string)
	if sub == "replay" {
		fs.BoolVar(dryRun, "dry-run", false, "check and count the selected dead letters; change nothing")
		fs.StringVar(requestedBy, "requested-by", "", "who asks for the replay (required; recorded in the replay log)")
	}
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	now := time.Now()
	f := ingest.DLQFilter{Reasons: splitList(*reasons), Types: splitList(*types), Topics: splitList(*topics), IDs: splitList(*ids), Pending: *pending}
	if f.Since, err = parseWhen(*sinceS, now); err != nil {
		return usageError{fmt.Sprintf("dlq %s: --since %v", sub, err)}
	}
	if f.Until, err = parseWhen(*untilS, now); err != nil {
		return usageError{fmt.Sprintf("dlq %s: --until %v", sub, err)}
	}
	if *limit < 0 {
		return usageError{"dlq show: --limit must be 0 (all) or more"}
	}
	if sub == "replay" && strings.TrimSpace(*requestedBy) == "" && !*dryRun {
		return usageError{"dlq replay: --requested-by is required (who asks for the replay: it is recorded in the replay log)"}
	}
	cfg, fp, err := loadConfig(&cf, env)
	if err != nil {
		return err
	}
	if err := cfg.Ingest.Validate(); err != nil {
		return err
	}
	cat, err := openLake(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer cat.Close()
	if sub == "replay" {
		return replayDLQ(ctx, cfg, cat, env, fp, ingest.ReplayRequest{Filter: f, RequestedBy: *requestedBy, DryRun: *dryRun}, *asJSON)
	}
	r, err := ingest.OpenDLQ(ctx, cat, cfg.Ingest.DLQTable, filepath.Join(cfg.DataDir, "tmp", "dlq"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, r.Close()) }()
	if sub == "list" {
		groups, err := r.List(ctx, f)
		if err != nil {
			return err
		}
		return printDLQGroups(env.stdout, r, groups, *asJSON)
	}
	total, rows, err := r.Show(ctx, f, *limit)
	if err != nil {
		return err
	}
	return printDeadLetters(env.stdout, r, total, rows, *asJSON)
}

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

// parseWhen parses --since/--until: RFC 3339, "now", or "now-DURATION"
// (a Go duration, plus d for days: now-1h, now-90m, now-7d). "" is the
// zero time (no bound).
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "now"); ok {
		if rest == "" {
			return now, nil
		}
		sign := time.Duration(1)
		switch rest[0] {
		case '-':
			sign = -1
		case '+':
		default:
			return time.Time{}, fmt.Errorf("%q: want now-DURATION, e.g. now-1h", s)
		}
		d, err := parseDuration(rest[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: %w", s, err)
		}
		return now.Add(sign * d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-11-26T00:00:00Z), now or now-DURATION (now-1h)", s)
	}
	return t, nil
}

// parseDuration is time.ParseDuration plus whole days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("duration %q: want a whole number of days, e.g. 7d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("duration %q: want e.g. 30m, 1h or 7d", s)
	}
	return d, nil
}

// safe returns s as it is when every character prints, else quoted in Go
// syntax: a dead letter's bytes never reach a terminal as control
// characters.
func safe(s string) string {
	for _, c := range s {
		if c == utf8.RuneError || (!unicode.IsPrint(c) && c != ' ') {
			return strconv.Quote(s)
		}
	}
	return s
}

func safePtr(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return safe(*s)
}

// writeDLQJSON writes the one JSON document of list and show: the table,
// the snapshot read (a string: a 19-digit id loses digits as a JSON number
// in JavaScript and jq), the total and the rows under key.
func writeDLQJSON(w io.Writer, r *ingest.DLQReader, total int64, key string, rows any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"table": r.Table(), "snapshot_id": strconv.FormatInt(r.Snapshot(), 10), "total": total, key: rows})
}

func printDLQGroups(w io.Writer, r *ingest.DLQReader, groups []ingest.DLQGroup, asJSON bool) error {
	var total int64
	for _, g := range groups {
		total += g.Count
	}
	if asJSON {
		return writeDLQJSON(w, r, total, "groups", groups)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "reason\ttype\tsource\ttopic\tstatus\tcount\tfirst seen\tlast seen")
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", safe(g.Reason), safePtr(g.Type), safePtr(g.Source), safe(g.Topic), g.Status, g.Count,
			g.FirstSeen.Format(time.RFC3339), g.LastSeen.Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d dead letters in %s (snapshot %d)\n", total, r.Table(), r.Snapshot())
	return err
}

func printDeadLetters(w io.Writer, r *ingest.DLQReader, total int64, rows []*ingest.DeadLetter, asJSON bool) error {
	if asJSON {
		return writeDLQJSON(w, r, total, "dead_letters", rows)
	}
	for _, d := range rows {
		fmt.Fprintf(w, "%s  %s  %s\n", safe(d.Coords()), d.IngestedAt.Format(time.RFC3339Nano), safe(d.Reason))
		fmt.Fprintf(w, "  event_id: %s  type: %s  source: %s\n", safePtr(d.EventID), safePtr(d.Type), safePtr(d.Source))
		if d.Subject != nil && *d.Subject != "" {
			v := "-"
			if d.SchemaVersion != nil {
				v = strconv.Itoa(int(*d.SchemaVersion))
			}
			fmt.Fprintf(w, "  schema: %s version %s at %s\n", safe(*d.Subject), v, safePtr(d.Field))
		}
		fmt.Fprintf(w, "  detail: %s\n", safe(d.Detail))
		if d.ReplayID != nil {
			at := "-"
			if d.ReplayedAt != nil {
				at = d.ReplayedAt.Format(time.RFC3339Nano)
			}
			fmt.Fprintf(w, "  replayed: by %s at %s\n", safe(*d.ReplayID), at)
		}
		if d.Key != nil {
			fmt.Fprintf(w, "  key: %s\n", strconv.Quote(string(d.Key)))
		}
		if d.Raw == nil {
			fmt.Fprintf(w, "  raw: null (tombstone)\n\n")
			continue
		}
		fmt.Fprintf(w, "  raw (%d bytes): %s\n\n", d.Size, strconv.Quote(string(d.Raw)))
	}
	_, err := fmt.Fprintf(w, "%d of %d dead letters in %s (snapshot %d)\n", len(rows), total, r.Table(), r.Snapshot())
	return err
}

// replayDLQ runs one replay and prints its report.
func replayDLQ(ctx context.Context, cfg *Config, cat *lake.Catalog, env *runEnv, fp *failpoint.Set, req ingest.ReplayRequest, asJSON bool) error {
	if err := cfg.DLQ.Validate(); err != nil {
		return err
	}
	log, err := newLogger(env.stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	cat.SetFailpoints(fp)
	layout, sch, err := openStage(ctx, cfg, cat, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer sch.Close()
	rp := newReplayer(cfg, cat, layout, sch.resolver, log, fp)
	if req.DryRun && req.RequestedBy == "" {
		req.RequestedBy = "dry-run"
	}
	// A large selection is replayed in batches of dlq.batch_rows, each
	// printed (with --json, one document each) as it ends.
	reps, err := rp.ReplayAll(ctx, req, cfg.DLQ.BatchRows)
	for _, rep := range reps {
		if perr := printReplay(env.stdout, rep, asJSON); perr != nil {
			return errors.Join(err, perr)
		}
	}
	return err
}

// newReplayer builds the replayer of a process on its layout and schemas,
// with the read models re-aggregated after each replay.
func newReplayer(cfg *Config, cat *lake.Catalog, layout *lake.Layout, codecs schema.Codecs, log *slog.Logger, fp *failpoint.Set) *ingest.Replayer {
	reagg := newReaggregator(cfg, cat, log, fp)
	return ingest.NewReplayer(cfg.Ingest, cfg.DLQ, ingest.ReplayDeps{
		Catalog: cat, Layout: layout, Codecs: codecs, Logger: log, Now: time.Now, Failpoints: fp,
		TmpDir: filepath.Join(cfg.DataDir, "tmp", "dlq"), Reaggregate: reagg.Minutes,
	})
}

// autoReplay starts the automatic replay of a process that ingests, when
// dlq.auto_replay is on.
func autoReplay(g *errgroup.Group, ctx context.Context, cfg *Config, cat *lake.Catalog, layout *lake.Layout, sch *schemas, log *slog.Logger, fp *failpoint.Set) error {
	if err := cfg.DLQ.Validate(); err != nil {
		return err
	}
	if !*cfg.DLQ.AutoReplay {
		return nil
	}
	rp := newReplayer(cfg, cat, layout, sch.resolver, log.With(logkey.Component, "dlq-replay"), fp)
	a := ingest.NewAutoReplayer(rp, sch.resolver, cfg.DLQ.AutoReplayDelay, log.With(logkey.Component, "dlq-replay"))
	g.Go(func() error { return a.Run(ctx) })
	return nil
}

func printReplay(w io.Writer, rep *ingest.ReplayReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	verb := "replayed"
	if rep.DryRun {
		verb = "would replay"
	}
	fmt.Fprintf(w, "replay %s (requested by %s)\n", rep.ReplayID, safe(rep.RequestedBy))
	fmt.Fprintf(w, "  selected %d pending dead letters: %s %d, already present %d, still invalid %d\n",
		rep.Selected, verb, rep.Replayed, rep.AlreadyPresent, rep.StillInvalid)
	for _, t := range slices.Sorted(maps.Keys(rep.Tables)) {
		fmt.Fprintf(w, "  %s: %d events", t, rep.Tables[t])
		if s := rep.Snapshots[t]; s != "" {
			fmt.Fprintf(w, " (snapshot %s)", s)
		}
		fmt.Fprintln(w)
	}
	for _, r := range slices.Sorted(maps.Keys(rep.Invalid)) {
		fmt.Fprintf(w, "  still invalid, %s: %d\n", r, rep.Invalid[r])
	}
	if rep.DryRun {
		_, err := fmt.Fprintln(w, "dry run: nothing changed")
		return err
	}
	return nil
}
