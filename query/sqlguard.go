package query

import (
	"net/http"
	"strings"

	"github.com/eventlake/eventlake/internal/sqlscan"
)

// The guard reads the text of a statement before DuckDB sees it, to give
// clear answers (a COPY is refused as a write, not as a permission error of
// the sandbox) and to cut the statement out of its trailing semicolons.
// It is not the safety net: after preparing, the statement type DuckDB
// reports must be SELECT or EXPLAIN (see checkStatementType), and
// multi-statement text is refused by DuckDB's own splitter as well.

// readKeywords start statements that only read.
var readKeywords = map[string]bool{
	"SELECT": true, "WITH": true, "FROM": true, "VALUES": true, "TABLE": true,
	"DESCRIBE": true, "DESC": true, "SHOW": true, "SUMMARIZE": true, "PIVOT": true, "UNPIVOT": true,
}

// writeKeywords start statements that write, change the session or reach
// outside the lake.
var writeKeywords = map[string]bool{
	"INSERT": true, "UPDATE": true, "DELETE": true, "MERGE": true, "UPSERT": true, "TRUNCATE": true,
	"CREATE": true, "DROP": true, "ALTER": true, "COMMENT": true, "REPLACE": true,
	"ATTACH": true, "DETACH": true, "USE": true, "INSTALL": true, "LOAD": true, "FORCE": true,
	"SET": true, "RESET": true, "PRAGMA": true, "COPY": true, "EXPORT": true, "IMPORT": true,
	"CALL": true, "CHECKPOINT": true, "VACUUM": true, "ANALYZE": true, "ANALYSE": true,
	"BEGIN": true, "START": true, "COMMIT": true, "END": true, "ROLLBACK": true, "ABORT": true,
	"PREPARE": true, "EXECUTE": true, "DEALLOCATE": true, "GRANT": true, "REVOKE": true,
}

// scanned is what the guard learns from the text of a request.
type scanned struct {
	// body is the first statement without its terminating semicolon.
	body string
	// words are the first statement's leading tokens: upper-cased words,
	// single punctuation characters, and "'" or `"` for quoted literals
	// and identifiers.
	words []string
	// multi is set when anything but comments follows the first
	// statement's semicolon.
	multi bool
}

const maxGuardWords = 4096

// scanSQL tokenizes just enough of DuckDB's (PostgreSQL's) lexical
// grammar to find statement boundaries: quoted strings (a doubled quote
// escapes a quote; E-prefixed strings also take backslash escapes), quoted
// identifiers, dollar-quoted strings, line comments and nested block
// comments. Unterminated quotes run to the end of the text; DuckDB
// reports them.
func scanSQL(s string) scanned {
	var (
		out scanned
		end = -1
		n   = len(s)
		i   = 0
	)
	add := func(w string) {
		if len(out.words) < maxGuardWords {
			out.words = append(out.words, w)
		}
	}
	for i < n {
		c := s[i]
		switch {
		case sqlscan.IsSpace(c):
			i++
			continue
		case c == '-' && i+1 < n && s[i+1] == '-':
			for i < n && s[i] != '\n' {
				i++
			}
			continue
		case c == '/' && i+1 < n && s[i+1] == '*':
			i = sqlscan.SkipBlockComment(s, i)
			continue
		case c == ';':
			if end < 0 {
				end = i
			}
			i++
			continue
		}
		if end >= 0 {
			out.multi = true
			break
		}
		switch {
		case c == '\'':
			i = sqlscan.SkipQuoted(s, i+1, '\'', false)
			add("'")
		case (c == 'e' || c == 'E') && i+1 < n && s[i+1] == '\'':
			i = sqlscan.SkipQuoted(s, i+2, '\'', true)
			add("'")
		case c == '"':
			i = sqlscan.SkipQuoted(s, i+1, '"', false)
			add(`"`)
		case c == '$':
			if tag, ok := sqlscan.DollarTag(s[i:]); ok {
				j := strings.Index(s[i+len(tag):], tag)
				if j < 0 {
					i = n
				} else {
					i += len(tag) + j + len(tag)
				}
				add("'")
			} else { // a parameter: $1, $name
				j := i + 1
				for j < n && sqlscan.IsIdentPart(s[j]) {
					j++
				}
				add(s[i:j])
				i = j
			}
		case sqlscan.IsIdentStart(c):
			j := i + 1
			for j < n && sqlscan.IsIdentPart(s[j]) {
				j++
			}
			add(strings.ToUpper(s[i:j]))
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < n && (sqlscan.IsIdentPart(s[j]) || s[j] == '.') {
				j++
			}
			add(s[i:j])
			i = j
		default:
			add(string(c))
			i++
		}
	}
	out.body = s
	if end >= 0 {
		out.body = s[:end]
	}
	return out
}

