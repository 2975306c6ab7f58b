package pgwire

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/jeroenrinzema/psql-wire/codes"

	"github.com/eventlake/eventlake/auth"
)

// Reported server version: Postgres 15, which psql 15 and the drivers
// know. serverVersion is what SHOW server_version says.
const (
	serverVersion       = "15.0 (eventlake)"
	serverVersionNum    = "150000"
	serverVersionNumInt = 150000
)

// session is one authenticated connection.
type session struct {
	principal auth.Principal
	database  string
	pid       int32
	secret    int32

	mu       sync.Mutex
	settings map[string]string // by lower-case name
	inTx     bool
	cancel   context.CancelFunc // of the running statement, or nil
}

type sessionKey struct{}

func withSession(ctx context.Context, s *session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// begin starts a statement: its context is canceled by a cancel request
// or when the server closes.
func (s *session) begin(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		s.cancel = nil
		s.mu.Unlock()
		cancel()
	}
}

// cancelRunning cancels the running statement, if any.
func (s *session) cancelRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel == nil {
		return false
	}
	s.cancel()
	return true
}

func (s *session) get(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.settings[name]; ok {
		return v
	}
	if st, ok := settings[name]; ok {
		return st.def
	}
	return ""
}

func (s *session) set(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.settings == nil {
		s.settings = map[string]string{}
	}
	s.settings[name] = value
}

func (s *session) reset(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" {
		s.settings = nil
		return
	}
	delete(s.settings, name)
}

func (s *session) setTx(in bool) {
	s.mu.Lock()
	s.inTx = in
	s.mu.Unlock()
}

func (s *session) tx() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inTx
}

// setting is a session setting the front end keeps itself. None of them
// reaches DuckDB, which runs read-only: they are what clients set and
// read to agree on encodings and formats.
type setting struct {
	def string
	// check validates and normalizes a value; nil accepts anything.
	check func(string) (string, error)
	// readOnly settings can be shown but not set.
	readOnly bool
}

// Names are lower case; SET and SHOW take any case.
var settings = map[string]setting{
	"application_name":            {def: ""},
	"client_encoding":             {def: "UTF8", check: oneOf("UTF8", "UTF8", "UTF-8", "UNICODE")},
	"datestyle":                   {def: "ISO, MDY", check: dateStyle},
	"extra_float_digits":          {def: "1", check: intRange(-15, 3)},
	"timezone":                    {def: "UTC", check: utcOnly},
	"search_path":                 {def: schemaMain, check: searchPath},
	"intervalstyle":               {def: "postgres", check: oneOf("postgres", "postgres")},
	"standard_conforming_strings": {def: "on", check: oneOf("on", "on", "true")},
	"bytea_output":                {def: "hex", check: oneOf("hex", "hex")},
	"client_min_messages":         {def: "notice", check: oneOf("", "debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning", "error")},
	// Timeouts are accepted and shown but not applied: the query
	// service's own limits (query.timeout) apply to every statement.
	"statement_timeout":                   {def: "0"},
	"lock_timeout":                        {def: "0"},
	"idle_in_transaction_session_timeout": {def: "0"},
	"default_transaction_read_only":       {def: "on", check: oneOf("on", "on", "true")},
	"transaction_read_only":               {def: "on", check: oneOf("on", "on", "true")},
	"default_transaction_isolation":       {def: "read committed"},
	"transaction_isolation":               {def: "read committed"},
	"row_security":                        {def: "on"},
	"jit":                                 {def: "off"},
	"server_version":                      {def: serverVersion, readOnly: true},
	"server_version_num":                  {def: serverVersionNum, readOnly: true},
	"server_encoding":                     {def: "UTF8", readOnly: true},
	"integer_datetimes":                   {def: "on", readOnly: true},
	"max_identifier_length":               {def: "63", readOnly: true},
	"lc_collate":                          {def: "C", readOnly: true},
	"lc_ctype":                            {def: "C", readOnly: true},
	"is_superuser":                        {def: "off", readOnly: true},
}

