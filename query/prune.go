package query

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/apache/iceberg-go"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/lake"
)

// Lookups: statements over one view that need few of its files. Such as
//
//	SELECT * FROM orders WHERE order_id = 'o-17'
//	SELECT count(*) FROM orders WHERE ts > now() - INTERVAL 1 HOUR
//
// match rows of very few files, but DuckDB visits every file of the view
// to find them: it opens each footer (cached) and checks its statistics
// and bloom filter, 0.1-0.25 ms a file, so a month of hourly files costs
// a lookup 100-200 ms before a single row is read. The manifests already
// hold each file's lower and upper bound of every identifier column
// (lake.BloomFilterColumns: event_id, order_id, user_id ...) and of the
// event time. So when a statement reads one view and its WHERE clause
// requires an identifier column to equal a constant (or one of a list),
// or compares ts with an instant, the service binds that view's name,
// for this statement only, to the same SELECT over the files whose bounds
// admit it; DuckDB then visits those alone. Any other statement reads the
// view as it is.
//
// The rule is conservative, because a file left out is rows left out:
//   - the parse tree names exactly one table or view in all (no join, no
//     subquery over another relation, no CTE), and it is the FROM of the
//     top SELECT;
//   - only top-level AND terms of its WHERE are used, and only
//     column = 'constant' and column IN ('constant', ...) on a VARCHAR
//     column of the view that is a VARCHAR column of the table (no cast
//     between them, so both compare bytes as the bounds do);
//   - ts > >= < <= = an instant, and ts BETWEEN two, on the view's
//     TIMESTAMPTZ ts: the instant an expression of constants, casts and
//     a few functions that are constant in a transaction (now() ...; see
//     constantFunctions), evaluated by DuckDB in the statement's
//     transaction as it compares it with ts (instantsOn);
//   - a column the role sees masked is never used (its values are not the
//     table's);
//   - a file whose manifest has no bound for the column is kept.
//
// Iceberg writers may truncate string bounds; a truncated lower bound is
// a prefix (not greater than any value) and a truncated upper bound is
// rounded up (iceberg-go v0.7.0 TruncateUpperBoundText), so both still
// bound the values.

// keyBounds are one data file's bounds of one identifier column, from its
// manifest entry.
type keyBounds struct {
	id     int // Iceberg field id
	lo, hi string
}

// fileKeyBounds copies f's bounds of the columns ids; a column with a
// bound missing is left out (the file is then kept for it).
func fileKeyBounds(f iceberg.DataFile, ids []int) []keyBounds {
	var out []keyBounds
	lower, upper := f.LowerBoundValues(), f.UpperBoundValues()
	for _, id := range ids {
		lo, okLo := lower[id]
		hi, okHi := upper[id]
		if okLo && okHi {
			out = append(out, keyBounds{id: id, lo: string(lo), hi: string(hi)})
		}
	}
	return out
}

// lookup is what a statement requires of the one view it reads: each
// column (by the view's name for it) equals one of its values, and the
// event time satisfies every term of ts.
type lookup struct {
	view   *view
	values map[string][]string
	ts     []tsTerm
}

// tsTerm is one comparison of the event time with an instant: ts op at.
type tsTerm struct {
	op string // ">", ">=", "<", "<=", "="
	at int64  // micros since the epoch
}

// admits says whether a file whose event times lie in [lo, hi] may hold
// a row with ts op t.at.
func (t tsTerm) admits(lo, hi int64) bool {
	switch t.op {
	case ">":
		return hi > t.at
	case ">=":
		return hi >= t.at
	case "<":
		return lo < t.at
	case "<=":
		return lo <= t.at
	default:
		return lo <= t.at && t.at <= hi
	}
}

