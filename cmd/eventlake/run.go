package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
)

// usageError is a mistake on the command line (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// hinted is an error with a line for the person who ran the command: what
// to run to learn more. main prints it under the error.
type hinted struct {
	error
	hint string
}

func (h hinted) Unwrap() error { return h.error }

type command struct {
	name  string
	short string
	run   func(ctx context.Context, args []string, env *runEnv) error
}

// runEnv is what a subcommand gets from the process: output streams and
// the environment. Nothing reads os.* below Run.
type runEnv struct {
	stdout, stderr io.Writer
	environ        []string
}

func (e *runEnv) getenv(k string) string {
	for _, kv := range e.environ {
		if name, v, ok := strings.Cut(kv, "="); ok && name == k {
			return v
		}
	}
	return ""
}

func commands() []command {
	return []command{
		{"dev", "run everything in one process on a data directory (embedded broker, SQLite catalog, local warehouse)", runDev},
		{"ingest", "consume Kafka topics into Iceberg tables (exactly once)", runIngest},
		{"query", "serve SQL and metrics over the lake with DuckDB", runQuery},
		{"produce", "publish demo events (seeded generator) or replay an NDJSON file", runProduce},
		{"backfill", "recompute read-model rows from the raw events in the lake (idempotent, resumable)", runBackfill},
		{"models", "list the declared read models and their tables (models list), or drop a removed model's table (models drop NAME)", runModels},
		{"broker", "run the embedded Kafka-protocol broker alone", runBroker},
		{"topic", "create a topic (topic create NAME --partitions N)", runTopic},
		{"compact", "maintain the lake: compaction, retention, tiering, snapshot expiry, orphan cleanup", runCompact},
		{"status", "show a query service's tables, ingest lag, freshness, dead letters and readiness (GET /v1/status; --watch)", runStatus},
		{"token", "manage bearer tokens of the query service (token create --name N --role R | list | revoke --name N)", runToken},
		{"lineage", "show where the lake's data comes from and goes: sources, topics, tables, schema versions, read models, views, endpoints (--json, --dot)", runLineage},
		{"dlq", "read the dead-letter table: counts by reason, type and source (dlq list) or the rows with their raw bytes (dlq show)", runDLQ},
		{"erase", "erase every event of one user (GDPR) and record it in the erasure log", runErase},
		{"version", "print the version", runVersion},
	}
}

// Run runs the subcommand named by args[0]. A usage error comes back once,
// with a hint naming the help to read (the flag package's own printing is
// off: it would repeat the error and the whole usage).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	env := &runEnv{stdout: stdout, stderr: stderr, environ: environ}
	if len(args) == 0 {
		printUsage(stderr)
		return usageError{"a subcommand is required"}
	}
	switch args[0] {
	case "-h", "-help", "--help":
		printUsage(stdout)
		return nil
	case "-version", "--version":
		return runVersion(ctx, nil, env)
	case "help":
		if len(args) == 1 {
			printUsage(stdout)
			return nil
		}
		// eventlake help CMD is eventlake CMD --help.
		args = []string{args[1], "--help"}
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], env)
			var ue usageError
			switch {
			case errors.Is(err, flag.ErrHelp):
				return nil
			case errors.As(err, &ue):
				return hinted{err, helpHint(c.name)}
			}
			return err
		}
	}
	return hinted{usageError{fmt.Sprintf("unknown subcommand %q", args[0])}, "run 'eventlake help' for the list of subcommands"}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "eventlake: an event-driven lakehouse (Kafka -> Iceberg -> DuckDB)")
	fmt.Fprintln(w, "\nusage: eventlake <subcommand> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w, "\nRun 'eventlake help <subcommand>' (or 'eventlake <subcommand> --help') for its description, examples and flags.")
}

func runVersion(_ context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += " " + s.Value
			}
		}
	}
	fmt.Fprintln(env.stdout, "eventlake", v)
	return nil
}

// parseFlags parses fs and turns flag errors into usage errors; -h and
// --help print the command's help (helpTexts) to stdout.
func parseFlags(fs *flag.FlagSet, args []string, env *runEnv) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(env.stdout, fs.Name(), fs)
			return err // Run turns this into success
		}
		return usageError{fs.Name() + ": " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("log level %q: want debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("log format %q: want text or json", format)}
}
