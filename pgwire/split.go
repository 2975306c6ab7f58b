package pgwire

import "strings"

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
			i = skipBlockComment(s, i)
		case c == ';':
			if code {
				out = append(out, strings.TrimSpace(s[start:i]))
			}
			i++
			start, code = i, false
		case c == '\'':
			i, code = skipQuoted(s, i+1, '\'', false), true
		case (c == 'e' || c == 'E') && i+1 < n && s[i+1] == '\'' && (i == 0 || !isIdentPart(s[i-1])):
			i, code = skipQuoted(s, i+2, '\'', true), true
		case c == '"':
			i, code = skipQuoted(s, i+1, '"', false), true
		case c == '$':
			code = true
			if tag, ok := dollarTag(s[i:]); ok && (i == 0 || !isIdentPart(s[i-1])) {
				j := strings.Index(s[i+len(tag):], tag)
				if j < 0 {
					i = n
				} else {
					i += 2*len(tag) + j
				}
			} else {
				i++
			}
		case isSpace(c):
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

func skipBlockComment(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case s[i] == '/' && i+1 < len(s) && s[i+1] == '*':
			depth++
			i += 2
		case s[i] == '*' && i+1 < len(s) && s[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return i
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') || c == '$' }

// skipQuoted returns the index after the closing quote q of a quoted
// token whose content starts at i; a doubled quote is an escaped quote,
// and with backslash set so is \q. An unterminated token runs to the end.
func skipQuoted(s string, i int, q byte, backslash bool) int {
	for i < len(s) {
		switch {
		case backslash && s[i] == '\\':
			i += 2
		case s[i] == q && i+1 < len(s) && s[i+1] == q:
			i += 2
		case s[i] == q:
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

// dollarTag returns the opening tag ($$ or $tag$) of a dollar-quoted
// string at the start of s; $1 is a parameter, not a tag.
func dollarTag(s string) (string, bool) {
	if len(s) < 2 || s[0] != '$' {
		return "", false
	}
	if s[1] == '$' {
		return "$$", true
	}
	if !isIdentStart(s[1]) {
		return "", false
	}
	for j := 2; j < len(s); j++ {
		switch {
		case s[j] == '$':
			return s[:j+1], true
		case !isIdentPart(s[j]) || s[j] == '$':
			return "", false
		}
	}
	return "", false
}

// words returns the leading keywords of a statement, upper-cased, up to
// max words, skipping comments; it stops at the first token that is not
// a plain word.
func words(s string, max int) []string {
	var out []string
	for i := 0; i < len(s) && len(out) < max; {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			i = skipBlockComment(s, i)
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdentPart(s[j]) {
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
