package query

import (
	"context"
	"database/sql/driver"
	"errors"
	"net/http"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventlake/eventlake/audit"
	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/tracing"
	"github.com/eventlake/eventlake/pgwire"
)

// PostgresBackend serves the query service to the Postgres front end:
// tokens checked by authn (nil: authentication disabled, every session
// is auth.Anonymous), each statement within lim's per-token limits, then
// the same Query as /v1/sql.
func (s *Service) PostgresBackend(authn *auth.Authenticator, lim *auth.Limiter) pgwire.Backend {
	return &pgBackend{s: s, authn: authn, lim: lim, tracer: tracing.Or(s.deps.Tracer).Tracer("github.com/eventlake/eventlake/query")}
}

type pgBackend struct {
	s      *Service
	authn  *auth.Authenticator
	lim    *auth.Limiter
	tracer trace.Tracer
}

func (b *pgBackend) Authenticate(ctx context.Context, user, password string) (auth.Principal, error) {
	if b.authn == nil {
		return auth.Anonymous, nil
	}
	p, err := b.authn.CheckUser(ctx, user, password)
	if errors.Is(err, auth.ErrUnauthenticated) {
		// A refused login is recorded like a refused request, under the
		// name it claimed.
		if b.s.deps.Audit != nil {
			rec := audit.Record{Time: b.s.deps.Now(), Principal: user, Protocol: audit.ProtocolPostgres, Kind: audit.KindSQL,
				Outcome: audit.OutcomeDenied, Error: "wrong user name or token"}
			if aerr := b.s.deps.Audit.Append(context.WithoutCancel(ctx), rec); aerr != nil {
				b.s.log.Error("record a refused login in the audit log", logkey.Err, aerr)
			}
		}
		return p, pgwire.ErrAuth
	}
	if err != nil {
		return p, &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: err.Error()}
	}
	return p, nil
}

func (b *pgBackend) Describe(ctx context.Context, p auth.Principal, sql string) (pgwire.Description, error) {
	var out pgwire.Description
	d, err := b.s.Describe(auth.WithPrincipal(ctx, p), Statement{SQL: sql, Protocol: audit.ProtocolPostgres})
	if err != nil {
		return out, err
	}
	for i, name := range d.Columns {
		out.Columns = append(out.Columns, pgwire.Column{Name: name, Type: d.Types[i]})
	}
	out.Params = d.Params
	return out, nil
}

func (b *pgBackend) Run(ctx context.Context, p auth.Principal, st pgwire.Statement, row func([]driver.Value) error) (res pgwire.Result, err error) {
	// The wire protocol carries no trace context: a statement is a root
	// span, recorded at tracing.sample_rate.
	ctx, span := b.tracer.Start(ctx, "postgres statement", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("db.system.name", "postgresql"), attribute.String("user.name", p.Name)))
	defer func() {
		span.SetAttributes(attribute.Int64("db.response.returned_rows", res.Rows))
		tracing.EndSpan(span, err)
	}()
	release, err := b.lim.Acquire(p.Name, true)
	if err != nil {
		var le *auth.LimitError
		errors.As(err, &le)
		return res, &apiError{status: http.StatusTooManyRequests, code: codeRateLimited, msg: err.Error(), retryAfter: le.RetryAfter}
	}
	defer release()
	// The rows are held until Query returns, that is until the audit log
	// has the request: an answer is never sent before it is recorded. They
	// are bounded like an HTTP answer (query.max_answer_bytes).
	var rows [][]driver.Value
	out, err := b.s.Query(auth.WithPrincipal(ctx, p), Statement{SQL: st.SQL, Args: st.Args, Protocol: audit.ProtocolPostgres},
		func(cols, types []string) func([]driver.Value) error {
			for i, c := range cols {
				res.Columns = append(res.Columns, pgwire.Column{Name: c, Type: types[i]})
			}
			return func(vals []driver.Value) error {
				rows = append(rows, slices.Clone(vals))
				return nil
			}
		})
	if err != nil {
		return res, err
	}
	for i, r := range rows {
		if err := row(r); err != nil {
			return res, err
		}
		rows[i] = nil // sent: let it go
	}
	res.Rows = int64(out.Rows)
	res.Truncated = out.TruncatedBy != ""
	return res, nil
}
