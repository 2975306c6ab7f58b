package schema

import (
	"encoding/binary"

	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is a small validating JSON scanner (RFC 8259). It exists because
// encoding/json allocates and is several times too slow for the ingest hot
// path. It never builds a tree: callers walk one object's members and either
// record where a value is (a span of the message) or skip it, validating as
// they go.
//
// Bytes >= 0x80 can only stand in strings; the scanner checks that they
// are UTF-8 there and notes the first that is not (badUTF8At) without
// failing, and Decode turns a failed scan into invalid_utf8 when the message
// is not UTF-8 — one pass over the message instead of a utf8.Valid pass
// before it. Its verdict is otherwise the same as json.Valid's (see the
// differential test), except that nesting deeper than maxDepth is rejected.
//
// Beyond the grammar, it notes (without failing, so that a syntax error
// later in the message is still reported as one) what the envelope
// contract refuses and JSON allows: a key that occurs twice in one object
// (readers disagree on which one counts: DuckDB's JSON functions take the
// first, encoding/json the last), an unpaired UTF-16 surrogate escape
// (DuckDB's JSON functions fail on it) and a \u0000 escape (PostgreSQL text
// and jsonb cannot hold NUL).

// maxDepth is the deepest nesting of objects and arrays accepted, counting
// the envelope object itself as 1. It also bounds the scanner's work stack,
// which is a uint64 bit set.
const maxDepth = 64

// Value kinds, from a value's first byte.
const (
	kindNone   uint8 = iota // absent
	kindString              // span is the content between the quotes
	kindNumber
	kindObject // span includes the braces
	kindArray
	kindTrue
	kindFalse
	kindNull
)

// kindNames describe kinds in rejection details ("event_id is a number").
var kindNames = [...]string{
	kindNone:   "missing",
	kindString: "a string",
	kindNumber: "a number",
	kindObject: "an object",
	kindArray:  "an array",
	kindTrue:   "a boolean",
	kindFalse:  "a boolean",
	kindNull:   "null",
}

// value is where a JSON value sits in the message. For strings the span is
// the raw content between the quotes and esc says whether it holds escapes
// (and so must be unescaped before use) or a DEL character (0x7f, which
// identifiers refuse): a string without either needs no second look.
type value struct {
	start, end int
	kind       uint8
	esc        bool
}

// strPlain marks bytes that may appear unescaped in a string and need no
// attention: ASCII except '"', '\\' and control characters, DEL included
// (bytes >= 0x80 are checked as UTF-8).
var strPlain = func() (t [256]bool) {
	for i := 0x20; i < 0x7f; i++ {
		t[i] = i != '"' && i != '\\'
	}
	return t
}()

// hasSpecial reports whether any of the eight bytes in x is '"', '\\', a
// control character (< 0x20 or DEL) or not ASCII (>= 0x80). It uses the
// classic SWAR tests: (v-0x01..)&^v has a high bit set iff some byte of v
// is zero, and (v-n..)&^v iff some byte is below n (n <= 0x80); a byte >=
// 0x80 has its own high bit set.
func hasSpecial(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	del := x ^ (ones * 0x7f)
	return ((q-ones)&^q|(bs-ones)&^bs|(del-ones)&^del|(x-ones*0x20)&^x|x)&highs != 0
}

// hexVal maps a hex digit to its value and every other byte to 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := '0'; i <= '9'; i++ {
		t[i] = byte(i - '0')
	}
	for i := 'a'; i <= 'f'; i++ {
		t[i] = byte(i - 'a' + 10)
	}
	for i := 'A'; i <= 'F'; i++ {
		t[i] = byte(i - 'A' + 10)
	}
	return t
}()

// scanner walks b from i. After a syntax error err is set to a fixed
// description and errAt to the offending offset; every method then returns
// false and callers unwind.
type scanner struct {
	b     []byte
	i     int
	err   string
	errAt int

	// Contract findings, offsets of the first occurrence (-1: none).
	dupAt, surrogateAt, nulAt int
	badUTF8At                 int   // a byte of a string that is not UTF-8
	dupKey                    value // the repeated key

	// keys holds the keys of the objects open at the moment, for the
	// duplicate check: a stack, each object's keys after those of the
	// objects that enclose it. big holds a set per deep-enough object
	// level once it has more than linearKeys keys.
	keys []keyEntry
	big  map[bigKey]struct{}
	tmp  []byte // scratch for unescaping keys
	// skipKeys turns the duplicate check off (a second pass over an
	// object the first pass checked).
	skipKeys bool
}

