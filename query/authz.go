package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/duck"
)

// Authorization of SQL. DuckDB has no privileges, so the service decides
// before DuckDB runs a statement what it reads, from DuckDB's own parse
// tree (json_serialize_sql): never from the text.
//
//   - A role other than admin may name only views of the generation it is
//     granted (unqualified, as DuckDB resolves them in temp.main) and the
//     catalog schemas information_schema and pg_catalog (names and column
//     types of objects, as PostgreSQL shows them to every user). A
//     qualified name (main.x, temp.main.x), a name not granted, a file
//     path (FROM 'x.parquet') and every table function but a few that
//     read no files (range, unnest ...) are refused with 403. Common table
//     expressions are resolved by scope, as DuckDB does, so that a CTE
//     named like a view hides the view only where DuckDB would.
//   - Column masks and row filters of the role's grants are applied by
//     binding each restricted view's name to a common table expression
//     over the view around the whole statement: the statement cannot reach
//     the view but through it (qualified names are refused).
//   - A statement DuckDB cannot serialize (EXPLAIN, PIVOT) is admin only.
//
// What a statement read (the objects it named) goes to the audit log for
// every role.

// tableFunctionsForAll read no files and no catalog: any role may call
// them.
var tableFunctionsForAll = map[string]bool{
	"range": true, "generate_series": true, "unnest": true, "json_each": true, "json_tree": true,
}

// metadataSchemas may be named by every role.
var metadataSchemas = map[string]bool{"information_schema": true, "pg_catalog": true}

// reads is what a statement names.
type reads struct {
	// objects are the generation's views the statement names, by their
	// own names, sorted.
	objects []string
	// denied is the first refusal, nil when the role may run it.
	denied *apiError
}

// parseTree returns DuckDB's parse tree of text as JSON, or DuckDB's
// error (a syntax error, or a statement it cannot serialize).
func parseTree(ctx context.Context, conn *duckdb.Conn, text string) (map[string]any, error) {
	row, err := queryRow(ctx, conn, "SELECT CAST(json_serialize_sql(CAST($1 AS VARCHAR)) AS VARCHAR)", text)
	if err != nil {
		return nil, fmt.Errorf("parse statement: %w", err)
	}
	s, _ := row[0].(string)
	// Numbers stay json.Number, so that a tree marshals back as DuckDB
	// wrote it (query locations are uint64s; prune.go deserializes).
	var tree map[string]any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("parse statement: %w", err)
	}
	if failed, _ := tree["error"].(bool); failed {
		msg, _ := tree["error_message"].(string)
		return nil, &parseError{kind: str(tree["error_type"]), msg: msg}
	}
	return tree, nil
}

type parseError struct{ kind, msg string }

func (e *parseError) Error() string { return e.kind + ": " + e.msg }

func str(v any) string { s, _ := v.(string); return s }

// checkReads walks a parse tree: the views it names, and whether role may
// run it. views maps lower-cased names to the generation's views.
func checkReads(tree map[string]any, role *auth.Role, views map[string]*view) reads {
	w := &walker{role: role, views: views, seen: map[string]bool{}}
	w.walk(tree, nil)
	r := reads{denied: w.denied}
	for name := range w.seen {
		r.objects = append(r.objects, name)
	}
	slices.Sort(r.objects)
	return r
}

type walker struct {
	role   *auth.Role
	views  map[string]*view
	seen   map[string]bool
	denied *apiError
}

func (w *walker) deny(msg string) {
	if w.denied == nil {
		w.denied = &apiError{status: http.StatusForbidden, code: codeForbidden, msg: msg}
	}
}

func (w *walker) who() string { return "role " + strconv.Quote(w.role.Name) }