// guardVerdict is the guard's decision about a request's text.
type guardVerdict struct {
	body    string // statement to prepare
	explain bool   // an EXPLAIN: run as is, not wrapped in a LIMIT
	err     *apiError
}

// Error codes of the JSON API.
const (
	codeBadSQL           = "bad_sql"
	codeMultiple         = "multiple_statements"
	codeReadOnly         = "read_only"
	codeForbidden        = "forbidden"
	codeUnauthenticated  = "unauthenticated"
	codeRateLimited      = "rate_limited"
	codeAuditUnavailable = "audit_unavailable"
	codeBadRequest       = "bad_request"
	codeMediaType        = "unsupported_media_type"
	codeTimeout          = "timeout"
	codeBusy             = "busy"
	codeNotReady         = "not_ready"
	codeUnavailable      = "table_unavailable"
	codeOutOfMemory      = "out_of_memory"
	codeInternal         = "internal"
	codeCanceled         = "canceled"
	codeNotFound         = "not_found"
)

func readOnlyError(what string) *apiError {
	return &apiError{status: http.StatusForbidden, code: codeReadOnly,
		msg: "this endpoint is read-only: " + what + " statements are not allowed; send a SELECT (or EXPLAIN of one)"}
}

// mainKeyword returns the index of the statement keyword after the WITH
// clause starting at w[k]: the first keyword outside parentheses that
// starts a statement (CTE bodies are parenthesized). It returns k when
// there is none, and DuckDB decides.
func mainKeyword(w []string, k int) int {
	depth := 0
	for j := k + 1; j < len(w); j++ {
		switch {
		case w[j] == "(":
			depth++
		case w[j] == ")":
			depth--
		case depth == 0 && (readKeywords[w[j]] || writeKeywords[w[j]]):
			return j
		}
	}
	return k
}

// checkText applies the guard to the text of a request.
func checkText(sqlText string) guardVerdict {
	sc := scanSQL(sqlText)
	w := sc.words
	k := 0
	for k < len(w) && w[k] == "(" {
		k++
	}
	if k < len(w) && w[k] == "WITH" {
		k = mainKeyword(w, k)
	}
	switch {
	case k == len(w):
		return guardVerdict{err: &apiError{status: http.StatusBadRequest, code: codeBadSQL, msg: "the statement is empty"}}
	case sc.multi:
		return guardVerdict{err: &apiError{status: http.StatusBadRequest, code: codeMultiple,
			msg: "only one statement per request is allowed; send each statement in its own request"}}
	case readKeywords[w[k]]:
		return guardVerdict{body: sc.body}
	case writeKeywords[w[k]]:
		return guardVerdict{err: readOnlyError(w[k])}
	case w[k] != "EXPLAIN":
		// Not a statement the guard knows: DuckDB decides (a parse error,
		// or a statement type that checkStatementType refuses).
		return guardVerdict{body: sc.body}
	}
	// EXPLAIN [ANALYZE] [(options)] statement: EXPLAIN ANALYZE runs the
	// statement, so what it explains must be a read as well.
	j := k + 1
	if j < len(w) && (w[j] == "ANALYZE" || w[j] == "ANALYSE") {
		j++
	}
	if j+1 < len(w) && w[j] == "(" && !readKeywords[w[j+1]] && w[j+1] != "(" {
		depth := 0
		for ; j < len(w); j++ {
			if w[j] == "(" {
				depth++
			} else if w[j] == ")" {
				depth--
				if depth == 0 {
					j++
					break
				}
			}
		}
	}
	for j < len(w) && w[j] == "(" {
		j++
	}
	if j < len(w) && w[j] == "WITH" {
		j = mainKeyword(w, j)
	}
	if j < len(w) && !readKeywords[w[j]] {
		return guardVerdict{err: readOnlyError("EXPLAIN " + w[j])}
	}
	return guardVerdict{body: sc.body, explain: true}
}