// lookupOf returns the lookup of a parse tree (parseTree), or nil when the
// statement is not one. role decides which columns are masked; instants
// evaluates the constant expressions the event time is compared with
// (instantsOn).
func lookupOf(tree map[string]any, views map[string]*view, role *auth.Role, instants func([]any) ([]*int64, error)) (*lookup, error) {
	stmts, _ := tree["statements"].([]any)
	if len(stmts) != 1 {
		return nil, nil
	}
	st, _ := stmts[0].(map[string]any)
	node, _ := st["node"].(map[string]any)
	if str(node["type"]) != "SELECT_NODE" {
		return nil, nil
	}
	if cm, _ := node["cte_map"].(map[string]any); cm != nil {
		if m, _ := cm["map"].([]any); len(m) > 0 {
			return nil, nil
		}
	}
	if countTables(tree) != 1 {
		return nil, nil
	}
	from, _ := node["from_table"].(map[string]any)
	if str(from["type"]) != "BASE_TABLE" || str(from["schema_name"]) != "" || str(from["catalog_name"]) != "" {
		return nil, nil
	}
	vw := views[strings.ToLower(str(from["table_name"]))]
	if vw == nil || (vw.kind != viewTable && vw.kind != viewEvents && vw.kind != viewType) {
		return nil, nil
	}
	qualifier := str(from["alias"])
	if qualifier == "" {
		qualifier = str(from["table_name"])
	}
	grant := role.Grant(vw.name)
	lk := &lookup{view: vw, values: map[string][]string{}}
	ofView := func(col []string) *column {
		if col == nil || len(col) > 2 || (len(col) == 2 && !strings.EqualFold(col[0], qualifier)) {
			return nil
		}
		c := viewColumn(vw, col[len(col)-1])
		if c == nil {
			return nil
		}
		if _, masked := grant.Masks[c.name]; masked {
			return nil
		}
		return c
	}
	var (
		ops   []string
		exprs []any
	)
	for _, term := range conjuncts(node["where_clause"]) {
		for _, cmp := range timeComparisons(term) {
			if c := ofView(columnRef(cmp.col)); c != nil && c.name == lake.ColTs && c.typ == "TIMESTAMPTZ" && constantExpr(cmp.with) {
				ops, exprs = append(ops, cmp.op), append(exprs, cmp.with)
			}
		}
		col, vals := equality(term)
		c := ofView(col)
		if c == nil || c.typ != "VARCHAR" {
			continue
		}
		if have, ok := lk.values[c.name]; ok {
			// Two terms on one column: a row must equal a value of each,
			// so either list bounds it; keep the shorter.
			if len(have) <= len(vals) {
				continue
			}
		}
		lk.values[c.name] = vals
	}
	if len(exprs) > 0 {
		ats, err := instants(exprs)
		if err != nil {
			return nil, err
		}
		for i, at := range ats {
			if at != nil {
				lk.ts = append(lk.ts, tsTerm{op: ops[i], at: *at})
			}
		}
	}
	if len(lk.values) == 0 && len(lk.ts) == 0 {
		return nil, nil
	}
	return lk, nil
}

// comparison is col op with, col being an expression that is a column
// reference when the comparison is of use.
type comparison struct {
	col  map[string]any
	op   string
	with any
}

