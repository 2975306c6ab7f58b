package query

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/internal/route"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/readmodel"
	"github.com/eventlake/eventlake/schema"
)

// Lineage is the answer of GET /v1/lineage and what `eventlake lineage`
// prints: where the lake's data comes from and where it goes, computed
// from the configuration and the lake, never written by hand. Sources
// per topic come from the raw tables' properties (ingest counts them in
// every commit), topics -> tables from the layout, the event types each
// table holds from its properties and the columns each version added
// from the schema registry, what feeds each read model from
// read_models, the views from the tables (as the service builds them),
// and the endpoints and what they read from the routes the process
// serves. Edges says the same as a graph.
type Lineage struct {
	// Time is when it was computed, RFC 3339 UTC.
	Time string `json:"time"`
	// LastRefresh is when the query service last read the catalog
	// successfully (GET /v1/lineage only: the command reads the lake
	// itself).
	LastRefresh string            `json:"last_refresh,omitempty"`
	Topics      []LineageTopic    `json:"topics"`
	Tables      []LineageTable    `json:"tables"`
	Types       []LineageType     `json:"types"`
	ReadModels  []LineageModel    `json:"read_models"`
	Views       []LineageView     `json:"views"`
	Endpoints   []LineageEndpoint `json:"endpoints"`
	Edges       []LineageEdge     `json:"edges"`
}

// LineageTopic is one topic whose events are in the lake, and their
// sources.
type LineageTopic struct {
	Topic string `json:"topic"`
	Table string `json:"table"`
	// Mapping says how the topic came to its table: explicit
	// (ingest.topics), pattern (a table named after its topic, as for
	// topics ingest.topic_pattern takes) or other (no longer mapped).
	Mapping string `json:"mapping"`
	// Sources are the envelope sources of the events the table holds, by
	// source.
	Sources []LineageSource `json:"sources"`
	// OtherSources counts the events of the sources beyond what a table
	// keeps apart (lake.MaxSources); null when there are none.
	OtherSources *LineageSource `json:"other_sources"`
}

// LineageSource is one envelope source of a topic.
type LineageSource struct {
	Source string `json:"source,omitempty"`
	// Events are the events of the source the table holds.
	Events int64 `json:"events"`
	// LastSeen is when ingest last committed one, RFC 3339 UTC.
	LastSeen string `json:"last_seen"`
}

// LineageTable is one table the service serves.
type LineageTable struct {
	Name string `json:"name"`
	// Kind is raw, dlq, read_model or audit, as in GET /v1/status.
	Kind  string `json:"kind"`
	Topic string `json:"topic,omitempty"`
	// Exists is false for a configured table not created yet.
	Exists bool `json:"exists"`
	// Types are the event types a raw table holds typed columns for.
	Types []string `json:"types,omitempty"`
}

// LineageType is one event type: the subject of its schema.
type LineageType struct {
	Type string `json:"type"`
	// Tables hold events of the type with its typed columns.
	Tables []string `json:"tables"`
	// Versions are the subject's versions in the registry, oldest first;
	// empty for a type without a schema.
	Versions []LineageVersion `json:"versions"`
}

// LineageVersion is one schema version and the columns it brought.
type LineageVersion struct {
	Version int `json:"version"`
	// ID is the registry's schema id.
	ID int `json:"id"`
	// Added are the columns no earlier version had (schema.VersionChange).
	Added []string `json:"added_columns"`
	// Dropped are the columns of the previous version this one lacks.
	Dropped []string `json:"dropped_columns,omitempty"`
}

// LineageModel is one declared read model and what feeds it.
type LineageModel struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Table is the first raw table that holds Type (empty when none
	// does yet): what backfill and re-aggregation recompute from.
	Table   string   `json:"table,omitempty"`
	Columns []string `json:"columns"`
	// SQL is a declared model's declaration.
	SQL string `json:"sql,omitempty"`
}

// LineageView is one SQL view.
type LineageView struct {
	Name string `json:"name"`
	// Kind is table (a table under its own name), events (every raw
	// event), type (one event type's rows) or dlq.
	Kind string `json:"kind"`
	Type string `json:"type,omitempty"`
	// Tables are the tables it reads.
	Tables []string `json:"tables"`
}

