package pgwire

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	wire "github.com/jeroenrinzema/psql-wire"
	"github.com/jeroenrinzema/psql-wire/codes"
)

// Statement kinds, for the metrics.
const (
	kindQuery   = "query"
	kindCatalog = "catalog"
	kindSession = "session"
)

// parse prepares the statements of a query: a simple query may hold
// several, a Parse message one. Session statements and known catalog
// queries are answered here; every other statement is described by the
// Backend, which runs it later.
func (s *Server) parse(ctx context.Context, q wire.Query) (wire.PreparedStatements, error) {
	sess := sessionFrom(ctx)
	if sess == nil {
		return nil, errorf(codes.Internal, "no session")
	}
	texts := splitStatements(q.Query)
	if !q.SimpleQuery && len(texts) > 1 {
		return nil, errorf(codes.Syntax, "cannot insert multiple commands into a prepared statement")
	}
	if len(texts) == 0 {
		// Only comments (pgx's ping is "-- ping"): nothing to run.
		return wire.Prepared(wire.NewStatement(func(context.Context, wire.DataWriter, []wire.Parameter) error { return nil })), nil
	}
	out := make(wire.PreparedStatements, 0, len(texts))
	for _, text := range texts {
		st, err := s.prepare(ctx, sess, text, q.ParameterOIDs)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (s *Server) prepare(ctx context.Context, sess *session, text string, declared []uint32) (*wire.PreparedStatement, error) {
	if cmd, ok, err := parseSessionCommand(text); ok || err != nil {
		if err != nil {
			s.m.statements.WithLabelValues(kindSession, "error").Inc()
			return nil, err
		}
		return s.sessionStatement(sess, cmd), nil
	}
	if ans := matchCatalog(text); ans != nil {
		return s.catalogStatement(sess, ans), nil
	}
	desc, err := s.backend.Describe(ctx, sess.principal, text)
	if err != nil {
		s.m.statements.WithLabelValues(kindQuery, "error").Inc()
		return nil, pgError(err)
	}
	cols := make(wire.Columns, len(desc.Columns))
	types := make([]pgType, len(desc.Columns))
	for i, c := range desc.Columns {
		types[i] = typeOf(c.Type)
		cols[i] = wire.Column{Name: c.Name, Oid: types[i].oid, Width: -1}
	}
	oids := paramOIDs(declared, desc.Params)
	fn := func(ctx context.Context, w wire.DataWriter, params []wire.Parameter) error {
		args, err := decodeArgs(wire.TypeMap(ctx), oids, params)
		if err != nil {
			s.m.statements.WithLabelValues(kindQuery, "error").Inc()
			return err
		}
		qctx, done := sess.begin(ctx)
		defer done()
		row := make([]any, len(types))
		res, err := s.backend.Run(qctx, sess.principal, Statement{SQL: text, Args: args, Protocol: protocol},
			func(vals []driver.Value) error {
				if len(vals) != len(types) {
					return fmt.Errorf("the statement returned %d columns where %d were described; run it again", len(vals), len(types))
				}
				for i, v := range vals {
					c, err := types[i].convert(v)
					if err != nil {
						return fmt.Errorf("column %s: %w", cols[i].Name, err)
					}
					row[i] = c
				}
				return w.Row(row)
			})
		if err != nil {
			if errors.Is(err, wire.ErrSuspendedHandlerClosed) {
				return err
			}
			if qctx.Err() != nil && ctx.Err() == nil {
				s.m.statements.WithLabelValues(kindQuery, "canceled").Inc()
				return withCode(errors.New("canceling statement due to user request"), codeQueryCanceled)
			}
			s.m.statements.WithLabelValues(kindQuery, "error").Inc()
			return pgError(err)
		}
		if res.Truncated {
			s.log.Info("a postgres answer was cut by the query service's limits", "user", sess.principal.Name, "rows", res.Rows)
		}
		s.m.statements.WithLabelValues(kindQuery, "ok").Inc()
		return w.Complete(fmt.Sprintf("SELECT %d", res.Rows))
	}
	return wire.NewStatement(fn, wire.WithColumns(cols), wire.WithParameters(oids)), nil
}

// sessionStatement answers SET, SHOW, BEGIN ... without DuckDB.
func (s *Server) sessionStatement(sess *session, cmd sessionCommand) *wire.PreparedStatement {
	var cols wire.Columns
	if cmd.show == "all" {
		cols = wire.Columns{{Name: "name", Oid: oidText, Width: -1}, {Name: "setting", Oid: oidText, Width: -1}, {Name: "description", Oid: oidText, Width: -1}}
	} else if cmd.show != "" {
		cols = wire.Columns{{Name: cmd.show, Oid: oidText, Width: -1}}
	}
	fn := func(_ context.Context, w wire.DataWriter, _ []wire.Parameter) error {
		if cmd.apply != nil {
			if err := cmd.apply(sess); err != nil {
				s.m.statements.WithLabelValues(kindSession, "error").Inc()
				return err
			}
		}
		if cmd.show != "" {
			for _, r := range sess.showRows(cmd.show) {
				if err := w.Row(r); err != nil {
					return err
				}
			}
		}
		s.m.statements.WithLabelValues(kindSession, "ok").Inc()
		return w.Complete(cmd.tag)
	}
	return wire.NewStatement(fn, wire.WithColumns(cols))
}

// catalogStatement answers a recognized catalog query.
func (s *Server) catalogStatement(sess *session, ans *catalogAnswer) *wire.PreparedStatement {
	cols := make(wire.Columns, len(ans.cols))
	for i, c := range ans.cols {
		cols[i] = wire.Column{Name: c.Name, Oid: ans.types[i].oid, Width: -1}
	}
	fn := func(ctx context.Context, w wire.DataWriter, _ []wire.Parameter) error {
		qctx, done := sess.begin(ctx)
		defer done()
		rows, err := ans.rows(qctx, &catalogRun{backend: s.backend, principal: sess.principal, database: sess.database})
		if err != nil {
			s.m.statements.WithLabelValues(kindCatalog, "error").Inc()
			return pgError(err)
		}
		for _, r := range rows {
			if err := w.Row(r); err != nil {
				return err
			}
		}
		s.m.statements.WithLabelValues(kindCatalog, "ok").Inc()
		return w.Complete(fmt.Sprintf("SELECT %d", len(rows)))
	}
	return wire.NewStatement(fn, wire.WithColumns(cols))
}