// timeComparisons reads col op x and x op col (op one of > >= < <= =)
// and col BETWEEN x AND y, with col on the left.
func timeComparisons(term map[string]any) []comparison {
	ops := map[string]string{
		"COMPARE_GREATERTHAN": ">", "COMPARE_GREATERTHANOREQUALTO": ">=",
		"COMPARE_LESSTHAN": "<", "COMPARE_LESSTHANOREQUALTO": "<=", "COMPARE_EQUAL": "=",
	}
	flipped := map[string]string{">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "="}
	switch {
	case str(term["class"]) == "COMPARISON" && ops[str(term["type"])] != "":
		op := ops[str(term["type"])]
		l, _ := term["left"].(map[string]any)
		r, _ := term["right"].(map[string]any)
		if columnRef(l) != nil {
			return []comparison{{col: l, op: op, with: r}}
		}
		if columnRef(r) != nil {
			return []comparison{{col: r, op: flipped[op], with: l}}
		}
	case str(term["class"]) == "BETWEEN" && str(term["type"]) == "COMPARE_BETWEEN":
		in, _ := term["input"].(map[string]any)
		if columnRef(in) != nil {
			return []comparison{{col: in, op: ">=", with: term["lower"]}, {col: in, op: "<=", with: term["upper"]}}
		}
	}
	return nil
}

// constantFunctions may appear in an instant the event time is compared
// with: they give one value per transaction (DuckDB's now() is the
// transaction's start, and the lookup's instants are evaluated in the
// statement's transaction) and fail only where the statement would.
var constantFunctions = map[string]bool{
	"now": true, "get_current_timestamp": true, "transaction_timestamp": true, "today": true, "current_date": true,
	"+": true, "-": true, "trunc": true, "date_trunc": true,
	"to_days": true, "to_hours": true, "to_minutes": true, "to_seconds": true, "to_milliseconds": true, "to_microseconds": true, "to_weeks": true,
}

// constantExpr says whether e is made of constants, casts and
// constantFunctions only.
func constantExpr(e any) bool {
	m, _ := e.(map[string]any)
	if m == nil {
		return false
	}
	switch str(m["class"]) {
	case "CONSTANT":
		return true
	case "CAST":
		return constantExpr(m["child"])
	case "FUNCTION":
		if str(m["schema"]) != "" || str(m["catalog"]) != "" || !constantFunctions[strings.ToLower(str(m["function_name"]))] ||
			m["filter"] != nil || m["distinct"] == true {
			return false
		}
		children, _ := m["children"].([]any)
		for _, c := range children {
			if !constantExpr(c) {
				return false
			}
		}
		return true
	}
	return false
}

// countTables counts the BASE_TABLE references of a parse tree.
func countTables(v any) int {
	n := 0
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			n += countTables(e)
		}
	case map[string]any:
		if str(v["type"]) == "BASE_TABLE" {
			return 1
		}
		for _, child := range v {
			n += countTables(child)
		}
	}
	return n
}

// conjuncts are the top-level AND terms of a WHERE clause (nil for none).
func conjuncts(v any) []map[string]any {
	e, _ := v.(map[string]any)
	if e == nil {
		return nil
	}
	if str(e["class"]) == "CONJUNCTION" && str(e["type"]) == "CONJUNCTION_AND" {
		var out []map[string]any
		children, _ := e["children"].([]any)
		for _, c := range children {
			out = append(out, conjuncts(c)...)
		}
		return out
	}
	return []map[string]any{e}
}

// equality reads col = 'v', 'v' = col and col IN ('v', ...): the column
// reference's name parts and the values; nil when term is none of these.
func equality(term map[string]any) ([]string, []string) {
	switch {
	case str(term["class"]) == "COMPARISON" && str(term["type"]) == "COMPARE_EQUAL":
		l, _ := term["left"].(map[string]any)
		r, _ := term["right"].(map[string]any)
		if col := columnRef(l); col != nil {
			if v, ok := varcharConstant(r); ok {
				return col, []string{v}
			}
		}
		if col := columnRef(r); col != nil {
			if v, ok := varcharConstant(l); ok {
				return col, []string{v}
			}
		}
	case str(term["class"]) == "OPERATOR" && str(term["type"]) == "COMPARE_IN":
		children, _ := term["children"].([]any)
		if len(children) < 2 {
			return nil, nil
		}
		first, _ := children[0].(map[string]any)
		col := columnRef(first)
		if col == nil {
			return nil, nil
		}
		var vals []string
		for _, c := range children[1:] {
			e, _ := c.(map[string]any)
			v, ok := varcharConstant(e)
			if !ok {
				return nil, nil
			}
			vals = append(vals, v)
		}
		return col, vals
	}
	return nil, nil
}

func columnRef(e map[string]any) []string {
	if str(e["class"]) != "COLUMN_REF" {
		return nil
	}
	parts, _ := e["column_names"].([]any)
	out := make([]string, len(parts))
	for i, p := range parts {
		s, ok := p.(string)
		if !ok {
			return nil
		}
		out[i] = s
	}
	return out
}

// varcharConstant is the value of a non-null VARCHAR constant.
func varcharConstant(e map[string]any) (string, bool) {
	if str(e["class"]) != "CONSTANT" {
		return "", false
	}
	val, _ := e["value"].(map[string]any)
	typ, _ := val["type"].(map[string]any)
	if null, _ := val["is_null"].(bool); null || str(typ["id"]) != "VARCHAR" {
		return "", false
	}
	s, ok := val["value"].(string)
	return s, ok
}

