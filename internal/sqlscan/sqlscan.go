// Package sqlscan holds the pieces of PostgreSQL's (and DuckDB's) lexical
// grammar that eventlake needs to cut SQL text without parsing it: quoted
// strings (a doubled quote escapes a quote; E-prefixed strings also take
// backslash escapes), quoted identifiers, dollar-quoted strings, line
// comments and nested block comments. The query service's guard and the
// Postgres front end's statement splitter both read text with them.
package sqlscan

// IsSpace reports SQL whitespace.
func IsSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// IsIdentStart reports a byte that may start an unquoted identifier.
func IsIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

// IsIdentPart reports a byte that may continue an unquoted identifier.
func IsIdentPart(c byte) bool { return IsIdentStart(c) || (c >= '0' && c <= '9') || c == '$' }

// SkipQuoted returns the index after the closing quote q of a quoted
// token whose content starts at i; a doubled quote is an escaped quote,
// and with backslash set so is \q. An unterminated token runs to the end.
func SkipQuoted(s string, i int, q byte, backslash bool) int {
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

// DollarTag returns the opening tag ($$ or $tag$) of a dollar-quoted
// string at the start of s; $1 is a parameter, not a tag.
func DollarTag(s string) (string, bool) {
	if len(s) < 2 || s[0] != '$' {
		return "", false
	}
	if s[1] == '$' {
		return "$$", true
	}
	if !IsIdentStart(s[1]) {
		return "", false
	}
	for j := 2; j < len(s); j++ {
		switch {
		case s[j] == '$':
			return s[:j+1], true
		case !IsIdentPart(s[j]):
			return "", false
		}
	}
	return "", false
}

// SkipBlockComment returns the index after the (nested) block comment
// that starts at i ("/*"), or the end of s if it is not closed.
func SkipBlockComment(s string, i int) int {
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

// SkipLineComment returns the index of the newline ending the line
// comment that starts at i ("--"), or the end of s.
func SkipLineComment(s string, i int) int {
	for i < len(s) && s[i] != '\n' {
		i++
	}
	return i
}
