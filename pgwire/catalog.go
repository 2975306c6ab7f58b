package pgwire

import (
	"context"
	"database/sql/driver"
	"fmt"
	"hash/fnv"
	"regexp"
	"sort"
	"strings"

	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/sqlscan"
)

// The catalog queries of psql's \d commands and of Grafana's Postgres
// data source use syntax and pg_catalog functions DuckDB does not have
// (OPERATOR(pg_catalog.~), COLLATE pg_catalog.default, ::regclass,
// pg_get_userbyid, quote_ident, parse_ident, current_setting of
// Postgres' settings). The front end recognizes those queries by their
// text and answers them itself from information_schema.tables and
// information_schema.columns, which it reads through Backend.Run like any
// statement: the Backend decides what a principal may see.
//
// Every relation is shown as a table (relkind 'r'): the lake's tables,
// views and read models are DuckDB views over Parquet files inside the
// query service, an implementation detail; to a client they are
// read-only tables. OIDs are a hash of schema and name, so that they stay
// the same across the query service's view generations and connections.

// catalogAnswer is the answer to one recognized catalog query.
type catalogAnswer struct {
	cols  []Column
	types []pgType
	// rows computes the rows, in wire form (see pgType.conv).
	rows func(ctx context.Context, c *catalogRun) ([][]any, error)
}

// catalogRun is what an answer may use.
type catalogRun struct {
	backend   Backend
	principal auth.Principal
	database  string
}

// relation is a table or view the principal can read.
type relation struct{ schema, name string }

// owner is the owner every relation and schema is reported with.
const owner = "eventlake"

// schemaMain is DuckDB's default schema, the first of search_path.
const schemaMain = "main"

// relOID is a stable OID for a relation, above the OIDs Postgres keeps
// for its own objects (16384).
func relOID(r relation) int64 {
	h := fnv.New32a()
	h.Write([]byte(r.schema + "." + r.name))
	return 16384 + int64(h.Sum32()%(1<<31-16384))
}

