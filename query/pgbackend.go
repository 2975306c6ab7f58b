package query

import (
	"context"
	"database/sql/driver"
	"errors"
	"net/http"

	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/pgwire"
)

// PostgresBackend serves the query service to the Postgres front end:
// tokens checked by authn (nil: authentication disabled, every session
// is auth.Anonymous), each statement within lim's per-token limits, then
// the same Query as /v1/sql.
func (s *Service) PostgresBackend(authn *auth.Authenticator, lim *auth.Limiter) pgwire.Backend {
	return &pgBackend{s: s, authn: authn, lim: lim}
}

type pgBackend struct {
	s     *Service
	authn *auth.Authenticator
	lim   *auth.Limiter
}

func (b *pgBackend) Authenticate(ctx context.Context, user, password string) (auth.Principal, error) {
	if b.authn == nil {
		return auth.Anonymous, nil
	}
	p, err := b.authn.CheckUser(ctx, user, password)
	if errors.Is(err, auth.ErrUnauthenticated) {
		return p, pgwire.ErrAuth
	}
	if err != nil {
		return p, &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: err.Error()}
	}
	return p, nil
}

func (b *pgBackend) Describe(ctx context.Context, p auth.Principal, sql string) (pgwire.Description, error) {
	var out pgwire.Description
	d, err := b.s.Describe(auth.WithPrincipal(ctx, p), sql)
	if err != nil {
		return out, err
	}
	for i, name := range d.Columns {
		out.Columns = append(out.Columns, pgwire.Column{Name: name, Type: d.Types[i]})
	}
	out.Params = d.Params
	return out, nil
}

func (b *pgBackend) Run(ctx context.Context, p auth.Principal, st pgwire.Statement, row func([]driver.Value) error) (pgwire.Result, error) {
	var res pgwire.Result
	release, err := b.lim.Acquire(p.Name, true)
	if err != nil {
		var le *auth.LimitError
		errors.As(err, &le)
		return res, &apiError{status: http.StatusTooManyRequests, code: codeRateLimited, msg: err.Error(), retryAfter: le.RetryAfter}
	}
	defer release()
	out, err := b.s.Query(auth.WithPrincipal(ctx, p), Statement{SQL: st.SQL, Args: st.Args, Protocol: ProtocolPostgres},
		func(cols, types []string) func([]driver.Value) error {
			for i, c := range cols {
				res.Columns = append(res.Columns, pgwire.Column{Name: c, Type: types[i]})
			}
			return row
		})
	if out != nil {
		res.Rows = int64(out.Rows)
		res.Truncated = out.TruncatedBy != ""
	}
	return res, err
}
