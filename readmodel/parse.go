package readmodel

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	// The DuckDB driver: Parse asks DuckDB's own parser for the tree.
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/lake"
)

// Declaration is a read model as configured: a name and its SQL.
type Declaration struct {
	Name string `yaml:"name" json:"name"`
	SQL  string `yaml:"sql" json:"sql"`
}

// Source is what a FROM name stands for: an event type and the columns
// its events have (the union of its schema versions'; Parse adds the
// envelope's event_id, source, type and ts).
type Source struct {
	Type    string
	Columns map[string]iceberg.Type
	// Table, when set, makes the source a table the hot tier derives
	// (user_sessions) rather than an event type: a model over it reads the
	// table's final rows (Rows), each numbered in its "seq" column in the
	// order the hot tier committed them, and Columns must hold ts.
	Table string
	Rows  iceberg.BooleanExpression
}

// Sources resolves a FROM name: a type view's name (query.type_views), an
// event type's name, or the table name of a type (order_created).
type Sources func(name string) (Source, bool)

// envelopeInputs are the envelope columns a model may read.
var envelopeInputs = map[string]iceberg.Type{
	lake.ColEventID: iceberg.PrimitiveTypes.String,
	lake.ColSource:  iceberg.PrimitiveTypes.String,
	lake.ColType:    iceberg.PrimitiveTypes.String,
	lake.ColTs:      iceberg.PrimitiveTypes.TimestampTz,
}

// FormError is a declaration outside the form: Part names the part of
// the SQL (FROM, WHERE, select item 2, ...) and Msg says why.
type FormError struct {
	Model, Part, Msg string
}

func (e *FormError) Error() string {
	return fmt.Sprintf("read model %s: %s: %s", e.Model, e.Part, e.Msg)
}

