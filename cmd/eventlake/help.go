package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// helpText is what `eventlake help CMD` and `eventlake CMD --help` print
// above the flags: a synopsis, a paragraph that says what the command is
// for, and examples to copy. It is kept apart from commands() so that a
// new subcommand is one line there; one without an entry here gets its
// short description and its flags.
type helpText struct {
	usage    string
	about    string
	examples []string
}

var helpTexts = map[string]helpText{
	"dev": {
		usage: "eventlake dev [flags]",
		about: `Runs the whole lakehouse in one process on a data directory: an embedded Kafka-protocol broker, a SQLite
Iceberg catalog, a local warehouse, the ingester, the query service with its hot tier (HTTP and the Postgres
wire protocol), the compactor and, unless --no-demo, a demo producer. It creates the data directory and its
lake on first start, and an admin token in DATA_DIR/admin.token. Ctrl-C flushes and commits, then exits.`,
		examples: []string{
			"eventlake dev                                   # ./data, ports 9092, 8080, 5433",
			"eventlake dev --no-demo --data-dir /tmp/lake",
			"eventlake dev --kafka-listen 127.0.0.1:0 --http 127.0.0.1:0 --pg-listen 127.0.0.1:0   # free ports, named in the ready line",
		},
	},
	"ingest": {
		usage: "eventlake ingest [flags]",
		about: `Consumes Kafka topics into Iceberg tables, exactly once: the Kafka offsets are stored with every commit.
Several ingest processes on one consumer group share the partitions; give each its own --instance-id (the
pod name, the systemd instance, or ${HOSTNAME} in a shared config file) so that a restart takes its
partitions back at once; without one it joins as a dynamic member. It creates the lake (namespace and tables) when the catalog holds none.`,
		examples: []string{
			"eventlake ingest --config /etc/eventlake/eventlake.yaml --instance-id ingest-0",
			"eventlake ingest --brokers kafka-1:9092,kafka-2:9092 --data-dir /var/lib/eventlake --http 127.0.0.1:8081",
		},
	},
	"query": {
		usage: "eventlake query [flags]",
		about: `Serves read-only SQL, the read-model endpoints and /metrics over an existing lake, with DuckDB; with a
Kafka connection (the default) it also runs the hot tier, which answers with events not yet in the lake.
It refuses a catalog that holds no lake unless --create-lake is given.`,
		examples: []string{
			"eventlake query --config /etc/eventlake/eventlake.yaml --http 0.0.0.0:8080 --pg-listen 0.0.0.0:5433",
			"eventlake query --no-hot --data-dir ./data --http 127.0.0.1:8090   # the lake only, no Kafka",
		},
	},
	"produce": {
		usage: "eventlake produce [flags]",
		about: `Publishes demo shop events from a seeded generator (the same --seed yields the same events), or replays
an NDJSON file with --file, to a Kafka cluster.`,
		examples: []string{
			"eventlake produce --brokers 127.0.0.1:9092 --rate 5000 --count 100000 --malformed-fraction 0.01",
			"eventlake produce --file events.ndjson --topic orders.created",
		},
	},
	"backfill": {
		usage: "eventlake backfill --model NAME --from TIME --to TIME [flags]",
		about: `Recomputes a declared read model's rows of an event-time range from the raw events in the lake, one
commit per --chunk; it is idempotent and resumes where a stopped run left off. It refuses a data directory
or catalog that holds no lake.`,
		examples: []string{
			"eventlake backfill --data-dir ./data --from 2026-11-26T00:00:00Z --to 2026-11-27T00:00:00Z",
			"eventlake backfill --config eventlake.yaml --model order_metrics --from 2026-11-26T10:00:00Z --to 2026-11-26T11:00:00Z",
		},
	},
	"models": {
		usage: "eventlake models [list | drop NAME] [flags]",
		about: `Lists the declared read models (read_models.models, or the shipped ones) with their tables, and every
read-model table in the catalog that no declaration maintains any more; drop removes such a table from the
catalog. A declared model cannot be dropped: remove it from the configuration first.`,
		examples: []string{
			"eventlake models --config eventlake.yaml",
			"eventlake models drop user_activity_minute --config eventlake.yaml",
		},
	},
	"broker": {
		usage: "eventlake broker [flags]",
		about: `Runs the embedded Kafka-protocol broker alone (persisted under DATA_DIR/kafka), for setups where ingest,
query and producers run as separate processes on one machine.`,
		examples: []string{
			"eventlake broker --listen 127.0.0.1:9092 --topics orders.created:6,inventory.updated:3",
		},
	},
	"topic": {
		usage: "eventlake topic create NAME [flags]",
		about: `Creates a topic. Neither the embedded broker nor most production clusters create topics on first use, and
a new event type usually starts with its topic.`,
		examples: []string{
			"eventlake topic create payments.captured --partitions 6 --brokers 127.0.0.1:9092",
		},
	},
	"compact": {
		usage: "eventlake compact [once|rewrite|retention|tier|expire|orphans] [flags]",
		about: `Maintains the lake: compacts closed hours' small files, applies retention and tiering, expires snapshots
and deletes orphan files. Without a task it runs every task every compactor.interval until stopped; with
one (or once, for all) it runs it once and prints a report. It refuses a data directory or catalog that
holds no lake.`,
		examples: []string{
			"eventlake compact --config eventlake.yaml                       # the daemon",
			"eventlake compact once --dry-run --data-dir ./data               # what a run would do",
			"eventlake compact rewrite --tables orders_raw --json --data-dir ./data",
		},
	},
	"token": {
		usage: "eventlake token create --name N --role R | list [--all] | revoke --name N",
		about: `Manages the bearer tokens of the query service, kept as hashes in the catalog database so that every
process of a deployment knows them. create prints the token once. It refuses a catalog that holds no lake
unless --create-lake is given.`,
		examples: []string{
			"eventlake token create --name alice --role analyst --data-dir ./data",
			"eventlake token list --all --config eventlake.yaml",
			"eventlake token revoke --name alice --data-dir ./data",
		},
	},
	"erase": {
		usage: "eventlake erase --user-id U --requested-by WHO [flags]",
		about: `Erases every event of one user (GDPR) from the raw tables and the dead-letter table, recomputes the read
models of the minutes it touched, and records the erasure in the erasure_log table. It refuses a data
directory or catalog that holds no lake.`,
		examples: []string{
			"eventlake erase --data-dir ./data --user-id u-42 --requested-by dpo@example.com --dry-run",
		},
	},
	"dlq": {
		usage: "eventlake dlq list|show|replay [--reason R] [--type T] [--topic T] [--since TIME] [--until TIME] [--ids IDS] [--pending] [flags]",
		about: `Reads and replays the dead-letter table (ingest.dlq_table, default dlq): every message ingest rejected,
with its raw bytes, the reason and detail, and its Kafka coordinates. list counts them by reason, event type,
source, topic and status (pending or replayed), with when the first and last arrived; show prints them, newest
first, with the raw bytes escaped (Go quoting; with --json a JSON string, plus base64 when the bytes are not
UTF-8). Type, source and event id are read from the raw bytes when they are JSON (the type falls back to the
schema subject). Filters apply to all three; --since and --until are on the time ingest stored the dead letter.

replay checks the selected pending dead letters again with the current schemas: the valid ones are committed
to their tables with their Kafka coordinates and replay_id, exactly once (an event_id already in its table is
not written again; kill -9 at any point and replay again); their rows get replay_id and replayed_at; rows still
invalid stay pending with their new reason. The read models of the minutes touched are recomputed, and the
replay is recorded in the dlq_replays table. --requested-by is required; --dry-run counts and changes nothing.
A running ingest or dev also replays a subject by itself when a new version is registered (dlq.auto_replay).
All three run next to eventlake dev or ingest on the same lake, and refuse a directory that holds no lake.`,
		examples: []string{
			"eventlake dlq list --data-dir ./data",
			"eventlake dlq list --pending --since now-1h --topic orders.created",
			"eventlake dlq show --reason not_json,schema_violation --limit 5",
			"eventlake dlq show --ids evt-42,orders.created/3/1017 --json | jq -r '.dead_letters[].raw'",
			"eventlake dlq replay --type order.created --dry-run",
			"eventlake dlq replay --type order.created --requested-by alice@example.com --json",
		},
	},
	"lineage": {
		usage: "eventlake lineage [--json | --dot] [flags]",
		about: `Shows where the lake's data comes from and where it goes, computed from the configuration and the lake:
the envelope sources of each topic's events with their counts and when ingest last committed one (kept
in the raw tables' properties, exactly as the rows), topics -> raw tables, the event types each table
holds with the columns each schema version added, the read models and the table and columns that feed
them, the views, and the endpoints that read them (those a query process with this configuration serves).
--json prints the document GET /v1/lineage answers; --dot a Graphviz digraph. It only reads, so it runs
next to eventlake dev or ingest on the same lake, and refuses a data directory or catalog that holds no
lake.`,
		examples: []string{
			"eventlake lineage --data-dir ./data",
			"eventlake lineage --json | jq '.topics[] | {topic, sources: [.sources[].source]}'",
			"eventlake lineage --dot | dot -Tsvg -o lineage.svg",
		},
	},
	"status": {
		usage: "eventlake status [flags]",
		about: `Shows one screen of a running query service (eventlake dev or eventlake query): per table its snapshot,
files, rows, last commit, ingest rate, lag and freshness; dead letters by reason; read models; readiness of
each component. It reads GET /v1/status with --token, $EVENTLAKE_TOKEN or DATA_DIR/admin.token.`,
		examples: []string{
			"eventlake status                                # eventlake dev on 127.0.0.1:8080, token from ./data/admin.token",
			"eventlake status --watch 2",
			"eventlake status --url https://query.internal:8080 --token \"$TOKEN\" --json | jq .tables",
		},
	},
	"version": {
		usage:    "eventlake version",
		about:    "Prints the version and the commit the binary was built from (also: eventlake --version).",
		examples: []string{"eventlake version"},
	},
}

// printHelp writes the help of command name: its text, then fs's flags.
func printHelp(w io.Writer, name string, fs *flag.FlagSet) {
	name = strings.Fields(name)[0] // "token create" is token's
	h, ok := helpTexts[name]
	if !ok {
		h.usage = "eventlake " + name + " [flags]"
		for _, c := range commands() {
			if c.name == name {
				h.about = c.short
			}
		}
	}
	fmt.Fprintf(w, "usage: %s\n\n%s\n", h.usage, h.about)
	if len(h.examples) > 0 {
		fmt.Fprintln(w, "\nexamples:")
		for _, e := range h.examples {
			fmt.Fprintln(w, "  "+e)
		}
	}
	if fs == nil {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// helpHint is the line under a usage error that says where to look.
func helpHint(name string) string {
	return fmt.Sprintf("run 'eventlake %s --help' for its flags and examples", strings.Fields(name)[0])
}