// keyEntry is one key of an open object: its span and, once the object
// has linearKeys keys, its hash.
type keyEntry struct {
	h          uint64
	start, end int
	esc        bool
}

// bigKey is a key hash in the set of the object whose keys start at mark.
type bigKey struct {
	mark int
	h    uint64
}

// linearKeys is how many keys one object may have before its duplicate
// check uses a hash set instead of comparing with every earlier key.
const linearKeys = 8

// reset prepares s to scan b, keeping its buffers.
func (s *scanner) reset(b []byte) {
	keys, tmp, big := s.keys[:0], s.tmp[:0], s.big
	clear(big)
	*s = scanner{b: b, dupAt: -1, surrogateAt: -1, nulAt: -1, badUTF8At: -1, keys: keys, tmp: tmp, big: big}
}

// key records key k of the object whose keys start at keys[mark:] and
// notes the first duplicate. It never fails: a duplicate is a contract
// finding, not a syntax error.
//
// seen is the object's fingerprint set: a bit per (length, first byte,
// last byte) of its unescaped keys, all bits once a key was escaped. A
// key whose bit is not set yet cannot repeat an earlier one, which spares
// the comparisons for nearly every key of a small object.
func (s *scanner) key(mark int, k value, seen *uint64) {
	if s.skipKeys {
		return
	}
	e := keyEntry{start: k.start, end: k.end, esc: k.esc}
	n := len(s.keys) - mark
	if n < linearKeys {
		if k.esc {
			*seen = ^uint64(0)
		} else {
			var fp uint
			if k.end > k.start {
				fp = uint(k.end-k.start) ^ uint(s.b[k.start])<<1 ^ uint(s.b[k.end-1])<<3
			}
			if bit := uint64(1) << (fp & 63); *seen&bit == 0 {
				*seen |= bit
				s.keys = append(s.keys, e)
				return
			}
		}
	}
	switch {
	case n < linearKeys:
		// Few keys: compare with each (lengths first), no hashing.
		kl := k.end - k.start
		for j := mark; j < len(s.keys); j++ {
			o := &s.keys[j]
			if o.esc || k.esc {
				if s.sameKey(*o, e) {
					s.dup(k)
					break
				}
			} else if o.end-o.start == kl && string(s.b[o.start:o.end]) == string(s.b[k.start:k.end]) {
				s.dup(k)
				break
			}
		}
	default:
		if s.big == nil {
			s.big = map[bigKey]struct{}{}
		}
		if n == linearKeys {
			for j := mark; j < len(s.keys); j++ {
				s.keys[j].h = s.hashOf(s.keys[j])
				s.big[bigKey{mark, s.keys[j].h}] = struct{}{}
			}
		}
		e.h = s.hashOf(e)
		h := e.h
		if _, seen := s.big[bigKey{mark, h}]; seen {
			for _, o := range s.keys[mark:] {
				if o.h == h && s.sameKey(o, e) {
					s.dup(k)
					break
				}
			}
		}
		s.big[bigKey{mark, h}] = struct{}{}
	}
	s.keys = append(s.keys, e)
}

func (s *scanner) dup(k value) {
	if s.dupAt < 0 {
		s.dupAt, s.dupKey = k.start, k
	}
}

// hashOf is the keyHash of a key, unescaped.
func (s *scanner) hashOf(e keyEntry) uint64 {
	if !e.esc {
		return keyHash(s.b[e.start:e.end])
	}
	s.tmp = appendUnescaped(s.tmp[:0], s.b[e.start:e.end])
	return keyHash(s.tmp)
}

// sameKey compares two keys after unescaping.
func (s *scanner) sameKey(a, b keyEntry) bool {
	ra, rb := s.b[a.start:a.end], s.b[b.start:b.end]
	if !a.esc && !b.esc {
		return string(ra) == string(rb)
	}
	ua := appendUnescaped(nil, ra)
	ub := appendUnescaped(nil, rb)
	return string(ua) == string(ub)
}

func (s *scanner) fail(what string) bool {
	if s.err == "" {
		s.err, s.errAt = what, s.i
	}
	return false
}

// detail describes the syntax error for a rejection.
func (s *scanner) detail() string {
	d := s.err + " at offset " + strconv.Itoa(s.errAt)
	if s.errAt >= len(s.b) {
		return d + " (end of input)"
	}
	r, _ := utf8.DecodeRune(s.b[s.errAt:])
	return d + " (near " + strconv.QuoteRune(r) + ")"
}