// oneOf accepts the given values (any case), normalized to norm.
func oneOf(norm string, ok ...string) func(string) (string, error) {
	return func(v string) (string, error) {
		for _, o := range ok {
			if strings.EqualFold(v, o) {
				if norm == "" {
					return strings.ToLower(v), nil
				}
				return norm, nil
			}
		}
		return "", fmt.Errorf("only %s is supported", strings.Join(ok, ", "))
	}
}

func intRange(lo, hi int) func(string) (string, error) {
	return func(v string) (string, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return "", fmt.Errorf("must be an integer between %d and %d", lo, hi)
		}
		return strconv.Itoa(n), nil
	}
}

func dateStyle(v string) (string, error) {
	if !strings.Contains(strings.ToUpper(v), "ISO") {
		return "", fmt.Errorf("only the ISO date style is supported")
	}
	return "ISO, MDY", nil
}

func utcOnly(v string) (string, error) {
	switch strings.ToUpper(v) {
	case "UTC", "ETC/UTC", "GMT", "ETC/GMT", "Z", "ZULU", "UCT", "0", "+00", "+00:00", "00:00", "UNIVERSAL":
		return "UTC", nil
	}
	return "", fmt.Errorf("only UTC is supported: timestamps with time zone are sent in UTC; convert on the client")
}

func searchPath(v string) (string, error) {
	for _, s := range strings.Split(v, ",") {
		switch strings.Trim(strings.TrimSpace(s), `"`) {
		case "$user", "public", schemaMain, "pg_catalog", "information_schema", "":
		default:
			return "", fmt.Errorf("only public, main and pg_catalog can be on the search path, not %s", strings.TrimSpace(s))
		}
	}
	return v, nil
}

// sessionCommand is a statement the front end answers itself.
type sessionCommand struct {
	tag string
	// show is the setting SHOW reads ("all" for SHOW ALL).
	show string
	// apply changes the session when the statement runs.
	apply func(*session) error
}

// parseSessionCommand recognizes SET, RESET, SHOW of a known setting,
// transaction statements and DISCARD/DEALLOCATE; ok is false for any
// other statement (SHOW TABLES goes to DuckDB).
func parseSessionCommand(text string) (cmd sessionCommand, ok bool, err error) {
	w := words(text, 4)
	if len(w) == 0 {
		return cmd, false, nil
	}
	switch w[0] {
	case "BEGIN", "START":
		return sessionCommand{tag: "BEGIN", apply: func(s *session) error { s.setTx(true); return nil }}, true, nil
	case "COMMIT", "END":
		return sessionCommand{tag: "COMMIT", apply: func(s *session) error { s.setTx(false); return nil }}, true, nil
	case "ROLLBACK", "ABORT":
		return sessionCommand{tag: "ROLLBACK", apply: func(s *session) error { s.setTx(false); return nil }}, true, nil
	case "DISCARD":
		return sessionCommand{tag: "DISCARD ALL", apply: func(s *session) error { s.reset(""); return nil }}, true, nil
	case "DEALLOCATE":
		return sessionCommand{tag: "DEALLOCATE"}, true, nil
	case "SET":
		cmd, err := parseSet(text, w)
		return cmd, true, err
	case "RESET":
		if len(w) < 2 {
			return cmd, true, errorf(codes.Syntax, "RESET needs a setting name or ALL")
		}
		name := strings.ToLower(strings.TrimSpace(text[strings.Index(strings.ToUpper(text), "RESET")+len("RESET"):]))
		name = strings.TrimSuffix(strings.TrimSpace(name), ";")
		if name == "all" {
			return sessionCommand{tag: "RESET", apply: func(s *session) error { s.reset(""); return nil }}, true, nil
		}
		if _, known := settings[name]; !known {
			return cmd, true, errorf(codes.UndefinedObject, "unrecognized configuration parameter %q", name)
		}
		return sessionCommand{tag: "RESET", apply: func(s *session) error { s.reset(name); return nil }}, true, nil
	case "SHOW":
		rest := strings.ToLower(strings.Join(w[1:], " "))
		switch rest {
		case "transaction isolation level":
			return sessionCommand{tag: "SHOW", show: "transaction_isolation"}, true, nil
		case "time zone":
			return sessionCommand{tag: "SHOW", show: "timezone"}, true, nil
		case "all":
			return sessionCommand{tag: "SHOW", show: "all"}, true, nil
		}
		if len(w) == 2 {
			if _, known := settings[strings.ToLower(w[1])]; known {
				return sessionCommand{tag: "SHOW", show: strings.ToLower(w[1])}, true, nil
			}
		}
	}
	return cmd, false, nil
}

