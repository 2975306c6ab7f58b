package query

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// column is one output column of a table or view.
type column struct {
	name, typ string
	id        int // Iceberg field id; 0 for view columns
}

// schemaColumns lists the top-level columns of an Iceberg schema.
func schemaColumns(sc *iceberg.Schema) ([]column, error) {
	var cols []column
	for _, f := range sc.Fields() {
		t, err := duck.Type(f.Type)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", f.Name, err)
		}
		cols = append(cols, column{name: f.Name, typ: t, id: f.ID})
	}
	return cols, nil
}

// emptySelect is a query with the given columns and no rows.
func emptySelect(cols []column) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "CAST(NULL AS %s) AS %s", c.typ, duck.QuoteIdent(c.name))
	}
	b.WriteString(" WHERE false")
	return b.String()
}

// failingSelect is a query with the given columns that fails when it runs,
// with msg as the error. It stands in for a table that cannot be served
// correctly, so that a query reading it fails rather than returning wrong
// rows, and a query not reading it is unaffected. Every column and the
// filter call error(): with constant NULL columns, the optimizer would
// fold a filter such as type = 'order.created' to false and drop the
// relation, error and all.
func failingSelect(cols []column, msg string) string {
	fail := "error(" + duck.QuoteString(unavailableMarker+msg) + ")"
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "CAST(%s AS %s) AS %s", fail, c.typ, duck.QuoteIdent(c.name))
	}
	b.WriteString(" WHERE " + fail + " IS NULL")
	return b.String()
}

// unavailableMarker starts the message of failingSelect, so that the error
// a query gets from it can be told from other execution errors.
const unavailableMarker = "eventlake: "

// readParquet is a read_parquet call over files that maps columns by
// Iceberg field id (the ids ingest writes into every Parquet schema), so
// that renamed columns keep their data and columns added after a file was
// written read as NULL. Hive partition detection is off: the data
// directories look like ts_hour=... and would otherwise add a column.
func readParquet(paths []string, cols []column) string {
	var b strings.Builder
	b.WriteString("read_parquet([")
	for i, p := range paths {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(duck.QuoteString(p))
	}
	b.WriteString("], hive_partitioning = false, schema = MAP {")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d: {name: %s, type: %s, default_value: NULL}", c.id, duck.QuoteString(c.name), duck.QuoteString(c.typ))
	}
	b.WriteString("})")
	return b.String()
}

// projection selects cols from a relation: columns the relation has are
// taken (cast when the type differs), missing ones are typed NULLs.
func projection(want []column, have []column) string {
	byName := make(map[string]column, len(have))
	for _, c := range have {
		byName[c.name] = c
	}
	var b strings.Builder
	for i, w := range want {
		if i > 0 {
			b.WriteString(", ")
		}
		h, ok := byName[w.name]
		switch {
		case !ok:
			fmt.Fprintf(&b, "CAST(NULL AS %s) AS %s", w.typ, duck.QuoteIdent(w.name))
		case h.typ != w.typ:
			fmt.Fprintf(&b, "CAST(%s AS %s) AS %s", duck.QuoteIdent(w.name), w.typ, duck.QuoteIdent(w.name))
		default:
			b.WriteString(duck.QuoteIdent(w.name))
		}
	}
	return b.String()
}