// peek returns the byte at i, or 0 at the end of input. NUL is never valid
// outside a string, so callers need no separate end check.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) skipWS() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// expect consumes c, or fails with what.
func (s *scanner) expect(c byte, what string) bool {
	if s.peek() != c {
		return s.fail(what)
	}
	s.i++
	return true
}

// str scans a string starting at its opening quote. It returns the span of
// its content and whether that contains escapes or DEL (see value.esc).
func (s *scanner) str() (start, end int, esc, ok bool) {
	b := s.b
	i := s.i + 1
	start = i
	for {
		// Fast path: skip eight plain bytes at a time.
		for i+8 <= len(b) && !hasSpecial(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && strPlain[b[i]] {
			i++
		}
		if i >= len(b) {
			s.i = i
			return 0, 0, false, s.fail("unterminated string")
		}
		switch c := b[i]; c {
		case '"':
			s.i = i + 1
			return start, i, esc, true
		case '\\':
			esc = true
			if i, ok = s.escape(i); !ok {
				return 0, 0, false, false
			}
		case 0x7f:
			esc = true
			i++
		default:
			if c >= 0x80 {
				i = s.utf8(i)
				continue
			}
			// A control character.
			s.i = i
			return 0, 0, false, s.fail("control character in string")
		}
	}
}

// utf8 checks the UTF-8 sequence at b[i] (a byte >= 0x80 in a string),
// notes it in badUTF8At if it is not one, and returns the offset after it.
//
//go:noinline
func (s *scanner) utf8(i int) int {
	if r, size := utf8.DecodeRune(s.b[i:]); r != utf8.RuneError || size > 1 {
		return i + size
	}
	if s.badUTF8At < 0 {
		s.badUTF8At = i
	}
	return i + 1
}

// escape checks the escape sequence at b[i] (a backslash) and returns the
// offset after it. It notes a \u0000 and a lone surrogate (contract
// findings, not syntax errors). Out of line: str's loop stays small.
//
//go:noinline
func (s *scanner) escape(i int) (int, bool) {
	b := s.b
	if i+1 >= len(b) {
		s.i = i + 1
		return 0, s.fail("unterminated string")
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2, true
	case 'u':
		for k := i + 2; k < i+6; k++ {
			if k >= len(b) || hexVal[b[k]] == 0xff {
				s.i = k
				return 0, s.fail(`invalid \u escape in string`)
			}
		}
		switch r := hex4(b[i+2:]); {
		case r == 0:
			if s.nulAt < 0 {
				s.nulAt = i
			}
		case r >= 0xD800 && r <= 0xDBFF:
			// A high surrogate must be followed by a low one.
			if i+12 <= len(b) && b[i+6] == '\\' && b[i+7] == 'u' && validHex4(b[i+8:i+12]) {
				if lo := hex4(b[i+8:]); lo >= 0xDC00 && lo <= 0xDFFF {
					return i + 12, true
				}
			}
			if s.surrogateAt < 0 {
				s.surrogateAt = i
			}
		case r >= 0xDC00 && r <= 0xDFFF:
			if s.surrogateAt < 0 {
				s.surrogateAt = i
			}
		}
		return i + 6, true
	default:
		s.i = i + 1
		return 0, s.fail("invalid escape in string")
	}
}

// num scans a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) num() bool {
	b := s.b
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
		if i < len(b) && isDigit(b[i]) {
			s.i = i
			return s.fail("invalid number: leading zero")
		}
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i++
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		s.i = i
		return s.fail("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			s.i = i
			return s.fail("invalid number: no digits after decimal point")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			s.i = i
			return s.fail("invalid number: no digits in exponent")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	s.i = i
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lit consumes the literal word (true, false or null).
func (s *scanner) lit(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return s.fail("invalid literal")
	}
	s.i += len(word)
	return true
}

// scalar scans a value that is not an object or array, given its kind.
func (s *scanner) scalar(k uint8) (v value, ok bool) {
	v.kind, v.start = k, s.i
	switch k {
	case kindString:
		v.start, v.end, v.esc, ok = s.str()
		return v, ok
	case kindNumber:
		ok = s.num()
	case kindTrue:
		ok = s.lit("true")
	case kindFalse:
		ok = s.lit("false")
	case kindNull:
		ok = s.lit("null")
	default:
		return v, s.fail("invalid character, want a value")
	}
	v.end = s.i
	return v, ok
}

// kindOf classifies a value by its first byte; kindNone means no value can
// start with c.
func kindOf(c byte) uint8 {
	switch c {
	case '"':
		return kindString
	case '{':
		return kindObject
	case '[':
		return kindArray
	case 't':
		return kindTrue
	case 'f':
		return kindFalse
	case 'n':
		return kindNull
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return kindNumber
	}
	return kindNone
}

// value scans any value at i, at nesting depth depth (the number of
// containers that enclose it), and returns its span.
func (s *scanner) value(depth int) (value, bool) {
	k := kindOf(s.peek())
	if k != kindObject && k != kindArray {
		return s.scalar(k)
	}
	v := value{kind: k, start: s.i}
	ok := s.container(depth)
	v.end = s.i
	return v, ok
}

// container scans an object or array starting at its opening bracket, at
// nesting depth depth, without recursion: the kinds of the open containers
// are kept in a bit set (1 = object), which maxDepth <= 64 keeps in a word.
func (s *scanner) container(depth int) bool {
	var objs uint64 // bit n: container n (0 = outermost here) is an object
	n := 0          // containers open in this call
	var marks [maxDepth]int
	var seen [maxDepth]uint64 // key fingerprints of open objects (key)
	for {
		// At the opening bracket of a container.
		if depth+n+1 > maxDepth {
			return s.fail("nesting deeper than " + strconv.Itoa(maxDepth))
		}
		isObj := s.b[s.i] == '{'
		if isObj {
			objs |= 1 << n
		} else {
			objs &^= 1 << n
		}
		marks[n], seen[n] = len(s.keys), 0
		n++
		s.i++
		s.skipWS()
		if c := s.peek(); (isObj && c == '}') || (!isObj && c == ']') {
			s.i++
			n--
			s.keys = s.keys[:marks[n]]
			goto closed
		}
	member:
		// At the start of a member (objects) or element (arrays).
		if objs&(1<<(n-1)) != 0 {
			if s.peek() != '"' {
				return s.fail("invalid character, want a string key")
			}
			var k value
			var ok bool
			if k.start, k.end, k.esc, ok = s.str(); !ok {
				return false
			}
			s.key(marks[n-1], k, &seen[n-1])
			s.skipWS()
			if !s.expect(':', "invalid character, want ':' after object key") {
				return false
			}
			s.skipWS()
		}
		if k := kindOf(s.peek()); k == kindObject || k == kindArray {
			continue // open it
		} else if _, ok := s.scalar(k); !ok {
			return false
		}
	closed:
		// After a complete value inside container n-1 (or after the
		// outermost container closed, when n == 0).
		for n > 0 {
			s.skipWS()
			isObj := objs&(1<<(n-1)) != 0
			switch c := s.peek(); {
			case c == ',':
				s.i++
				s.skipWS()
				goto member
			case (isObj && c == '}') || (!isObj && c == ']'):
				s.i++
				n--
				s.keys = s.keys[:marks[n]]
			case isObj:
				return s.fail("invalid character, want ',' or '}' in object")
			default:
				return s.fail("invalid character, want ',' or ']' in array")
			}
		}
		return true
	}
}

// object walks the members of the object whose '{' is at i, which is at
// nesting depth depth. For each member, fn is called with the key's span
// and s.i at the start of the member's value; fn must scan the value (with
// depth depth+1) and report whether that succeeded.
func (s *scanner) object(depth int, fn func(k value) bool) bool {
	return s.objectOf(depth, &noNames, func(_ int, k value) bool { return fn(k) })
}

// noNames expects no member names: every key is scanned and checked.
var noNames names

// appendUnescaped appends the unescaped content of a well-formed string
// (without its quotes) to dst. Like encoding/json, an unpaired surrogate
// escape becomes U+FFFD.
func appendUnescaped(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		j := i
		for j < len(src) && src[j] != '\\' {
			j++
		}
		dst = append(dst, src[i:j]...)
		if j >= len(src) {
			break
		}
		// src[j] == '\\'; the scanner has checked what follows.
		c := src[j+1]
		i = j + 2
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(src[j+2:])
			i = j + 6
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(src) && src[i] == '\\' && src[i+1] == 'u' {
					r2 = utf16.DecodeRune(r, hex4(src[i+2:]))
				}
				if r2 != utf8.RuneError {
					i += 6
				}
				r = r2
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
	return dst
}

// validHex4 reports whether b holds four hex digits.
func validHex4(b []byte) bool {
	return hexVal[b[0]]|hexVal[b[1]]|hexVal[b[2]]|hexVal[b[3]] != 0xff
}

// hex4 decodes four hex digits checked by the scanner.
func hex4(b []byte) rune {
	return rune(hexVal[b[0]])<<12 | rune(hexVal[b[1]])<<8 | rune(hexVal[b[2]])<<4 | rune(hexVal[b[3]])
}

// names are the member names an object is expected to have, in the order
// producers usually write them (the envelope's, metadata's, or a schema
// object's properties).
type names struct {
	list []string
	// plain[i]: list[i] holds only bytes a string may hold unescaped and
	// that need no UTF-8 check (printable ASCII other than '"' and '\\'),
	// so a key can be recognised as it by comparing bytes.
	plain []bool
	// byHash finds a name by its keyHash, for more than linearNames names.
	byHash map[uint64]int
}

// linearNames is how many names are compared one by one before byHash is
// used.
const linearNames = 8

func newNames(list ...string) names {
	n := names{list: list, plain: make([]bool, len(list))}
	for i, name := range list {
		n.plain[i] = true
		for j := 0; j < len(name); j++ {
			n.plain[i] = n.plain[i] && strPlain[name[j]]
		}
	}
	if len(list) > linearNames {
		n.byHash = make(map[uint64]int, len(list))
		for i, name := range list {
			n.byHash[keyHash([]byte(name))] = i
		}
	}
	return n
}

// index returns the index of the name key k of b equals once unescaped
// (tmp is scratch for that), or -1. hint is tried first.
func (n *names) index(b []byte, k value, hint int, tmp *[]byte) int {
	key := b[k.start:k.end]
	if k.esc {
		*tmp = appendUnescaped((*tmp)[:0], key)
		key = *tmp
	}
	if hint < len(n.list) && string(key) == n.list[hint] {
		return hint
	}
	if n.byHash == nil {
		for i, name := range n.list {
			if string(key) == name {
				return i
			}
		}
		return -1
	}
	if i, ok := n.byHash[keyHash(key)]; ok && string(key) == n.list[i] {
		return i
	}
	return -1
}

// objectOf walks the members of the object whose '{' is at i, at nesting
// depth depth, for an object whose members are expected to be named as in
// nm. For each member, fn is called with the index of the key's name in nm
// (-1: none of them), the key's span and s.i at the start of the member's
// value; fn must scan the value (with depth depth+1) and report whether
// that succeeded.
//
// The key expected next (the one after the previous member's name in nm)
// is recognised by comparing bytes, without scanning it as a string; and
// a repeated key among nm's first 64 names shows in a bit set, without
// remembering keys. Other keys are scanned as strings and checked against
// the other keys of the object (key).
func (s *scanner) objectOf(depth int, nm *names, fn func(i int, k value) bool) bool {
	if depth+1 > maxDepth {
		return s.fail("nesting deeper than " + strconv.Itoa(maxDepth))
	}
	s.i++ // '{'
	s.skipWS()
	if s.peek() == '}' {
		s.i++
		return true
	}
	mark := len(s.keys)
	defer func() { s.keys = s.keys[:mark] }()
	var (
		seen  uint64 // key fingerprints of the keys not in nm (key)
		named uint64 // bit i: nm.list[i] occurred
		next  int    // the index of the name expected next
	)
	for {
		if s.peek() != '"' {
			return s.fail("invalid character, want a string key")
		}
		k := value{kind: kindString}
		i := -1
		if next < len(nm.list) && nm.plain[next] && s.at(nm.list[next]) {
			i = next
			k.start = s.i + 1
			k.end = k.start + len(nm.list[i])
			s.i = k.end + 1
		} else {
			var ok bool
			if k.start, k.end, k.esc, ok = s.str(); !ok {
				return false
			}
			i = nm.index(s.b, k, next, &s.tmp)
		}
		switch {
		case i >= 0 && i < 64:
			if named&(1<<i) != 0 {
				s.dup(k)
			}
			named |= 1 << i
		default:
			s.key(mark, k, &seen)
		}
		if i >= 0 {
			next = i + 1
		}
		s.skipWS()
		if !s.expect(':', "invalid character, want ':' after object key") {
			return false
		}
		s.skipWS()
		if !fn(i, k) {
			return false
		}
		s.skipWS()
		switch s.peek() {
		case ',':
			s.i++
			s.skipWS()
		case '}':
			s.i++
			return true
		default:
			return s.fail("invalid character, want ',' or '}' in object")
		}
	}
}

// at reports whether the string at s.i (its opening quote) is exactly
// name, which holds only plain bytes.
func (s *scanner) at(name string) bool {
	end := s.i + 1 + len(name)
	return end < len(s.b) && s.b[end] == '"' && string(s.b[s.i+1:end]) == name
}
