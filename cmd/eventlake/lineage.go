package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventlake/eventlake/internal/route"
	"github.com/eventlake/eventlake/pgwire"
	"github.com/eventlake/eventlake/query"
	"github.com/eventlake/eventlake/streamer"
)

// runLineage prints the lineage of the lake and the configuration, read
// from the lake itself (query.ReadLineage; GET /v1/lineage is the same
// from a running query service): as text, JSON or Graphviz. It only
// reads, so it runs next to eventlake dev or ingest on the same lake.
func runLineage(ctx context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("lineage", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, false, false, "")
	asJSON := fs.Bool("json", false, "print one JSON document (the answer of GET /v1/lineage)")
	asDOT := fs.Bool("dot", false, "print a Graphviz digraph (render with: dot -Tsvg -o lineage.svg)")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if *asJSON && *asDOT {
		return usageError{"lineage: --json and --dot exclude each other"}
	}
	cfg, _, err := loadConfig(&cf, env)
	if err != nil {
		return err
	}
	if err := validateAll(cfg.Catalog.Validate(), cfg.SchemaRegistry.Validate(), cfg.Ingest.Validate(), cfg.Query.Validate()); err != nil {
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
	layout, sch, err := openStage(ctx, cfg, cat, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer sch.Close()
	models, err := declaredModels(ctx, cfg, sch.resolver.Set())
	if err != nil {
		return err
	}
	l, err := query.ReadLineage(ctx, cfg.Query, query.LineageDeps{Catalog: cat, Layout: layout, Inputs: cfg.ReadModels.ModelInputs, Models: models,
		Codecs: sch.resolver, Routes: configuredRoutes(cfg), Now: time.Now})
	if err != nil {
		return fmt.Errorf("compute the lineage: %w", err)
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	case *asDOT:
		return writeLineageDOT(env.stdout, l)
	}
	return writeLineageText(env.stdout, l)
}

// configuredRoutes are the routes a query process with cfg serves beside
// the query service's own: the hot tier's unless streamer.disabled, and
// the Postgres listener when postgres.listen names one (eventlake dev
// listens on 127.0.0.1:5433 unless told otherwise).
func configuredRoutes(cfg *Config) []route.Route {
	var out []route.Route
	if !cfg.Streamer.Disabled {
		out = append(out, streamer.Routes(cfg.Streamer, cfg.ReadModels.ModelInputs)...)
	}
	if cfg.Postgres.Listen != "" && cfg.Postgres.Listen != "off" {
		out = append(out, pgwire.Route())
	}
	return out
}

// writeLineageText prints the lineage for people: topics with their
// sources, event types with the columns each version added, read models,
// views and endpoints.
func writeLineageText(w io.Writer, l *query.Lineage) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	section := func(title string) { fmt.Fprintf(tw, "\n%s\n", title) }

	fmt.Fprintf(tw, "lineage at %s\n", l.Time)
	section("TOPICS  (source -> topic -> table)")
	if len(l.Topics) == 0 {
		fmt.Fprintln(tw, "  no raw table yet")
	}
	for _, tp := range l.Topics {
		fmt.Fprintf(tw, "  %s -> %s\t(%s)\n", safe(tp.Topic), safe(tp.Table), tp.Mapping)
		for _, s := range tp.Sources {
			fmt.Fprintf(tw, "    %s\t%d events\tlast %s\n", safe(s.Source), s.Events, s.LastSeen)
		}
		if o := tp.OtherSources; o != nil {
			fmt.Fprintf(tw, "    (other sources)\t%d events\tlast %s\n", o.Events, o.LastSeen)
		}
		if len(tp.Sources) == 0 && tp.OtherSources == nil {
			fmt.Fprintln(tw, "    no events committed yet")
		}
	}

	section("TABLES")
	for _, t := range l.Tables {
		state := ""
		if !t.Exists {
			state = "not created yet"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", safe(t.Name), t.Kind, strings.Join(t.Types, ", "), state)
	}

	section("TYPES  (schema versions and the columns each added)")
	for _, t := range l.Types {
		where := "in " + strings.Join(t.Tables, ", ")
		if len(t.Tables) == 0 {
			where = "no table holds it yet"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", safe(t.Type), where)
		if len(t.Versions) == 0 {
			fmt.Fprintln(tw, "    no schema: envelope columns only")
		}
		for _, v := range t.Versions {
			line := fmt.Sprintf("    v%d (id %d)\t+ %s", v.Version, v.ID, strings.Join(v.Added, ", "))
			if len(v.Added) == 0 {
				line = fmt.Sprintf("    v%d (id %d)\tno new column", v.Version, v.ID)
			}
			if len(v.Dropped) > 0 {
				line += "; dropped " + strings.Join(v.Dropped, ", ")
			}
			fmt.Fprintln(tw, line)
		}
	}

	section("READ MODELS  (<- raw table: type (columns))")
	for _, m := range l.ReadModels {
		from := m.Table
		if from == "" {
			from = "no raw table holds it yet"
		}
		fmt.Fprintf(tw, "  %s\t<- %s: %s (%s)\n", m.Name, safe(from), safe(m.Type), strings.Join(m.Columns, ", "))
	}

	section("VIEWS  (<- what they read)")
	for _, v := range l.Views {
		from := strings.Join(v.Tables, ", ")
		switch {
		case v.Kind == "type" && len(v.Tables) == 0:
			from = "type " + safe(v.Type) + " (no table holds it yet)"
		case v.Kind == "type":
			from = "type " + safe(v.Type) + " in " + from
		case len(v.Tables) == 0:
			from = "no table yet"
		}
		fmt.Fprintf(tw, "  %s\t%s\t<- %s\n", safe(v.Name), v.Kind, from)
	}

	section("ENDPOINTS  (<- what they read)")
	for _, e := range l.Endpoints {
		var reads []string
		for _, r := range e.Reads {
			s := r.Kind + " " + r.Name
			if r.Kind == string(route.Views) {
				s = "every view the caller may read"
			}
			if r.Filter != "" {
				s += " where " + r.Filter
			}
			reads = append(reads, s)
		}
		fmt.Fprintf(tw, "  %s\t<- %s\n", e.Endpoint, strings.Join(reads, "; "))
	}
	return tw.Flush()
}

// writeLineageDOT prints the lineage as a Graphviz digraph: one node per
// source, topic, table, type, view and endpoint, named kind:name, with
// a shape per kind, and its edges.
func writeLineageDOT(w io.Writer, l *query.Lineage) error {
	shapes := map[string]string{
		query.NodeSource:   `shape=ellipse, style=filled, fillcolor="#fde7c7"`,
		query.NodeTopic:    `shape=cds, style=filled, fillcolor="#d7e8fb"`,
		query.NodeTable:    `shape=cylinder, style=filled, fillcolor="#dff3e1"`,
		query.NodeType:     `shape=note, style=filled, fillcolor="#f3f3f3"`,
		query.NodeView:     `shape=box, style="rounded,filled", fillcolor="#efe4f7"`,
		query.NodeEndpoint: `shape=box, style=filled, fillcolor="#fbe0e0"`,
	}
	var nodes []string
	seen := map[string]bool{}
	node := func(id string) {
		if !seen[id] {
			seen[id] = true
			nodes = append(nodes, id)
		}
	}
	for _, tp := range l.Topics {
		node(query.LineageNode(query.NodeTopic, tp.Topic))
	}
	for _, t := range l.Tables {
		node(query.LineageNode(query.NodeTable, t.Name))
	}
	for _, t := range l.Types {
		node(query.LineageNode(query.NodeType, t.Type))
	}
	for _, v := range l.Views {
		node(query.LineageNode(query.NodeView, v.Name))
	}
	for _, e := range l.Endpoints {
		node(query.LineageNode(query.NodeEndpoint, e.Endpoint))
	}
	for _, e := range l.Edges {
		node(e.From)
		node(e.To)
	}
	var b strings.Builder
	b.WriteString("digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n")
	for _, id := range nodes {
		kind, name, _ := strings.Cut(id, ":")
		attrs := shapes[kind]
		if attrs == "" {
			attrs = "shape=box"
		}
		fmt.Fprintf(&b, "  %s [label=%s, tooltip=%s, %s];\n", dotQuote(id), dotQuote(name), dotQuote(kind), attrs)
	}
	for _, e := range l.Edges {
		fmt.Fprintf(&b, "  %s -> %s", dotQuote(e.From), dotQuote(e.To))
		if e.Label != "" {
			fmt.Fprintf(&b, " [label=%s]", dotQuote(e.Label))
		}
		b.WriteString(";\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotQuote quotes s as a Graphviz ID: inside double quotes, a backslash
// is doubled (labels read \n, \l, \N ... as escapes) and a quote
// escaped; a line break becomes \n.
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", "")
	return `"` + r.Replace(s) + `"`
}