// viewColumn is the column of vw that DuckDB binds name to (identifiers
// are case-insensitive).
func viewColumn(vw *view, name string) *column {
	if c := viewColumnExact(vw.cols, name); c != nil {
		return c
	}
	for i := range vw.cols {
		if strings.EqualFold(vw.cols[i].name, name) {
			return &vw.cols[i]
		}
	}
	return nil
}

// pruned is the SELECT of lk's view over the files that can hold its
// values, and how many files it leaves out; skipped is 0 (and sql "")
// when every file may hold them.
func (g *generation) pruned(lk *lookup) (sql string, skipped int) {
	rel := func(st *tableState) string {
		kept, n := st.filesFor(lk.values, lk.ts, lk.view.cols)
		if n == 0 {
			return duck.QuoteIdent(st.spec.name)
		}
		skipped += n
		c := *st
		c.files = kept
		return "(" + tableSelect(&c, g.hotCols[st.spec.name]) + ")"
	}
	var tables []*tableState
	for _, name := range lk.view.tables {
		if st := g.tableNamed(name); st != nil {
			tables = append(tables, st)
		}
	}
	switch lk.view.kind {
	case viewTable:
		if len(tables) != 1 {
			return "", 0
		}
		sql = "SELECT * FROM " + rel(tables[0])
	case viewEvents:
		sql = unionOf(lk.view.cols, tables, "", rel)
	case viewType:
		sql = unionOf(lk.view.cols, tables, typeFilter(lk.view.typ), rel)
	}
	if skipped == 0 {
		return "", 0
	}
	return sql, skipped
}

func (g *generation) tableNamed(name string) *tableState {
	for _, st := range g.tables {
		if st.spec.name == name {
			return st
		}
	}
	return nil
}

// filesFor are st's files that may hold rows whose columns (the view's
// names, viewCols their view types) equal one of values and whose event
// time satisfies times, and how many files were left out. The event time
// bounds are the ones planning read (dataFile.tsLo), present for raw
// tables. A table that is refused, or not created, keeps
// its view.
func (st *tableState) filesFor(values map[string][]string, times []tsTerm, viewCols []column) ([]dataFile, int) {
	if !st.exists || st.refused != "" || len(st.files) == 0 {
		return nil, 0
	}
	type bound struct {
		id   int
		vals []string
	}
	var bounds []bound
	for name, vals := range values {
		for _, c := range st.columns {
			// The view projects the table's column of the same name, cast
			// when the types differ (projection): compare only when they
			// are both VARCHAR.
			if c.name == name && c.typ == "VARCHAR" && c.id != 0 {
				if vc := viewColumnExact(viewCols, name); vc != nil && vc.typ == "VARCHAR" {
					bounds = append(bounds, bound{c.id, vals})
				}
			}
		}
	}
	var ts []tsTerm
	if vc := viewColumnExact(viewCols, lake.ColTs); vc != nil && vc.typ == "TIMESTAMPTZ" {
		ts = times
	}
	if len(bounds) == 0 && len(ts) == 0 {
		return nil, 0
	}
	kept := make([]dataFile, 0, 8)
	for _, f := range st.files {
		keep := true
		for _, b := range bounds {
			if !f.mayHold(b.id, b.vals) {
				keep = false
				break
			}
		}
		for _, t := range ts {
			if keep && f.hasTs && !t.admits(f.tsLo, f.tsHi) {
				keep = false
			}
		}
		if keep {
			kept = append(kept, f)
		}
	}
	return kept, len(st.files) - len(kept)
}

func viewColumnExact(cols []column, name string) *column {
	for i := range cols {
		if cols[i].name == name {
			return &cols[i]
		}
	}
	return nil
}

// mayHold says whether the file's bounds of column id admit one of vals;
// true when the manifest has no bound for it.
func (f *dataFile) mayHold(id int, vals []string) bool {
	for _, k := range f.keys {
		if k.id != id {
			continue
		}
		for _, v := range vals {
			if k.lo <= v && v <= k.hi {
				return true
			}
		}
		return false
	}
	return true
}

