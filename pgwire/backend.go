package pgwire

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jeroenrinzema/psql-wire/codes"
	psqlerr "github.com/jeroenrinzema/psql-wire/errors"

	"github.com/eventlake/eventlake/auth"
)

// Backend is what the Postgres front end needs of the query service. The
// query service implements it (an adapter owned by the query side); this
// package never sees DuckDB connections, grants or the lake.
type Backend interface {
	// Authenticate checks a user name and password (the token's name and
	// the token). A wrong pair returns an error that satisfies
	// errors.Is(err, ErrAuth), or an error whose Status() is 401.
	Authenticate(ctx context.Context, user, password string) (auth.Principal, error)
	// Describe prepares one statement for p without running it: its
	// result columns and the types of its parameters ($1..$n).
	Describe(ctx context.Context, p auth.Principal, sql string) (Description, error)
	// Run runs one statement with its arguments for p, calling row once
	// per result row with the values as duckdb-go returns them (int64,
	// int32, float64, string, bool, []byte, time.Time, duckdb.Decimal,
	// duckdb.Interval, []any for lists, map[string]any for structs,
	// nil ...). The slice passed to row may be reused after row returns.
	// Run stops when row returns an error and returns that error. It
	// enforces the sandbox, grants, limits and audit, as for HTTP.
	Run(ctx context.Context, p auth.Principal, st Statement, row func([]driver.Value) error) (Result, error)
}

// Statement is one statement to run.
type Statement struct {
	SQL string
	// Args bind $1..$n: nil, int64, float64, bool, string, []byte,
	// time.Time or []any (arrays), decoded from what the client sent.
	// Values the client sent as text stay strings (decimals too, so they
	// stay exact): DuckDB casts them to the parameter's type.
	Args []any
	// Protocol names the front end for the audit log: "postgres".
	Protocol string
}

// Description is a prepared statement's shape.
type Description struct {
	Columns []Column
	// Params are the DuckDB type names of $1..$n, in order; "" where
	// DuckDB could not infer one (the client's value is then bound as
	// text and DuckDB casts it).
	Params []string
}

// Column is a result column: its name and DuckDB type name (BIGINT,
// DECIMAL(18,2), TIMESTAMP WITH TIME ZONE or TIMESTAMPTZ, VARCHAR,
// BOOLEAN, BLOB, VARCHAR[] ...).
type Column struct {
	Name, Type string
}

// Result is how a run ended.
type Result struct {
	// Rows is the number of rows passed to the row callback.
	Rows int64
	// Truncated says a limit of the query service cut the answer.
	Truncated bool
	Columns   []Column
}

// ErrAuth is the error of a wrong user name or password.
var ErrAuth = errors.New("invalid user name or token")

// statusError is what Backend errors may implement: an HTTP-like status
// and a short machine-readable code.
type statusError interface {
	error
	Status() int
	Code() string
}

// SQLSTATE codes that psql-wire's codes package does not name.
const (
	codeQueryCanceled      codes.Code = "57014"
	codeCannotConnectNow   codes.Code = "57P03"
	codeTooManyConnections codes.Code = "53300"
	codeConfigLimit        codes.Code = "53400"
	codeSyntaxOrAccess     codes.Code = "42000"
)

// pgError turns an error of the Backend into a Postgres error: the
// message is passed through and the status chooses the SQLSTATE.
func pgError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return withCode(errors.New("canceling statement due to user request"), codeQueryCanceled)
	}
	if errors.Is(err, ErrAuth) {
		return withCode(err, codes.InvalidPassword)
	}
	var se statusError
	if !errors.As(err, &se) {
		if errors.Is(err, context.DeadlineExceeded) {
			return withCode(errors.New("canceling statement due to statement timeout"), codeQueryCanceled)
		}
		return withCode(err, codes.Internal)
	}
	return withCode(err, statusCode(se.Status(), se.Code()))
}

// statusCode maps an HTTP-like status of the query service to a SQLSTATE.
func statusCode(status int, code string) codes.Code {
	switch {
	case status == 400:
		if code == "multiple_statements" || code == "bad_request" {
			return codeSyntaxOrAccess
		}
		return codes.Syntax
	case status == 401:
		return codes.InvalidPassword
	case status == 403:
		return codes.InsufficientPrivilege
	case status == 429:
		return codeConfigLimit
	case status == 499 || status == 504:
		return codeQueryCanceled
	case status == 503:
		if code == "not_ready" {
			return codeCannotConnectNow
		}
		return codeTooManyConnections
	case status >= 400 && status < 500:
		return codeSyntaxOrAccess
	}
	return codes.Internal
}

func withCode(err error, code codes.Code) error {
	return psqlerr.WithSeverity(psqlerr.WithCode(err, code), psqlerr.LevelError)
}

// errorf is a Postgres error with the given SQLSTATE.
func errorf(code codes.Code, format string, args ...any) error {
	return withCode(fmt.Errorf(format, args...), code)
}

// isAuthError reports a wrong user name or password.
func isAuthError(err error) bool {
	var se statusError
	return errors.Is(err, ErrAuth) || errors.As(err, &se) && se.Status() == 401
}