// LineageEndpoint is one endpoint that answers from data.
type LineageEndpoint struct {
	// Endpoint is the HTTP method and path, or the protocol of another
	// listener (postgres).
	Endpoint string        `json:"endpoint"`
	About    string        `json:"about"`
	Reads    []LineageRead `json:"reads"`
}

// LineageRead is one thing an endpoint reads: a table, a Kafka topic
// (the hot tier) or every view the caller's grants allow (views).
type LineageRead struct {
	Kind   string `json:"kind"`
	Name   string `json:"name,omitempty"`
	Filter string `json:"filter,omitempty"`
}

// LineageEdge is one arrow of the graph, between nodes named kind:name
// (LineageNode).
type LineageEdge struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Label string `json:"label,omitempty"`
}

// Node kinds of the lineage graph.
const (
	NodeSource   = "source"
	NodeTopic    = "topic"
	NodeTable    = "table"
	NodeType     = "type"
	NodeView     = "view"
	NodeEndpoint = "endpoint"
)

// LineageNode names a node of the lineage graph: kind:name.
func LineageNode(kind, name string) string { return kind + ":" + name }

// Topic mappings (LineageTopic.Mapping).
const (
	mappingExplicit = "explicit" // ingest.topics maps the topic to the table
	// mappingPattern: the table is named after its topic (lake.TableName),
	// as ingest names the table of a topic its pattern takes. Not whether
	// this configuration's pattern takes it: the lake says what was
	// ingested, and `eventlake dev` takes every topic by default.
	mappingPattern = "pattern"
	// mappingOther: neither (the configuration no longer maps the topic
	// to the table); the table is still served.
	mappingOther = "other"
)

// mappingOf says how topic came to table.
func mappingOf(layout *lake.Layout, topic, table string) string {
	if t, ok := layout.TableFor(topic); ok && t == table && layout.Explicit(topic) {
		return mappingExplicit
	}
	if lake.TableName(topic) == table {
		return mappingPattern
	}
	return mappingOther
}

// events labels a count of events.
func events(n int64) string {
	if n == 1 {
		return "1 event"
	}
	return fmt.Sprintf("%d events", n)
}

// lineageIn is what a lineage is computed from.
type lineageIn struct {
	layout *lake.Layout
	inputs lake.ModelInputs
	models []*readmodel.Model
	set    *schema.Set // nil: types without versions
	tables []*tableState
	views  []view
	routes []route.Route
	now    time.Time
}

