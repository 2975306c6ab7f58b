package pgwire

import (
	"strings"

	"github.com/eventlake/eventlake/internal/sqlscan"
)

// splitStatements cuts the text of a simple query into its statements,
// without their terminating semicolons. It knows just enough of
// PostgreSQL's lexical grammar to find the boundaries: quoted strings
// (E” strings take backslash escapes), quoted identifiers, dollar-quoted
// strings, line comments and nested block comments. Statements that are
// only comments or blanks are left out.
func splitStatements(s string) []string {
	var (
		out   []string
		start = 0
		code  = false // the current statement has more than comments
		n     = len(s)
	)
	for i := 0; i < n; {
		c := s[i]
		switch {
		case c == '-' && i+1 < n && s[i+1] == '-':
			for i < n && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < n && s[i+1] == '*':
			i = sqlscan.SkipBlockComment(s, i)
		case c == ';':
			if code {
				out = append(out, strings.TrimSpace(s[start:i]))
			}
			i++
			start, code = i, false
		case c == '\'':
			i, code = sqlscan.SkipQuoted(s, i+1, '\'', false), true
		case (c == 'e' || c == 'E') && i+1 < n && s[i+1] == '\'' && (i == 0 || !sqlscan.IsIdentPart(s[i-1])):
			i, code = sqlscan.SkipQuoted(s, i+2, '\'', true), true
		case c == '"':
			i, code = sqlscan.SkipQuoted(s, i+1, '"', false), true
		case c == '$':
			code = true
			if tag, ok := sqlscan.DollarTag(s[i:]); ok && (i == 0 || !sqlscan.IsIdentPart(s[i-1])) {
				j := strings.Index(s[i+len(tag):], tag)
				if j < 0 {
					i = n
				} else {
					i += 2*len(tag) + j
				}
			} else {
				i++
			}
		case sqlscan.IsSpace(c):
			i++
		default:
			i, code = i+1, true
		}
	}
	if code {
		out = append(out, strings.TrimSpace(s[start:]))
	}
	return out
}

// words returns the leading keywords of a statement, upper-cased, up to
// max words, skipping comments; it stops at the first token that is not
// a plain word.
func words(s string, max int) []string {
	var out []string
	for i := 0; i < len(s) && len(out) < max; {
		c := s[i]
		switch {
		case sqlscan.IsSpace(c):
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			i = sqlscan.SkipBlockComment(s, i)
		case sqlscan.IsIdentStart(c):
			j := i + 1
			for j < len(s) && sqlscan.IsIdentPart(s[j]) {
				j++
			}
			out = append(out, strings.ToUpper(s[i:j]))
			i = j
		default:
			return out
		}
	}
	return out
}