// startsWithSelect says whether text, past blanks and comments, starts
// with SELECT or FROM, so that a WITH clause may be put before it.
func startsWithSelect(text string) bool {
	for {
		text = strings.TrimLeftFunc(text, unicode.IsSpace)
		switch {
		case strings.HasPrefix(text, "--"):
			i := strings.IndexByte(text, '\n')
			if i < 0 {
				return false
			}
			text = text[i+1:]
		case strings.HasPrefix(text, "/*"):
			i := strings.Index(text, "*/")
			if i < 0 {
				return false
			}
			text = text[i+2:]
		default:
			for _, kw := range []string{"SELECT", "FROM"} {
				if len(text) > len(kw) && strings.EqualFold(text[:len(kw)], kw) {
					r := rune(text[len(kw)])
					if unicode.IsSpace(r) || r == '*' || r == '(' {
						return true
					}
				}
			}
			return false
		}
	}
}

// typeFilter is the WHERE clause of a type view.
func typeFilter(typ string) string {
	return " WHERE " + duck.QuoteIdent(lake.ColType) + " = " + duck.QuoteString(typ)
}

// errInstants is the error of evaluating a lookup's instants. It ends
// DuckDB's transaction (an execution error does), so the statement is run
// again without the lookup, to fail, if it does, with its own error.
var errInstants = errors.New("evaluate the instants of a lookup")

// instantsOn evaluates constant expressions (parse tree nodes, see
// constantExpr) on conn, in the statement's transaction, as the instants
// DuckDB compares a TIMESTAMPTZ column with: an expression whose value
// is not a finite TIMESTAMPTZ, TIMESTAMP, DATE or VARCHAR that casts to
// one is nil. Casts are made TRY_CASTs, so that a bad literal leaves the
// term unused; a function can still fail (to_days of a huge number),
// with errInstants.
func instantsOn(ctx context.Context, conn *duckdb.Conn) func([]any) ([]*int64, error) {
	return func(exprs []any) ([]*int64, error) {
		out := make([]*int64, len(exprs))
		// The parse tree of a SELECT of the expressions, from the tree of
		// a template, so that its shape is the one this DuckDB writes.
		tmpl, err := parseTree(ctx, conn, "SELECT 1")
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errInstants, err)
		}
		stmts, _ := tmpl["statements"].([]any)
		st, _ := stmts[0].(map[string]any)
		node, _ := st["node"].(map[string]any)
		if node == nil {
			return nil, fmt.Errorf("%w: unexpected parse tree of SELECT 1", errInstants)
		}
		list := make([]any, len(exprs))
		cols := make([]string, len(exprs))
		for i, e := range exprs {
			c, _ := tryCasts(e).(map[string]any)
			c["alias"] = "v" + strconv.Itoa(i)
			list[i] = c
			v := "TRY_CAST(v" + strconv.Itoa(i) + " AS TIMESTAMPTZ)"
			cols[i] = "typeof(v" + strconv.Itoa(i) + "), epoch_us(CASE WHEN isfinite(" + v + ") THEN " + v + " END)"
		}
		node["select_list"] = list
		b, err := json.Marshal(tmpl)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errInstants, err)
		}
		text, err := queryRow(ctx, conn, "SELECT json_deserialize_sql(CAST($1 AS JSON))", string(b))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errInstants, err)
		}
		body, _ := text[0].(string)
		vals, err := queryRow(ctx, conn, "SELECT "+strings.Join(cols, ", ")+" FROM ("+body+")")
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errInstants, err)
		}
		for i := range exprs {
			switch typ, _ := vals[2*i].(string); typ {
			case "TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "DATE", "VARCHAR":
				if at, ok := vals[2*i+1].(int64); ok {
					out[i] = &at
				}
			}
		}
		return out, nil
	}
}

// tryCasts is a copy of a parse tree node with every cast a TRY_CAST.
func tryCasts(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = tryCasts(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = tryCasts(e)
		}
		if str(v["class"]) == "CAST" {
			out["try_cast"] = true
		}
		return out
	}
	return v
}

// queryRow runs a query on conn and returns its one row.
func queryRow(ctx context.Context, conn *duckdb.Conn, query string, args ...any) ([]driver.Value, error) {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	rows, err := conn.QueryContext(ctx, query, named)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(dest); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no row")
		}
		return nil, err
	}
	return dest, nil
}