// Parse parses and checks declarations; the error joins one FormError (or
// other error) per declaration that is refused.
func Parse(ctx context.Context, decls []Declaration, src Sources) ([]*Model, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, fmt.Errorf("open duckdb to parse read models: %w", err)
	}
	defer db.Close()
	var (
		out  []*Model
		errs []error
		seen = map[string]bool{}
	)
	for _, d := range decls {
		if seen[d.Name] {
			errs = append(errs, fmt.Errorf("read model %s is declared twice", d.Name))
			continue
		}
		seen[d.Name] = true
		m, err := parseOne(ctx, db, d, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}

var identRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// node is one node of DuckDB's serialized parse tree (the fields the form
// uses).
type node struct {
	Class        string  `json:"class"`
	Type         string  `json:"type"`
	Alias        string  `json:"alias"`
	FunctionName string  `json:"function_name"`
	Schema       string  `json:"schema"`
	Catalog      string  `json:"catalog"`
	Children     []*node `json:"children"`
	Child        *node   `json:"child"`
	Left         *node   `json:"left"`
	Right        *node   `json:"right"`
	Input        *node   `json:"input"`
	Lower        *node   `json:"lower"`
	Upper        *node   `json:"upper"`
	ColumnNames  []string
	Value        *constant `json:"value"`
	CastType     *struct {
		ID string `json:"id"`
	} `json:"cast_type"`
	Distinct bool            `json:"distinct"`
	Filter   json.RawMessage `json:"filter"`
	OrderBys *struct {
		Orders []json.RawMessage `json:"orders"`
	} `json:"order_bys"`
	ExportState bool `json:"export_state"`
}

func (n *node) UnmarshalJSON(b []byte) error {
	type plain node
	var aux struct {
		plain
		ColumnNames []string `json:"column_names"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*n = node(aux.plain)
	n.ColumnNames = aux.ColumnNames
	return nil
}

type constant struct {
	Type struct {
		ID       string `json:"id"`
		TypeInfo *struct {
			Scale int `json:"scale"`
		} `json:"type_info"`
	} `json:"type"`
	IsNull bool            `json:"is_null"`
	Value  json.RawMessage `json:"value"`
}

type selectNode struct {
	Type      string            `json:"type"`
	Modifiers []json.RawMessage `json:"modifiers"`
	CteMap    struct {
		Map []json.RawMessage `json:"map"`
	} `json:"cte_map"`
	SelectList []*node `json:"select_list"`
	FromTable  *struct {
		Type        string          `json:"type"`
		Alias       string          `json:"alias"`
		Sample      json.RawMessage `json:"sample"`
		SchemaName  string          `json:"schema_name"`
		TableName   string          `json:"table_name"`
		CatalogName string          `json:"catalog_name"`
		AtClause    json.RawMessage `json:"at_clause"`
	} `json:"from_table"`
	WhereClause       *node           `json:"where_clause"`
	GroupExpressions  []*node         `json:"group_expressions"`
	GroupSets         [][]int         `json:"group_sets"`
	AggregateHandling string          `json:"aggregate_handling"`
	Having            json.RawMessage `json:"having"`
	Sample            json.RawMessage `json:"sample"`
	Qualify           json.RawMessage `json:"qualify"`
}

func present(r json.RawMessage) bool { return len(r) > 0 && string(r) != "null" }

// positions matches the parse tree's source positions, which canonical
// forms leave out.
var positions = regexp.MustCompile(`"query_location":\d+,?`)

func parseOne(ctx context.Context, db *sql.DB, d Declaration, src Sources) (*Model, error) {
	fail := func(part, format string, args ...any) error {
		return &FormError{Model: d.Name, Part: part, Msg: fmt.Sprintf(format, args...)}
	}
	if !identRE.MatchString(d.Name) {
		return nil, fail("name", "%q is not a table name: lower-case letters, digits and _, starting with a letter", d.Name)
	}
	if strings.TrimSpace(d.SQL) == "" {
		return nil, fail("sql", "empty: declare the model as SELECT ... FROM <type or view> GROUP BY ALL")
	}
	var tree string
	if err := db.QueryRowContext(ctx, "SELECT json_serialize_sql($1::VARCHAR)::VARCHAR", d.SQL).Scan(&tree); err != nil {
		return nil, fmt.Errorf("read model %s: parse its SQL: %w", d.Name, err)
	}
	var top struct {
		Error      bool   `json:"error"`
		ErrMessage string `json:"error_message"`
		Statements []struct {
			Node json.RawMessage `json:"node"`
		} `json:"statements"`
	}
	if err := json.Unmarshal([]byte(tree), &top); err != nil {
		return nil, fmt.Errorf("read model %s: read DuckDB's parse tree: %w", d.Name, err)
	}
	if top.Error {
		return nil, fail("sql", "does not parse: %s", top.ErrMessage)
	}
	if len(top.Statements) != 1 {
		return nil, fail("sql", "one SELECT statement, found %d statements", len(top.Statements))
	}
	var sel selectNode
	if err := json.Unmarshal(top.Statements[0].Node, &sel); err != nil {
		return nil, fmt.Errorf("read model %s: read DuckDB's parse tree: %w", d.Name, err)
	}
	if sel.Type != "SELECT_NODE" {
		return nil, fail("sql", "one plain SELECT: UNION, EXCEPT, INTERSECT and VALUES are not read models")
	}
	if len(sel.CteMap.Map) > 0 {
		return nil, fail("WITH", "common table expressions are not part of the form: read one source directly")
	}
	for _, mod := range sel.Modifiers {
		var m struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(mod, &m)
		switch m.Type {
		case "ORDER_MODIFIER":
			return nil, fail("ORDER BY", "a read model holds every bucket in no order; order when you query it")
		case "LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER":
			return nil, fail("LIMIT", "a read model holds every bucket; limit when you query it")
		case "DISTINCT_MODIFIER":
			return nil, fail("SELECT DISTINCT", "rows are already one per bucket and key")
		default:
			return nil, fail("sql", "%s is not part of the form", strings.ToLower(strings.TrimSuffix(m.Type, "_MODIFIER")))
		}
	}
	if present(sel.Having) {
		return nil, fail("HAVING", "a filter on aggregates cannot be kept incrementally (a bucket may pass it later); filter when you query the model")
	}
	if present(sel.Qualify) {
		return nil, fail("QUALIFY", "window functions are not part of the form")
	}
	if present(sel.Sample) {
		return nil, fail("USING SAMPLE", "a read model counts every event")
	}

	// FROM: one source.
	ft := sel.FromTable
	if ft == nil || ft.Type == "EMPTY" {
		return nil, fail("FROM", "missing: read one event type or type view (FROM orders)")
	}
	switch ft.Type {
	case "BASE_TABLE":
	case "JOIN":
		return nil, fail("FROM", "a join is not part of the form: a model reads one source, so that each event updates its buckets on its own; join models when you query them")
	case "SUBQUERY":
		return nil, fail("FROM", "a subquery is not part of the form: read one event type or type view directly")
	case "TABLE_FUNCTION":
		return nil, fail("FROM", "a table function is not part of the form: read one event type or type view")
	default:
		return nil, fail("FROM", "%s is not part of the form: read one event type or type view", strings.ToLower(ft.Type))
	}
	if ft.SchemaName != "" || ft.CatalogName != "" {
		return nil, fail("FROM", "name the source without a schema or catalog (%s)", ft.TableName)
	}
	if present(ft.Sample) || present(ft.AtClause) {
		return nil, fail("FROM", "TABLESAMPLE and AT (time travel) are not part of the form")
	}
	source, ok := src(ft.TableName)
	if !ok {
		return nil, fail("FROM", "%q is not an event type or type view eventlake knows (declare its schema, or map a view to its type in query.type_views)", ft.TableName)
	}
	cols := map[string]iceberg.Type{}
	for n, t := range source.Columns {
		cols[n] = t
	}
	if source.Table == "" {
		for n, t := range envelopeInputs {
			cols[n] = t
		}
	}
	m := &Model{Name: d.Name, SQL: strings.TrimSpace(d.SQL), Source: ft.TableName, Type: source.Type,
		Table: source.Table, rows: source.Rows}
	m.Canonical = positions.ReplaceAllString(string(top.Statements[0].Node), "")
	inputIdx := map[string]int{}
	input := func(name string) int {
		if i, ok := inputIdx[name]; ok {
			return i
		}
		inputIdx[name] = len(m.Inputs)
		m.Inputs = append(m.Inputs, Column{Name: name, Input: name, Type: cols[name]})
		return len(m.Inputs) - 1
	}
	input(lake.ColTs)
	colRef := func(part string, n *node) (string, error) {
		if n == nil || n.Class != "COLUMN_REF" {
			return "", fail(part, "expected a column of %s", ft.TableName)
		}
		names := n.ColumnNames
		if len(names) == 2 && (names[0] == ft.TableName || ft.Alias != "" && names[0] == ft.Alias) {
			names = names[1:]
		}
		if len(names) != 1 {
			return "", fail(part, "%s: name a column of %s (nested fields are not part of the form)", strings.Join(n.ColumnNames, "."), ft.TableName)
		}
		if _, ok := cols[names[0]]; !ok {
			return "", fail(part, "%s has no column %q (its columns: %s)", ft.TableName, names[0], strings.Join(sortedNames(cols), ", "))
		}
		return names[0], nil
	}

	// SELECT: the bucket, keys and aggregates.
	type item struct {
		kind  string // bucket, key, agg
		canon string
	}
	items := make([]item, len(sel.SelectList))
	names := map[string]string{} // output column -> what holds it
	claim := func(part, name string) error {
		if !identRE.MatchString(name) {
			return fail(part, "%q cannot name a column: use AS with lower-case letters, digits and _", name)
		}
		if prev, ok := names[name]; ok {
			return fail(part, "column %q is already %s", name, prev)
		}
		names[name] = part
		return nil
	}
	for i, n := range sel.SelectList {
		part := fmt.Sprintf("select item %d", i+1)
		canon := canonical(n)
		switch {
		case n.Class == "STAR":
			return nil, fail(part, "* is not part of the form: name the bucket, the group-by columns and the aggregates")
		case n.Class == "COLUMN_REF":
			c, err := colRef(part, n)
			if err != nil {
				return nil, err
			}
			name := n.Alias
			if name == "" {
				name = c
			}
			if err := claim(part, name); err != nil {
				return nil, err
			}
			t := cols[c]
			if !keyType(t) {
				return nil, fail(part, "%s is %s: group by strings, integers, decimals, booleans, dates or timestamps", c, t)
			}
			m.Keys = append(m.Keys, Column{Name: name, Input: c, Type: t})
			m.keyIdx = append(m.keyIdx, input(c))
			items[i] = item{kind: "key", canon: canon}
		case n.Class == "FUNCTION" && (n.FunctionName == "time_bucket" || n.FunctionName == "date_trunc"):
			if m.Bucket.Width != 0 {
				return nil, fail(part, "a second event-time bucket: a model has one")
			}
			w, err := bucketWidth(n, func(c *node) error {
				name, err := colRef(part, c)
				if err != nil {
					return err
				}
				if name != lake.ColTs {
					return fail(part, "buckets are of event time: %s(..., ts), not of %s", n.FunctionName, name)
				}
				return nil
			})
			if err != nil {
				var fe *FormError
				if errors.As(err, &fe) {
					return nil, err
				}
				return nil, fail(part, "%v", err)
			}
			if n.Alias == "" {
				return nil, fail(part, "name the bucket: %s(...) AS minute", n.FunctionName)
			}
			if err := claim(part, n.Alias); err != nil {
				return nil, err
			}
			m.Bucket = Bucket{Name: n.Alias, Width: w}
			items[i] = item{kind: "bucket", canon: canon}
		case n.Class == "FUNCTION":
			a, err := aggregate(n, part, fail, func(c *node) (string, error) { return colRef(part, c) })
			if err != nil {
				return nil, err
			}
			if a.Input != "" {
				a.Type = cols[a.Input]
				if err := aggType(a, part, fail); err != nil {
					return nil, err
				}
			}
			if n.Alias == "" {
				return nil, fail(part, "name the aggregate: %s(...) AS name", n.FunctionName)
			}
			a.Name = n.Alias
			if err := claim(part, a.Name); err != nil {
				return nil, err
			}
			switch a.Kind {
			case AggAvg:
				if err := claim(part, a.Name+SuffixSum); err != nil {
					return nil, err
				}
				if err := claim(part, a.Name+SuffixCount); err != nil {
					return nil, err
				}
			case AggDistinct:
				if err := claim(part, a.Name+SuffixSketch); err != nil {
					return nil, err
				}
			case AggArgMax, AggArgMin:
				if err := claim(part, a.Name+SuffixTs); err != nil {
					return nil, err
				}
			}
			idx := -1
			if a.Input != "" {
				idx = input(a.Input)
			}
			m.Aggs = append(m.Aggs, a)
			m.aggIdx = append(m.aggIdx, idx)
			items[i] = item{kind: "agg", canon: canon}
		default:
			return nil, fail(part, "only the bucket, plain columns of %s and count/sum/min/max/avg/approx_count_distinct/arg_max/arg_min of a column are part of the form (an expression cannot be kept per bucket; compute it when you query the model)", ft.TableName)
		}
	}
	if m.Bucket.Width == 0 {
		return nil, fail("SELECT", "no event-time bucket: add time_bucket(INTERVAL '1 minute', ts) AS minute (or 5 minutes, 1 hour, 1 day)")
	}
	if len(m.Aggs) == 0 {
		return nil, fail("SELECT", "no aggregate: add count(*) AS events, sum(col) AS total, ...")
	}

	// GROUP BY: exactly the bucket and the keys.
	if sel.AggregateHandling != "FORCE_AGGREGATES" {
		want := map[string]bool{}
		for _, it := range items {
			if it.kind != "agg" {
				want[it.canon] = true
			}
		}
		got := map[string]bool{}
		for _, g := range sel.GroupExpressions {
			c := canonical(g)
			if g.Class == "CONSTANT" && g.Value != nil && g.Value.Type.ID == "INTEGER" {
				k, _ := strconv.Atoi(string(g.Value.Value))
				if k < 1 || k > len(items) || items[k-1].kind == "agg" {
					return nil, fail("GROUP BY", "%d does not name the bucket or a column of the select list", k)
				}
				c = items[k-1].canon
			} else if g.Class == "COLUMN_REF" && len(g.ColumnNames) == 1 {
				// An output name (the bucket's alias) or a key's column.
				for i, n := range sel.SelectList {
					if items[i].kind != "agg" && (n.Alias == g.ColumnNames[0]) {
						c = items[i].canon
					}
				}
			}
			if !want[c] {
				return nil, fail("GROUP BY", "groups by something other than the bucket and the plain columns of the select list: use GROUP BY ALL")
			}
			got[c] = true
		}
		if len(got) != len(want) {
			return nil, fail("GROUP BY", "group by the bucket and every plain column of the select list: use GROUP BY ALL")
		}
	}

	// WHERE: comparisons of columns with constants.
	if sel.WhereClause != nil {
		w, err := compileWhere(sel.WhereClause, func(c *node) (int, iceberg.Type, error) {
			name, err := colRef("WHERE", c)
			if err != nil {
				return 0, nil, err
			}
			return input(name), cols[name], nil
		}, func(format string, args ...any) error { return fail("WHERE", format, args...) })
		if err != nil {
			return nil, err
		}
		m.where = w
	}
	return m, nil
}

// canonical is a node's tree without positions and aliases: equal
// expressions compare equal.
func canonical(n *node) string {
	c := *n
	c.Alias = ""
	b, _ := json.Marshal(&c)
	return string(b)
}

func sortedNames(m map[string]iceberg.Type) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// bucketWidth reads time_bucket(INTERVAL '1 minute', ts) or
// date_trunc('minute', ts).
func bucketWidth(n *node, tsArg func(*node) error) (time.Duration, error) {
	allowed := "1 minute, 5 minutes, 1 hour or 1 day"
	if n.Distinct || present(n.Filter) || n.OrderBys != nil && len(n.OrderBys.Orders) > 0 {
		return 0, fmt.Errorf("%s takes no DISTINCT, FILTER or ORDER BY", n.FunctionName)
	}
	var w time.Duration
	switch n.FunctionName {
	case "time_bucket":
		if len(n.Children) != 2 {
			return 0, errors.New("time_bucket(INTERVAL '1 minute', ts): two arguments (an origin or offset is not part of the form; buckets start at UTC midnight)")
		}
		iv := n.Children[0]
		switch {
		case iv.Class == "CAST" && iv.CastType != nil && iv.CastType.ID == "INTERVAL" && iv.Child != nil && iv.Child.Class == "CONSTANT":
			var s string
			if err := json.Unmarshal(iv.Child.Value.Value, &s); err != nil {
				return 0, fmt.Errorf("the bucket width must be a constant interval: %s", allowed)
			}
			d, err := parseInterval(s)
			if err != nil {
				return 0, err
			}
			w = d
		case iv.Class == "FUNCTION" && strings.HasPrefix(iv.FunctionName, "to_") && len(iv.Children) == 1:
			k, ok := intConstant(iv.Children[0])
			unit := strings.TrimPrefix(iv.FunctionName, "to_")
			if !ok {
				return 0, fmt.Errorf("the bucket width must be a constant interval: %s", allowed)
			}
			d, err := parseInterval(fmt.Sprintf("%d %s", k, unit))
			if err != nil {
				return 0, err
			}
			w = d
		default:
			return 0, fmt.Errorf("the bucket width must be a constant interval: %s", allowed)
		}
		if err := tsArg(n.Children[1]); err != nil {
			return 0, err
		}
	case "date_trunc":
		if len(n.Children) != 2 || n.Children[0].Class != "CONSTANT" {
			return 0, fmt.Errorf("date_trunc('minute', ts): a constant unit (minute, hour or day) and ts")
		}
		var unit string
		if err := json.Unmarshal(n.Children[0].Value.Value, &unit); err != nil {
			return 0, fmt.Errorf("date_trunc's unit must be 'minute', 'hour' or 'day'")
		}
		d, err := parseInterval("1 " + unit)
		if err != nil {
			return 0, err
		}
		w = d
		if err := tsArg(n.Children[1]); err != nil {
			return 0, err
		}
	}
	if !slices.Contains(Widths, w) {
		return 0, fmt.Errorf("a bucket of %s is not offered: %s", w, allowed)
	}
	return w, nil
}

// intConstant reads an integer constant, also under the casts DuckDB's
// parser wraps INTERVAL n MINUTE's n in.
func intConstant(n *node) (int64, bool) {
	for n != nil && (n.Class == "CAST" || n.Class == "FUNCTION" && n.FunctionName == "trunc" && len(n.Children) == 1) {
		if n.Class == "CAST" {
			n = n.Child
		} else {
			n = n.Children[0]
		}
	}
	if n == nil || n.Class != "CONSTANT" || n.Value == nil || n.Value.IsNull {
		return 0, false
	}
	k, err := strconv.ParseInt(string(n.Value.Value), 10, 64)
	return k, err == nil
}

var intervalRE = regexp.MustCompile(`^\s*(\d+)\s*([a-z]+)\s*$`)

func parseInterval(s string) (time.Duration, error) {
	m := intervalRE.FindStringSubmatch(strings.ToLower(s))
	if m == nil {
		return 0, fmt.Errorf("interval %q: write it as '1 minute', '5 minutes', '1 hour' or '1 day'", s)
	}
	k, _ := strconv.Atoi(m[1])
	unit := strings.TrimSuffix(m[2], "s")
	var u time.Duration
	switch unit {
	case "minute", "min", "m":
		u = time.Minute
	case "hour", "h":
		u = time.Hour
	case "day", "d":
		u = 24 * time.Hour
	default:
		return 0, fmt.Errorf("interval %q: buckets are 1 minute, 5 minutes, 1 hour or 1 day", s)
	}
	return time.Duration(k) * u, nil
}

// aggregate reads one aggregate call.
func aggregate(n *node, part string, fail func(part, format string, args ...any) error, col func(*node) (string, error)) (Aggregate, error) {
	var a Aggregate
	name := n.FunctionName
	if n.Schema != "" || n.Catalog != "" {
		return a, fail(part, "%s.%s: name the aggregate without a schema", n.Schema, name)
	}
	switch name {
	case "count_star":
		a.Kind = AggCount
	case "count":
		a.Kind = AggCountCol
	case "sum":
		a.Kind = AggSum
	case "min":
		a.Kind = AggMin
	case "max":
		a.Kind = AggMax
	case "avg", "mean":
		a.Kind = AggAvg
	case "approx_count_distinct":
		a.Kind = AggDistinct
	case "arg_max", "argmax", "max_by":
		a.Kind = AggArgMax
	case "arg_min", "argmin", "min_by":
		a.Kind = AggArgMin
	default:
		return a, fail(part, "%s is neither the bucket nor one of the form's aggregates (count, sum, min, max, avg, approx_count_distinct, arg_max, arg_min, which merge across commits and buckets): other functions cannot be kept per bucket; compute them when you query the model", name)
	}
	if n.Distinct {
		return a, fail(part, "%s(DISTINCT ...): exact distinct counts do not merge across buckets; use approx_count_distinct(col)", name)
	}
	if present(n.Filter) {
		return a, fail(part, "%s(...) FILTER (WHERE ...) is not part of the form: filter the whole model with WHERE, or declare another model", name)
	}
	if n.OrderBys != nil && len(n.OrderBys.Orders) > 0 {
		return a, fail(part, "%s(... ORDER BY ...) is not part of the form", name)
	}
	if n.ExportState {
		return a, fail(part, "EXPORT_STATE is not part of the form")
	}
	if a.Kind == AggCount {
		return a, nil
	}
	if a.Kind == AggArgMax || a.Kind == AggArgMin {
		// The value at the latest (earliest) event time: kept with that
		// time, it merges across commits and buckets. Ordered by anything
		// else it would not (the order column is not kept).
		if len(n.Children) != 2 {
			return a, fail(part, "%s(col, ts) takes a column and ts: the value at the %s event time (a third argument, a list of the top n, is not part of the form)", name, map[AggKind]string{AggArgMax: "latest", AggArgMin: "earliest"}[a.Kind])
		}
		by := n.Children[1]
		if by.Class != "COLUMN_REF" {
			return a, fail(part, "%s(col, ts): the second argument must be the event time ts, not an expression", name)
		}
		c, err := col(by)
		if err != nil {
			return a, err
		}
		if c != lake.ColTs {
			return a, fail(part, "%s(col, %s): the form orders by the event time only: %s(col, ts) (a value ordered by another column cannot be merged across commits; use max(%s) for the largest)", name, c, name, c)
		}
	} else if len(n.Children) != 1 {
		return a, fail(part, "%s takes one column", name)
	}
	c, err := col(n.Children[0])
	if err != nil {
		var fe *FormError
		if errors.As(err, &fe) && n.Children[0].Class != "COLUMN_REF" {
			return a, fail(part, "%s of an expression is not part of the form: aggregate a column (compute expressions when you query the model)", name)
		}
		return a, err
	}
	a.Input = c
	return a, nil
}

// aggType checks that the aggregate takes its column's type.
func aggType(a Aggregate, part string, fail func(part, format string, args ...any) error) error {
	t := a.Type
	switch a.Kind {
	case AggSum, AggAvg:
		switch t.(type) {
		case iceberg.DecimalType, iceberg.Int32Type, iceberg.Int64Type, iceberg.Float32Type, iceberg.Float64Type:
			return nil
		}
		return fail(part, "%s(%s): %s is %s, not a number", a.Kind, a.Input, a.Input, t)
	case AggMin, AggMax:
		if !keyType(t) || t.Equals(iceberg.PrimitiveTypes.Bool) {
			if _, ok := t.(iceberg.Float64Type); !ok {
				if _, ok := t.(iceberg.Float32Type); !ok {
					return fail(part, "%s(%s): %s is %s; min and max take numbers, strings, dates and timestamps", a.Kind, a.Input, a.Input, t)
				}
			}
		}
	case AggArgMax, AggArgMin:
		if _, ok := t.(iceberg.Float64Type); !keyType(t) && !ok {
			if _, ok := t.(iceberg.Float32Type); !ok {
				return fail(part, "%s(%s, ts): %s is %s; %s takes numbers, strings, booleans, dates and timestamps", a.Kind, a.Input, a.Input, t, a.Kind)
			}
		}
	case AggCountCol, AggDistinct:
		if _, ok := t.(iceberg.PrimitiveType); !ok {
			return fail(part, "%s(%s): %s is %s, not a plain value", a.Kind, a.Input, a.Input, t)
		}
	}
	return nil
}

// keyType reports whether a column of type t can be a group-by key (and
// compared in WHERE).
func keyType(t iceberg.Type) bool {
	switch t.(type) {
	case iceberg.StringType, iceberg.Int32Type, iceberg.Int64Type, iceberg.DecimalType, iceberg.BooleanType,
		iceberg.DateType, iceberg.TimestampType, iceberg.TimestampTzType:
		return true
	}
	return false
}