// buildLineage is the one computation of the lineage.
func buildLineage(in lineageIn) *Lineage {
	l := &Lineage{Time: in.now.UTC().Format(time.RFC3339Nano), Topics: []LineageTopic{}, Tables: []LineageTable{},
		Types: []LineageType{}, ReadModels: []LineageModel{}, Views: []LineageView{}, Endpoints: []LineageEndpoint{},
		Edges: []LineageEdge{}}
	edge := func(fromKind, from, toKind, to, label string) {
		l.Edges = append(l.Edges, LineageEdge{From: LineageNode(fromKind, from), To: LineageNode(toKind, to), Label: label})
	}
	tables := slices.Clone(in.tables)
	slices.SortFunc(tables, func(a, b *tableState) int { return strings.Compare(a.spec.name, b.spec.name) })

	// Sources -> topics -> raw tables, and the dead-letter table.
	served := map[string]bool{}
	rawOf := map[string]string{}     // topic -> raw table
	holders := map[string][]string{} // event type -> raw tables
	dlq := ""
	for _, st := range tables {
		lt := LineageTable{Name: st.spec.name, Kind: tableKind(st.spec), Topic: st.spec.topic, Exists: st.exists, Types: st.types}
		l.Tables = append(l.Tables, lt)
		served[lt.Name] = true
		switch {
		case st.spec.dlq:
			dlq = lt.Name
		case lt.Kind == kindRaw:
			for _, t := range st.types {
				holders[t] = append(holders[t], lt.Name)
			}
			if lt.Topic == "" {
				continue
			}
			rawOf[lt.Topic] = lt.Name
			tp := LineageTopic{Topic: lt.Topic, Table: lt.Name, Mapping: mappingOf(in.layout, lt.Topic, lt.Name), Sources: []LineageSource{}}
			sources, other := lake.SourcesOf(st.props)
			for _, src := range sources {
				tp.Sources = append(tp.Sources, LineageSource{Source: src.Source, Events: src.Events, LastSeen: src.LastSeen.Format(time.RFC3339Nano)})
				edge(NodeSource, src.Source, NodeTopic, lt.Topic, events(src.Events))
			}
			if other.Events > 0 {
				tp.OtherSources = &LineageSource{Events: other.Events, LastSeen: other.LastSeen.Format(time.RFC3339Nano)}
			}
			l.Topics = append(l.Topics, tp)
			edge(NodeTopic, lt.Topic, NodeTable, lt.Name, tp.Mapping)
		}
	}
	slices.SortFunc(l.Topics, func(a, b LineageTopic) int { return strings.Compare(a.Topic, b.Topic) })
	if dlq != "" {
		for _, tp := range l.Topics {
			edge(NodeTopic, tp.Topic, NodeTable, dlq, "rejected")
		}
	}

	// Event types: the tables that hold them and their versions.
	types := map[string]bool{}
	for t := range holders {
		types[t] = true
	}
	if in.set != nil {
		for _, sub := range in.set.Subjects() {
			types[sub.Name] = true
		}
	}
	for _, v := range in.views {
		if v.kind == viewType {
			types[v.typ] = true
		}
	}
	for _, typ := range slices.Sorted(maps.Keys(types)) {
		lt := LineageType{Type: typ, Tables: holders[typ], Versions: []LineageVersion{}}
		if lt.Tables == nil {
			lt.Tables = []string{}
		}
		slices.Sort(lt.Tables)
		if in.set != nil {
			if sub := in.set.Subject(typ); sub != nil {
				for _, ch := range sub.History() {
					added := ch.Added
					if added == nil {
						added = []string{}
					}
					lt.Versions = append(lt.Versions, LineageVersion{Version: ch.Version, ID: ch.ID, Added: added, Dropped: ch.Dropped})
				}
			}
		}
		l.Types = append(l.Types, lt)
		for _, t := range lt.Tables {
			edge(NodeTable, t, NodeType, typ, "")
		}
	}

	// Declared models, from the raw tables that hold their event type.
	for _, m := range in.models {
		if !served[m.Name] {
			continue
		}
		lm := LineageModel{Name: m.Name, Type: m.Type, Columns: m.ColumnsRead(), SQL: m.SQL}
		if m.Table != "" {
			// Over a table the hot tier derives (user_sessions).
			lm.Table = m.Table
			edge(NodeTable, m.Table, NodeTable, m.Name, m.Table+" ("+strings.Join(lm.Columns, ", ")+")")
		}
		for _, lt := range l.Types {
			if lt.Type != m.Type {
				continue
			}
			for _, t := range lt.Tables {
				if lm.Table == "" {
					lm.Table = t
				}
				edge(NodeTable, t, NodeTable, m.Name, m.Type+" ("+strings.Join(lm.Columns, ", ")+")")
			}
		}
		l.ReadModels = append(l.ReadModels, lm)
	}

	// Views.
	views := slices.Clone(in.views)
	slices.SortFunc(views, func(a, b view) int { return strings.Compare(a.name, b.name) })
	for _, v := range views {
		lv := LineageView{Name: v.name, Kind: v.kind, Type: v.typ, Tables: slices.Clone(v.tables)}
		if lv.Tables == nil {
			lv.Tables = []string{}
		}
		l.Views = append(l.Views, lv)
		if v.kind == viewType {
			edge(NodeType, v.typ, NodeView, v.name, "")
			continue
		}
		for _, t := range v.tables {
			edge(NodeTable, t, NodeView, v.name, "")
		}
	}

	// Endpoints, and what they read.
	for _, r := range in.routes {
		if len(r.Reads) == 0 {
			continue
		}
		ep := LineageEndpoint{Endpoint: r.Pattern, About: r.About}
		for _, rd := range r.Reads {
			ep.Reads = append(ep.Reads, LineageRead{Kind: string(rd.Kind), Name: rd.Name, Filter: rd.Filter})
			switch rd.Kind {
			case route.Views:
				for _, v := range views {
					edge(NodeView, v.name, NodeEndpoint, r.Pattern, "")
				}
			case route.Table:
				edge(NodeTable, rd.Name, NodeEndpoint, r.Pattern, rd.Filter)
			case route.Topic:
				edge(NodeTopic, rd.Name, NodeEndpoint, r.Pattern, rd.Filter)
			}
		}
		l.Endpoints = append(l.Endpoints, ep)
	}
	return l
}