// Columns of the derived views: every raw event (events), and the
// envelope columns around a type's payload columns (type views).
var (
	eventsColumns = []column{
		{name: lake.ColEventID, typ: "VARCHAR"},
		{name: lake.ColSource, typ: "VARCHAR"},
		{name: lake.ColType, typ: "VARCHAR"},
		{name: lake.ColTs, typ: "TIMESTAMPTZ"},
		{name: lake.ColPayload, typ: "VARCHAR"},
		{name: lake.ColMetadata, typ: "VARCHAR"},
		{name: lake.ColKafkaTopic, typ: "VARCHAR"},
		{name: lake.ColKafkaPartition, typ: "INTEGER"},
		{name: lake.ColKafkaOffset, typ: "BIGINT"},
		{name: lake.ColIngestedAt, typ: "TIMESTAMPTZ"},
		{name: lake.ColReplayID, typ: "VARCHAR"},
	}
	typeHead = []column{
		{name: lake.ColEventID, typ: "VARCHAR"},
		{name: lake.ColTs, typ: "TIMESTAMPTZ"},
	}
	typeTail = []column{
		{name: lake.ColSource, typ: "VARCHAR"},
		{name: lake.ColKafkaTopic, typ: "VARCHAR"},
		{name: lake.ColKafkaPartition, typ: "INTEGER"},
		{name: lake.ColKafkaOffset, typ: "BIGINT"},
		{name: lake.ColIngestedAt, typ: "TIMESTAMPTZ"},
		{name: lake.ColReplayID, typ: "VARCHAR"},
	}
)

// view is one view of a generation.
type view struct {
	name   string
	kind   string   // viewTable, viewEvents, viewType or viewDLQ
	typ    string   // viewType: the event type
	sql    string   // the SELECT the view stands for
	cols   []column // its columns (masks are applied by name and type)
	tables []string // the tables it reads (the audit log names their snapshots)
}

// View kinds.
const (
	viewTable  = "table"  // a table under its own name
	viewEvents = "events" // every raw event
	viewType   = "type"   // one event type's rows, under its name or an alias (query.type_views)
	viewDLQ    = "dlq"    // the dead-letter table
)

func (v view) create() string {
	return "CREATE OR REPLACE TEMP VIEW " + duck.QuoteIdent(v.name) + " AS " + v.sql
}

// tableSelect is the SELECT a table's own view stands for: the snapshot's
// files, and for a raw table the hot rows after the offsets the snapshot
// stores (see hot.go).
func tableSelect(st *tableState, hotCols []column) string {
	if st.refused != "" {
		return failingSelect(st.columns, st.refused)
	}
	var cold string
	if len(st.files) == 0 {
		cold = emptySelect(st.columns)
	} else {
		paths := make([]string, len(st.files))
		for i, f := range st.files {
			paths[i] = f.path
		}
		var names []string
		for _, c := range st.columns {
			names = append(names, duck.QuoteIdent(c.name))
		}
		cold = "SELECT " + strings.Join(names, ", ") + " FROM " + readParquet(paths, st.columns)
	}
	if !st.spec.hasHot() || hotCols == nil {
		return cold
	}
	return cold + " UNION ALL SELECT " + projection(st.columns, hotCols) + " FROM " + hotTableSQL(st.spec.name) +
		" WHERE " + duck.QuoteIdent(lake.ColKafkaOffset) + " >= " + offsetFloor(st.spec.topic, st.offsets)
}

// unionOf is the UNION ALL of want's projection over every table in
// tables, filtered by where; a typed empty query when tables is empty.
// rel is what a table is read as (tableRef: its view).
func unionOf(want []column, tables []*tableState, where string, rel func(*tableState) string) string {
	if len(tables) == 0 {
		return emptySelect(want)
	}
	parts := make([]string, len(tables))
	for i, st := range tables {
		parts[i] = "SELECT " + projection(want, st.columns) + " FROM " + rel(st) + where
	}
	return strings.Join(parts, " UNION ALL ")
}

// tableRef reads a table as its view.
func tableRef(st *tableState) string { return duck.QuoteIdent(st.spec.name) }

