package query

import (
	"strings"
	"unicode"

	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/lake"
)

// Lookups by identifier. A statement such as
//
//	SELECT * FROM orders WHERE order_id = 'o-17'
//
// matches rows of very few files, but DuckDB visits every file of the
// view to find them: it opens each footer (cached) and checks its
// statistics and bloom filter, 0.1-0.25 ms a file, so a month of hourly
// files costs a lookup 100-200 ms before a single row is read. The
// manifests already hold each file's lower and upper bound of every
// identifier column (lake.BloomFilterColumns: event_id, order_id,
// user_id ...). So when a statement reads one view and its WHERE clause
// requires an identifier column to equal a constant (or one of a list),
// the service binds that view's name, for this statement only, to the
// same SELECT over the files whose bounds can hold one of the values;
// DuckDB then visits those alone. Any other statement reads the view as
// it is.
//
// The rule is conservative, because a file left out is rows left out:
//   - the parse tree names exactly one table or view in all (no join, no
//     subquery over another relation, no CTE), and it is the FROM of the
//     top SELECT;
//   - only top-level AND terms of its WHERE are used, and only
//     column = 'constant' and column IN ('constant', ...) on a VARCHAR
//     column of the view that is a VARCHAR column of the table (no cast
//     between them, so both compare bytes as the bounds do);
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
// column (by the view's name for it) equals one of its values.
type lookup struct {
	view   *view
	values map[string][]string
}

// lookupOf returns the lookup of a parse tree (parseTree), or nil when the
// statement is not one. role decides which columns are masked.
func lookupOf(tree map[string]any, views map[string]*view, role *auth.Role) *lookup {
	stmts, _ := tree["statements"].([]any)
	if len(stmts) != 1 {
		return nil
	}
	st, _ := stmts[0].(map[string]any)
	node, _ := st["node"].(map[string]any)
	if str(node["type"]) != "SELECT_NODE" {
		return nil
	}
	if cm, _ := node["cte_map"].(map[string]any); cm != nil {
		if m, _ := cm["map"].([]any); len(m) > 0 {
			return nil
		}
	}
	if countTables(tree) != 1 {
		return nil
	}
	from, _ := node["from_table"].(map[string]any)
	if str(from["type"]) != "BASE_TABLE" || str(from["schema_name"]) != "" || str(from["catalog_name"]) != "" {
		return nil
	}
	vw := views[strings.ToLower(str(from["table_name"]))]
	if vw == nil || (vw.kind != viewTable && vw.kind != viewEvents && vw.kind != viewType) {
		return nil
	}
	qualifier := str(from["alias"])
	if qualifier == "" {
		qualifier = str(from["table_name"])
	}
	grant := role.Grant(vw.name)
	lk := &lookup{view: vw, values: map[string][]string{}}
	for _, term := range conjuncts(node["where_clause"]) {
		col, vals := equality(term)
		if col == nil || len(col) > 2 || (len(col) == 2 && !strings.EqualFold(col[0], qualifier)) {
			continue
		}
		name := col[len(col)-1]
		c := viewColumn(vw, name)
		if c == nil || c.typ != "VARCHAR" {
			continue
		}
		if _, masked := grant.Masks[c.name]; masked {
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
	if len(lk.values) == 0 {
		return nil
	}
	return lk
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
	for i := range vw.cols {
		if vw.cols[i].name == name {
			return &vw.cols[i]
		}
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
		kept, n := st.filesFor(lk.values, lk.view.cols)
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
// names, viewCols their view types) equal one of values, and how many
// files were left out. A table that is refused, or not created, keeps
// its view.
func (st *tableState) filesFor(values map[string][]string, viewCols []column) ([]dataFile, int) {
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
	if len(bounds) == 0 {
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