// Lineage is the lineage of what the service serves now (the generation
// in service) through routes (Handler's); nil before the lake was first
// read.
func (s *Service) Lineage(routes []route.Route) *Lineage {
	gen := s.gen.Load()
	if gen == nil {
		return nil
	}
	var set *schema.Set
	if s.deps.Codecs != nil {
		set = s.deps.Codecs.Set()
	}
	l := buildLineage(lineageIn{layout: s.deps.Layout, inputs: s.deps.Inputs, models: s.deps.Models, set: set, tables: gen.tables, views: gen.views,
		routes: routes, now: s.deps.Now()})
	if ns := s.lastOK.Load(); ns != 0 {
		l.LastRefresh = time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
	}
	return l
}

func (s *Service) handleLineage(routes []route.Route) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		l := s.Lineage(routes)
		if l == nil {
			s.writeError(w, &apiError{status: http.StatusServiceUnavailable, code: codeNotReady, retryAfter: time.Second,
				msg: "the query service has not read the lake yet; retry in a moment (see /readyz)"})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		s.writeJSON(w, http.StatusOK, l)
	}
}

// LineageDeps are what ReadLineage computes a lineage from: the
// collaborators of a query process (as in Deps) without one running.
type LineageDeps struct {
	Catalog *lake.Catalog
	Layout  *lake.Layout
	Inputs  lake.ModelInputs
	// Models are the declared read models.
	Models []*readmodel.Model
	// Codecs give the event types' versions (nil: none).
	Codecs schema.Codecs
	// ReadModels are the read models served; nil means the declared
	// models'.
	ReadModels []string
	// Routes are the process's routes besides the service's own (the hot
	// tier's, the Postgres listener's), as Handler takes them.
	Routes []route.Route
	Now    func() time.Time
}

// ReadLineage computes, from the lake itself, the lineage a query
// process with cfg and deps would serve (the command `eventlake
// lineage`): the tables the catalog holds now, with the configured ones
// not created yet, and their views, as the service would build them.
func ReadLineage(ctx context.Context, cfg Config, deps LineageDeps) (*Lineage, error) {
	if deps.Catalog == nil || deps.Layout == nil {
		return nil, errors.New("lineage: a catalog and a table layout are required")
	}
	deps.Inputs.Defaults()
	if deps.ReadModels == nil {
		deps.ReadModels = servedModels(deps.Models)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	specs, err := configuredSpecs(deps.Layout, deps.ReadModels, deps.Models)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, sp := range specs {
		known[sp.name] = true
	}
	loaded := map[string]*table.Table{}
	ns := table.Identifier{deps.Catalog.Config().Namespace}
	for ident, err := range deps.Catalog.Iceberg().ListTables(ctx, ns) {
		if err != nil {
			return nil, fmt.Errorf("list the tables of the lake: %w", err)
		}
		name := ident[len(ident)-1]
		tbl, err := deps.Catalog.LoadTable(ctx, name)
		if errors.Is(err, icecat.ErrNoSuchTable) {
			continue // dropped between listing and loading
		}
		if err != nil {
			return nil, fmt.Errorf("load table %s: %w", name, err)
		}
		loaded[name] = tbl
		if !known[name] {
			known[name] = true
			if sp := foundSpec(name, tbl); sp != nil {
				specs = append(specs, sp)
			}
		}
	}
	states := make([]*tableState, len(specs))
	for i, sp := range specs {
		st := &tableState{spec: sp, offsets: lake.Offsets{}}
		if tbl := loaded[sp.name]; tbl != nil {
			st.exists, st.types, st.props = true, lake.TypesOf(tbl.Properties()), tbl.Properties()
		}
		states[i] = st
	}
	var set *schema.Set
	if deps.Codecs != nil {
		set = deps.Codecs.Set()
	}
	return buildLineage(lineageIn{layout: deps.Layout, inputs: deps.Inputs, models: deps.Models, set: set, tables: states,
		views:  buildViews(states, nil, typeViewsOf(cfg, deps.Inputs), deps.Codecs),
		routes: route.Merge(queryRoutes(deps.Layout, deps.Inputs, nil), deps.Routes...), now: deps.Now()}), nil
}