// buildViews is every view over tables, in creation order: tables
// first, then the views over them: events (every raw event), one view per
// event type a raw table holds (named lake.TableName(type)), the aliases
// of type views (typeViews: view -> type), and dlq. hotCols are the
// columns of the raw tables' hot rows; codecs, if set, give each type
// view's columns.
func buildViews(tables []*tableState, hotCols map[string][]column, typeViews map[string]string, codecs schema.Codecs) []view {
	var (
		views []view
		raw   []*tableState
		dlq   *tableState
	)
	holders := map[string][]*tableState{} // event type -> raw tables that hold it
	taken := map[string]bool{}
	for _, st := range tables {
		if !st.exists && !st.spec.readModel && !st.spec.dlq && hotCols[st.spec.name] != nil {
			// The hot tier has rows of a raw table ingest has not created
			// yet (both read the topic; the table is created at ingest's
			// first event): serve them with their columns, also under the
			// configured type views (which filter by type), so that these
			// agree with the table's view from the first event on.
			c := *st
			c.columns, c.types = hotCols[st.spec.name], aliasedTypes(typeViews)
			st = &c
		}
		views = append(views, view{name: st.spec.name, kind: viewTable, sql: tableSelect(st, hotCols[st.spec.name]), cols: st.columns, tables: []string{st.spec.name}})
		taken[strings.ToLower(st.spec.name)] = true
		switch {
		case st.spec.readModel:
		case st.spec.dlq:
			dlq = st
		default:
			raw = append(raw, st)
			for _, t := range st.types {
				holders[t] = append(holders[t], st)
			}
		}
	}
	views = append(views, view{name: ViewEvents, kind: viewEvents, sql: unionOf(eventsColumns, raw, "", tableRef), cols: eventsColumns, tables: names(raw)})
	taken[ViewEvents] = true
	typeView := func(name, typ string) {
		if taken[strings.ToLower(name)] {
			return
		}
		taken[strings.ToLower(name)] = true
		cols := append(append(slices.Clone(typeHead), typeColumns(codecs, typ, holders[typ])...), typeTail...)
		views = append(views, view{name: name, kind: viewType, typ: typ, cols: cols, tables: names(holders[typ]), sql: unionOf(cols, holders[typ], typeFilter(typ), tableRef)})
	}
	aliases := slices.Sorted(maps.Keys(typeViews))
	for _, name := range aliases {
		typeView(name, typeViews[name])
	}
	for _, typ := range slices.Sorted(maps.Keys(holders)) {
		typeView(lake.TableName(typ), typ)
	}
	if dlq != nil && !strings.EqualFold(dlq.spec.name, ViewDLQ) {
		views = append(views, view{name: ViewDLQ, kind: viewDLQ, sql: "SELECT * FROM " + duck.QuoteIdent(dlq.spec.name), cols: dlq.columns, tables: []string{dlq.spec.name}})
	}
	return views
}

// typeColumns are the payload columns of an event type's view: the
// subject's columns (every version's) from the registry (codecs, if
// set), else the typed columns of the tables that hold it.
func typeColumns(codecs schema.Codecs, typ string, tables []*tableState) []column {
	var out []column
	if codecs != nil {
		if sub := codecs.Set().Subject(typ); sub != nil {
			for _, c := range sub.Columns {
				t, err := duck.Type(c.Type)
				if err != nil {
					continue
				}
				out = append(out, column{name: c.Name, typ: t})
			}
			return out
		}
	}
	for _, st := range tables {
		for _, c := range st.columns {
			if !lake.IsEnvelopeColumn(c.name) && !slices.ContainsFunc(out, func(o column) bool { return o.name == c.name }) {
				out = append(out, column{name: c.name, typ: c.typ})
			}
		}
	}
	return out
}

// timestamptzLiteral renders micros since the epoch as a DuckDB literal
// with an explicit UTC offset, so that it does not depend on TimeZone.
func timestamptzLiteral(micros int64) string {
	return "TIMESTAMPTZ '" + time.UnixMicro(micros).UTC().Format("2006-01-02 15:04:05.000000") + "+00'"
}

// names are the tables' names.
func names(tables []*tableState) []string {
	out := make([]string, len(tables))
	for i, st := range tables {
		out[i] = st.spec.name
	}
	return out
}

// aliasedTypes are the types of the configured type views (aliases).
func aliasedTypes(typeViews map[string]string) []string {
	var out []string
	for _, t := range typeViews {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}