// relations lists what the principal can read, sorted, each once.
func (c *catalogRun) relations(ctx context.Context) ([]relation, error) {
	const q = `SELECT table_schema, table_name FROM information_schema.tables
WHERE table_schema NOT IN ('information_schema', 'pg_catalog') ORDER BY 1, 2`
	seen := map[relation]bool{}
	var out []relation
	_, err := c.backend.Run(ctx, c.principal, Statement{SQL: q, Protocol: protocol}, func(v []driver.Value) error {
		r := relation{schema: fmt.Sprint(v[0]), name: fmt.Sprint(v[1])}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].schema != out[j].schema {
			return out[i].schema < out[j].schema
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// column is a column of a relation.
type column struct {
	name, duckType string
	notNull        bool
}

// columns lists the columns of r, in order.
func (c *catalogRun) columns(ctx context.Context, r relation) ([]column, error) {
	q := `SELECT table_catalog, column_name, data_type, is_nullable FROM information_schema.columns
WHERE table_schema = ` + quoteLiteral(r.schema) + ` AND table_name = ` + quoteLiteral(r.name) + `
ORDER BY table_catalog, ordinal_position`
	var (
		out     []column
		catalog string
	)
	_, err := c.backend.Run(ctx, c.principal, Statement{SQL: q, Protocol: protocol}, func(v []driver.Value) error {
		// A name may exist in two attached databases (the query
		// service's temporary views and the main database): the first
		// catalog's columns are the relation's.
		cat := fmt.Sprint(v[0])
		if catalog == "" {
			catalog = cat
		}
		if cat == catalog {
			out = append(out, column{name: fmt.Sprint(v[1]), duckType: fmt.Sprint(v[2]), notNull: fmt.Sprint(v[3]) == "NO"})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list columns of %s.%s: %w", r.schema, r.name, err)
	}
	return out, nil
}

// byOID finds the relation with the given OID.
func (c *catalogRun) byOID(ctx context.Context, oid string) (relation, bool, error) {
	rels, err := c.relations(ctx)
	if err != nil {
		return relation{}, false, err
	}
	for _, r := range rels {
		if fmt.Sprint(relOID(r)) == oid {
			return r, true, nil
		}
	}
	return relation{}, false, nil
}

var (
	reSpace       = regexp.MustCompile(`\s+`)
	reRelkinds    = regexp.MustCompile(`(?i)c\.relkind IN \(([^)]*)\)`)
	reRelname     = regexp.MustCompile(`(?i)c\.relname OPERATOR\(pg_catalog\.~\) '((?:[^']|'')*)'`)
	reNspname     = regexp.MustCompile(`(?i)n\.nspname OPERATOR\(pg_catalog\.~\) '((?:[^']|'')*)'`)
	reAlias       = regexp.MustCompile(`(?i)\bAS "((?:[^"]|"")+)"`)
	reOIDEquals   = regexp.MustCompile(`(?i)\b(?:c\.oid|a\.attrelid) = '(\d+)'`)
	reEmptyFrom   = regexp.MustCompile(`(?i)^(?:pg_catalog\.)?(pg_policy|pg_statistic_ext|pg_publication|pg_inherits|pg_rewrite|pg_trigger|pg_constraint|pg_index|pg_extension|pg_event_trigger|pg_foreign_table|pg_partitioned_table)\b`)
	reInherits    = regexp.MustCompile(`(?i)^pg_catalog\.pg_class c, pg_catalog\.pg_inherits i\b`)
	reVersionNum  = regexp.MustCompile(`(?i)^SELECT current_setting\('server_version_num'\)(::int(?:eger|4)?\s*/\s*100)?(?: AS "?(\w+)"?)?$`)
	reGrafanaCols = regexp.MustCompile(`(?i)parse_ident\('((?:[^']|'')*)'\)`)
	reGrafanaSch  = regexp.MustCompile(`(?i)WHERE quote_ident\(table_schema\) = '((?:[^']|'')*)'`)
)

// matchCatalog returns the answer to a known catalog query, or nil.
func matchCatalog(sql string) *catalogAnswer {
	q := strings.TrimSpace(reSpace.ReplaceAllString(sql, " "))
	lower := strings.ToLower(q)
	switch {
	case strings.HasPrefix(q, "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c"):
		return psqlLookup(q)
	case strings.Contains(q, "FROM pg_catalog.pg_class c") && reRelkinds.MatchString(q) && strings.Contains(lower, `as "name"`):
		return psqlList(q)
	case strings.HasPrefix(q, "SELECT c.relchecks, c.relkind, c.relhasindex,"):
		return psqlRelInfo(q)
	case strings.Contains(q, "FROM pg_catalog.pg_attribute a WHERE a.attrelid = '"):
		return psqlAttributes(q)
	case strings.Contains(q, "FROM pg_catalog.pg_namespace n") && strings.Contains(lower, `as "name"`):
		return psqlSchemas(q)
	case strings.Contains(q, "FROM pg_catalog.pg_database d") && strings.Contains(lower, `as "name"`):
		return psqlDatabases(q)
	case strings.HasPrefix(lower, "select ") && (reEmptyFrom.MatchString(fromList(q)) || reInherits.MatchString(fromList(q))):
		return emptyAnswer(q)
	case reVersionNum.MatchString(q):
		return versionNum(q)
	case strings.Contains(lower, "quote_ident(table_name)") && strings.Contains(lower, "from information_schema.tables"):
		return grafanaTables(q)
	case strings.Contains(lower, `quote_ident(column_name) as "column"`) && strings.Contains(lower, "from information_schema.columns"):
		return grafanaColumns(q)
	}
	return nil
}

// textCols is n text columns with the given names.
func textCols(names ...string) ([]Column, []pgType) {
	cols := make([]Column, len(names))
	types := make([]pgType, len(names))
	for i, n := range names {
		cols[i], types[i] = Column{Name: n, Type: "VARCHAR"}, typeText
	}
	return cols, types
}

// pattern compiles the regular expression psql wrote for a name pattern;
// re is nil when there was none.
func pattern(re *regexp.Regexp, q string) (*regexp.Regexp, error) {
	m := re.FindStringSubmatch(q)
	if m == nil {
		return nil, nil
	}
	return regexp.Compile(strings.ReplaceAll(m[1], "''", "'"))
}

// filterRelations keeps the relations whose schema and name match psql's
// patterns.
func filterRelations(rels []relation, q string) ([]relation, error) {
	name, err := pattern(reRelname, q)
	if err != nil {
		return nil, errorf("2201B", "invalid name pattern: %v", err)
	}
	nsp, err := pattern(reNspname, q)
	if err != nil {
		return nil, errorf("2201B", "invalid schema pattern: %v", err)
	}
	var out []relation
	for _, r := range rels {
		if (name == nil || name.MatchString(r.name)) && (nsp == nil || nsp.MatchString(r.schema)) {
			out = append(out, r)
		}
	}
	return out, nil
}

// psqlList answers \d, \dt, \dv, \di ... (their optional patterns and +).
func psqlList(q string) *catalogAnswer {
	kinds := reRelkinds.FindStringSubmatch(q)[1]
	tables := strings.Contains(kinds, "'r'")
	sel, _, _ := strings.Cut(q, " FROM pg_catalog.pg_class c")
	var names []string
	for _, m := range reAlias.FindAllStringSubmatch(sel, -1) {
		names = append(names, strings.ReplaceAll(m[1], `""`, `"`))
	}
	cols, types := textCols(names...)
	return &catalogAnswer{cols: cols, types: types, rows: func(ctx context.Context, c *catalogRun) ([][]any, error) {
		if !tables {
			return nil, nil
		}
		rels, err := c.relations(ctx)
		if err != nil {
			return nil, err
		}
		if rels, err = filterRelations(rels, q); err != nil {
			return nil, err
		}
		var rows [][]any
		for _, r := range rels {
			row := make([]any, len(names))
			for i, n := range names {
				switch n {
				case "Schema":
					row[i] = r.schema
				case "Name":
					row[i] = r.name
				case "Type":
					row[i] = "table"
				case "Owner":
					row[i] = owner
				case "Persistence":
					row[i] = "permanent"
				}
			}
			rows = append(rows, row)
		}
		return rows, nil
	}}
}

// psqlLookup answers the first query of \d NAME: the OIDs of the
// relations whose names match.
func psqlLookup(q string) *catalogAnswer {
	return &catalogAnswer{
		cols:  []Column{{Name: "oid", Type: "BIGINT"}, {Name: "nspname", Type: "VARCHAR"}, {Name: "relname", Type: "VARCHAR"}},
		types: []pgType{typeOID, typeText, typeText},
		rows: func(ctx context.Context, c *catalogRun) ([][]any, error) {
			rels, err := c.relations(ctx)
			if err != nil {
				return nil, err
			}
			if rels, err = filterRelations(rels, q); err != nil {
				return nil, err
			}
			rows := make([][]any, 0, len(rels))
			for _, r := range rels {
				rows = append(rows, []any{uint32(relOID(r)), r.schema, r.name})
			}
			return rows, nil
		},
	}
}

// psqlRelInfo answers the second query of \d NAME: what kind of relation
// it is. A table without indexes, rules, triggers, policies or
// partitions.
func psqlRelInfo(q string) *catalogAnswer {
	m := reOIDEquals.FindStringSubmatch(q)
	cols, types := textCols("relchecks", "relkind", "relhasindex", "relhasrules", "relhastriggers", "relrowsecurity",
		"relforcerowsecurity", "relhasoids", "relispartition", "reloptions", "reltablespace", "reloftype",
		"relpersistence", "relreplident", "amname")
	return &catalogAnswer{cols: cols, types: types, rows: func(ctx context.Context, c *catalogRun) ([][]any, error) {
		if m == nil {
			return nil, nil
		}
		if _, ok, err := c.byOID(ctx, m[1]); err != nil || !ok {
			return nil, err
		}
		// amname is NULL so that \d+ prints no access method.
		return [][]any{{"0", "r", "f", "f", "f", "f", "f", "f", "f", "", "0", "", "p", "d", nil}}, nil
	}}
}

// psqlAttributes answers the third query of \d NAME: the columns, their
// types as Postgres names them, and (for \d+) storage and statistics.
func psqlAttributes(q string) *catalogAnswer {
	m := reOIDEquals.FindStringSubmatch(q)
	// The columns psql 15 selects, in its order; the optional ones are
	// there when their expression is.
	type attr struct{ name, needs string }
	all := []attr{
		{"attname", ""}, {"format_type", ""}, {"attdefault", ""}, {"attnotnull", ""}, {"attcollation", ""},
		{"attidentity", "a.attidentity"}, {"attgenerated", "a.attgenerated"}, {"attstorage", "a.attstorage"},
		{"attcompression", "attcompression"}, {"attstattarget", "attstattarget"}, {"col_description", "col_description"},
	}
	var names []string
	for _, a := range all {
		if a.needs == "" || strings.Contains(q, a.needs) {
			names = append(names, a.name)
		}
	}
	cols, types := textCols(names...)
	return &catalogAnswer{cols: cols, types: types, rows: func(ctx context.Context, c *catalogRun) ([][]any, error) {
		if m == nil {
			return nil, nil
		}
		r, ok, err := c.byOID(ctx, m[1])
		if err != nil || !ok {
			return nil, err
		}
		colsOf, err := c.columns(ctx, r)
		if err != nil {
			return nil, err
		}
		var rows [][]any
		for _, col := range colsOf {
			row := make([]any, len(names))
			for i, n := range names {
				switch n {
				case "attname":
					row[i] = col.name
				case "format_type":
					row[i] = typeOf(col.duckType).name
				case "attnotnull":
					row[i] = map[bool]string{true: "t", false: "f"}[col.notNull]
				case "attidentity", "attgenerated", "attcompression":
					row[i] = ""
				case "attstorage":
					row[i] = storage(typeOf(col.duckType))
				}
			}
			rows = append(rows, row)
		}
		return rows, nil
	}}
}

// storage is pg_attribute.attstorage: plain for fixed-width types,
// extended for the others.
func storage(t pgType) string {
	switch t.oid {
	case oidBool, oidInt2, oidInt4, oidInt8, oidFloat4, oidFloat8, oidDate, oidTime, oidTimestamp,
		oidTimestamptz, oidInterval, oidUUID:
		return "p"
	}
	return "x"
}

// psqlSchemas answers \dn.
func psqlSchemas(q string) *catalogAnswer {
	sel, _, _ := strings.Cut(q, " FROM pg_catalog.pg_namespace n")
	var names []string
	for _, m := range reAlias.FindAllStringSubmatch(sel, -1) {
		names = append(names, m[1])
	}
	cols, types := textCols(names...)
	return &catalogAnswer{cols: cols, types: types, rows: func(ctx context.Context, c *catalogRun) ([][]any, error) {
		rels, err := c.relations(ctx)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{schemaMain: true}
		schemas := []string{schemaMain}
		for _, r := range rels {
			if !seen[r.schema] {
				seen[r.schema] = true
				schemas = append(schemas, r.schema)
			}
		}
		sort.Strings(schemas)
		var rows [][]any
		for _, s := range schemas {
			row := make([]any, len(names))
			for i, n := range names {
				switch n {
				case "Name":
					row[i] = s
				case "Owner":
					row[i] = owner
				}
			}
			rows = append(rows, row)
		}
		return rows, nil
	}}
}

// psqlDatabases answers \l: the one database a connection sees.
func psqlDatabases(q string) *catalogAnswer {
	sel, _, _ := strings.Cut(q, " FROM pg_catalog.pg_database d")
	var names []string
	for _, m := range reAlias.FindAllStringSubmatch(sel, -1) {
		names = append(names, m[1])
	}
	cols, types := textCols(names...)
	return &catalogAnswer{cols: cols, types: types, rows: func(_ context.Context, c *catalogRun) ([][]any, error) {
		row := make([]any, len(names))
		for i, n := range names {
			switch n {
			case "Name":
				row[i] = c.database
			case "Owner":
				row[i] = owner
			case "Encoding":
				row[i] = "UTF8"
			case "Collate", "Ctype":
				row[i] = "C"
			case "Locale Provider":
				row[i] = "libc"
			}
		}
		return [][]any{row}, nil
	}}
}

// emptyAnswer answers queries about objects the lake does not have
// (policies, extended statistics, publications, inheritance, rules,
// triggers, constraints, indexes, extensions) with no rows, in as many
// columns as the query selects.
func emptyAnswer(q string) *catalogAnswer {
	n, _ := selectList(q)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("column%d", i+1)
	}
	if m := reAlias.FindAllStringSubmatch(q, -1); len(m) == n {
		for i := range names {
			names[i] = m[i][1]
		}
	}
	if strings.HasPrefix(strings.ToLower(q), "select extversion from") {
		names = []string{"extversion"}
	}
	cols, types := textCols(names...)
	return &catalogAnswer{cols: cols, types: types, rows: func(context.Context, *catalogRun) ([][]any, error) { return nil, nil }}
}

// fromList is what follows the first FROM of the SELECT q.
func fromList(q string) string {
	if _, from := selectList(q); from > 0 {
		return strings.TrimSpace(q[from+len("FROM"):])
	}
	return ""
}

// selectList counts the expressions of the first SELECT list of q (the
// commas at parenthesis depth 0 before its FROM, outside quotes) and
// finds that FROM (-1: none).
func selectList(q string) (n, from int) {
	n, depth := 1, 0
	for i := len("SELECT"); i < len(q); i++ {
		switch c := q[i]; {
		case c == '\'':
			i = sqlscan.SkipQuoted(q, i+1, '\'', false) - 1
		case c == '"':
			i = sqlscan.SkipQuoted(q, i+1, '"', false) - 1
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			n++
		case depth == 0 && (c == 'F' || c == 'f') && i > 0 && sqlscan.IsSpace(q[i-1]) && len(q) >= i+5 &&
			strings.EqualFold(q[i:i+4], "FROM") && (len(q) == i+4 || !sqlscan.IsIdentPart(q[i+4])):
			return n, i
		}
	}
	return n, -1
}

// versionNum answers Grafana's version probe,
// SELECT current_setting('server_version_num')::int/100 as version.
func versionNum(q string) *catalogAnswer {
	m := reVersionNum.FindStringSubmatch(q)
	name := "current_setting"
	if m[2] != "" {
		name = m[2]
	}
	if m[1] == "" {
		cols, types := textCols(name)
		return &catalogAnswer{cols: cols, types: types, rows: func(context.Context, *catalogRun) ([][]any, error) {
			return [][]any{{serverVersionNum}}, nil
		}}
	}
	return &catalogAnswer{cols: []Column{{Name: name, Type: "INTEGER"}}, types: []pgType{typeInt4},
		rows: func(context.Context, *catalogRun) ([][]any, error) {
			return [][]any{{int32(serverVersionNumInt / 100)}}, nil
		}}
}

// grafanaTables answers the table list of Grafana's query editor: names
// in the search path (main) bare, others schema-qualified, each quoted
// as quote_ident would.
func grafanaTables(q string) *catalogAnswer {
	var schema *string
	if m := reGrafanaSch.FindStringSubmatch(q); m != nil {
		s := strings.ReplaceAll(m[1], "''", "'")
		schema = &s
	}
	cols, types := textCols("table")
	return &catalogAnswer{cols: cols, types: types, rows: func(ctx context.Context, c *catalogRun) ([][]any, error) {
		rels, err := c.relations(ctx)
		if err != nil {
			return nil, err
		}
		var inPath, others [][]any
		for _, r := range rels {
			switch {
			case schema != nil && quoteIdent(r.schema) != *schema:
			case schema != nil || r.schema == schemaMain:
				inPath = append(inPath, []any{quoteIdent(r.name)})
			default:
				others = append(others, []any{quoteIdent(r.schema) + "." + quoteIdent(r.name)})
			}
		}
		return append(inPath, others...), nil
	}}
}

// grafanaColumns answers the column list of Grafana's query editor for a
// table named like 'orders' or 'schema.orders', with Postgres' type names.
func grafanaColumns(q string) *catalogAnswer {
	m := reGrafanaCols.FindStringSubmatch(q)
	cols, types := textCols("column", "type")
	return &catalogAnswer{cols: cols, types: types, rows: func(ctx context.Context, c *catalogRun) ([][]any, error) {
		if m == nil {
			return nil, nil
		}
		parts := parseIdent(strings.ReplaceAll(m[1], "''", "'"))
		r := relation{schema: schemaMain}
		switch len(parts) {
		case 1:
			r.name = parts[0]
		case 2:
			r.schema, r.name = parts[0], parts[1]
		default:
			return nil, nil
		}
		colsOf, err := c.columns(ctx, r)
		if err != nil {
			return nil, err
		}
		rows := make([][]any, 0, len(colsOf))
		for _, col := range colsOf {
			rows = append(rows, []any{quoteIdent(col.name), typeOf(col.duckType).name})
		}
		return rows, nil
	}}
}

var rePlainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_$]*$`)

// quoteIdent quotes an identifier unless it is a plain lower-case name,
// as Postgres' quote_ident does (keywords aside).
func quoteIdent(s string) string {
	if rePlainIdent.MatchString(s) {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// quoteLiteral quotes a SQL string literal.
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// parseIdent splits a possibly qualified identifier as Postgres'
// parse_ident does: dots separate names, double quotes keep case and
// dots, unquoted names are lower-cased.
func parseIdent(s string) []string {
	var (
		out []string
		cur strings.Builder
	)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			j := i + 1
			for j < len(s) {
				if s[j] == '"' && j+1 < len(s) && s[j+1] == '"' {
					cur.WriteByte('"')
					j += 2
					continue
				}
				if s[j] == '"' {
					break
				}
				cur.WriteByte(s[j])
				j++
			}
			i = j
		case c == '.':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteString(strings.ToLower(string(c)))
		}
	}
	return append(out, cur.String())
}