// parseSet parses SET [SESSION | LOCAL] name {TO | =} value, SET TIME
// ZONE value, SET NAMES value and SET [SESSION CHARACTERISTICS AS]
// TRANSACTION ... (accepted: every statement is read-only).
func parseSet(text string, w []string) (sessionCommand, error) {
	rest := strings.TrimSpace(text[len("SET"):])
	upper := strings.ToUpper(rest)
	for _, p := range []string{"SESSION ", "LOCAL "} {
		if strings.HasPrefix(upper, p) && !strings.HasPrefix(upper, "SESSION CHARACTERISTICS") {
			rest, upper = strings.TrimSpace(rest[len(p):]), strings.TrimSpace(upper[len(p):])
		}
	}
	if strings.HasPrefix(upper, "TRANSACTION") || strings.HasPrefix(upper, "SESSION CHARACTERISTICS") {
		if strings.Contains(upper, "READ WRITE") {
			return sessionCommand{}, errorf("25006", "this server is read-only: transactions cannot be READ WRITE")
		}
		return sessionCommand{tag: "SET"}, nil
	}
	var name, value string
	switch {
	case strings.HasPrefix(upper, "TIME ZONE"):
		name, value = "timezone", strings.TrimSpace(rest[len("TIME ZONE"):])
	case strings.HasPrefix(upper, "NAMES"):
		name, value = "client_encoding", strings.TrimSpace(rest[len("NAMES"):])
	default:
		i := strings.IndexAny(rest, " =\t\n")
		if i < 0 {
			return sessionCommand{}, errorf(codes.Syntax, "SET needs a value: SET name TO value")
		}
		name = strings.ToLower(strings.Trim(rest[:i], `"`))
		value = strings.TrimSpace(rest[i:])
		switch {
		case strings.HasPrefix(value, "="):
			value = strings.TrimSpace(value[1:])
		case strings.HasPrefix(strings.ToUpper(value), "TO ") || strings.HasPrefix(strings.ToUpper(value), "TO'"):
			value = strings.TrimSpace(value[2:])
		default:
			return sessionCommand{}, errorf(codes.Syntax, "SET needs TO or = before the value")
		}
	}
	st, known := settings[name]
	if !known {
		return sessionCommand{}, errorf(codes.UndefinedObject, "unrecognized configuration parameter %q", name)
	}
	if st.readOnly {
		return sessionCommand{}, errorf("55P02", "parameter %q cannot be changed", name)
	}
	value = strings.TrimSuffix(strings.TrimSpace(value), ";")
	if strings.EqualFold(value, "DEFAULT") {
		return sessionCommand{tag: "SET", apply: func(s *session) error { s.reset(name); return nil }}, nil
	}
	value = unquoteValue(value)
	if st.check != nil {
		v, err := st.check(value)
		if err != nil {
			return sessionCommand{}, errorf(codes.InvalidParameterValue, "invalid value for parameter %q: %q: %v", name, value, err)
		}
		value = v
	}
	return sessionCommand{tag: "SET", apply: func(s *session) error { s.set(name, value); return nil }}, nil
}

// unquoteValue removes the quotes of a single-quoted value ('UTC') and
// of each element of a list ('"$user", public' stays as written).
func unquoteValue(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' && !strings.Contains(v[1:len(v)-1], "','") {
		return strings.ReplaceAll(v[1:len(v)-1], "''", "'")
	}
	return v
}

// showRows is the answer of SHOW name (one row) or SHOW ALL.
func (s *session) showRows(name string) [][]any {
	if name != "all" {
		return [][]any{{s.get(name)}}
	}
	names := make([]string, 0, len(settings))
	for n := range settings {
		names = append(names, n)
	}
	sort.Strings(names)
	rows := make([][]any, len(names))
	for i, n := range names {
		rows[i] = []any{n, s.get(n), ""}
	}
	return rows
}