// walk visits v with the names of the common table expressions in scope.
func (w *walker) walk(v any, scope []string) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			w.walk(e, scope)
		}
	case map[string]any:
		switch str(v["type"]) {
		case "BASE_TABLE":
			w.table(v, scope)
			return
		case "TABLE_FUNCTION":
			if fn, ok := v["function"].(map[string]any); ok {
				name := strings.ToLower(str(fn["function_name"]))
				if !w.role.Admin && (!tableFunctionsForAll[name] || str(fn["schema"]) != "" || str(fn["catalog"]) != "") {
					w.deny(fmt.Sprintf("%s may not call %s(): table functions that read files or the catalog (read_parquet, glob, read_text ...) are for the admin role; read the views instead", w.who(), name))
				}
			}
		case "RECURSIVE_CTE_NODE":
			scope = append(slices.Clip(scope), strings.ToLower(str(v["cte_name"])))
		}
		if cm, ok := v["cte_map"].(map[string]any); ok {
			entries, _ := cm["map"].([]any)
			inner := slices.Clip(scope)
			for _, e := range entries {
				em, _ := e.(map[string]any)
				// A CTE's body sees the CTEs before it (and itself when
				// recursive, added at its RECURSIVE_CTE_NODE).
				w.walk(em["value"], inner)
				inner = append(inner, strings.ToLower(str(em["key"])))
			}
			scope = inner
		}
		for k, child := range v {
			if k != "cte_map" {
				w.walk(child, scope)
			}
		}
	}
}

func (w *walker) table(v map[string]any, scope []string) {
	name, schema, catalog := str(v["table_name"]), strings.ToLower(str(v["schema_name"])), str(v["catalog_name"])
	lower := strings.ToLower(name)
	if catalog == "" && schema == "" {
		if slices.Contains(scope, lower) {
			return
		}
		if vw, ok := w.views[lower]; ok {
			w.seen[vw.name] = true
			if w.role.Grant(vw.name) == nil {
				w.deny(fmt.Sprintf("%s has no grant on %q: ask an admin to add it to auth.roles.%s.grants", w.who(), vw.name, w.role.Name))
			}
			return
		}
	}
	if w.role.Admin {
		return
	}
	if catalog == "" && metadataSchemas[schema] {
		return
	}
	if catalog != "" || schema != "" {
		w.deny(fmt.Sprintf("%s may name views only unqualified (orders, not %s): the lake's views are its only way in", w.who(), qualified(catalog, schema, name)))
		return
	}
	w.deny(fmt.Sprintf("%s may read only the views granted to it, and %q is none (files and internal tables are for the admin role)", w.who(), name))
}

func qualified(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}

// restrictions are the common table expressions that bind the views a
// statement names to what it may read of them: a restricted view to its
// masked and filtered rows, a view in src (view -> SELECT) to that
// SELECT (a lookup's files, prune.go), masked and filtered if
// restricted. None when no view is either.
func restrictions(role *auth.Role, objects []string, views map[string]*view, src map[string]string) []string {
	var parts []string
	for _, name := range objects {
		g := role.Grant(name)
		vw := views[strings.ToLower(name)]
		if vw == nil {
			continue
		}
		from := "temp.main." + duck.QuoteIdent(vw.name)
		if sql, ok := src[vw.name]; ok {
			if !g.Restricted() {
				parts = append(parts, duck.QuoteIdent(vw.name)+" AS NOT MATERIALIZED ("+sql+")")
				continue
			}
			from = "(" + sql + ") AS " + duck.QuoteIdent(vw.name)
		}
		if !g.Restricted() {
			continue
		}
		var cols []string
		for _, c := range vw.cols {
			id := duck.QuoteIdent(c.name)
			m, ok := g.Masks[c.name]
			switch {
			case !ok:
				cols = append(cols, id)
			case strings.EqualFold(m, "hash"):
				cols = append(cols, "sha256(CAST("+id+" AS VARCHAR)) AS "+id)
			case strings.EqualFold(m, "null"):
				cols = append(cols, "CAST(NULL AS "+c.typ+") AS "+id)
			default:
				cols = append(cols, "("+m+") AS "+id)
			}
		}
		q := "SELECT " + strings.Join(cols, ", ") + " FROM " + from
		if g.RowFilter != "" {
			q += " WHERE (" + g.RowFilter + ")"
		}
		parts = append(parts, duck.QuoteIdent(vw.name)+" AS NOT MATERIALIZED ("+q+")")
	}
	return parts
}
