package query

import (
	"context"
	"fmt"
	"net/http"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/internal/duck"
)

// Description is the shape of a prepared statement.
type Description struct {
	// Columns and Types are the result columns' names and DuckDB type
	// names (as Query's Sink gets them).
	Columns, Types []string
	// Params are the DuckDB type names of $1..$n; "" where DuckDB cannot
	// infer one.
	Params []string
}

// Describe prepares one statement (st.SQL) for the principal of ctx,
// under the same checks as Query, without running it. A refusal is
// recorded in the audit log (a statement that passes is recorded when it
// runs).
func (s *Service) Describe(ctx context.Context, st Statement) (*Description, error) {
	start := s.deps.Now()
	d, err := s.describe(ctx, st.SQL)
	if ae, ok := err.(*apiError); ok && (ae.status == http.StatusUnauthorized || ae.status == http.StatusForbidden) {
		if aerr := s.audit(ctx, start, st, nil, err); aerr != nil {
			return nil, aerr
		}
	}
	return d, err
}

func (s *Service) describe(ctx context.Context, text string) (*Description, error) {
	role, verdict, qc, aerr := s.admit(ctx, text)
	if aerr != nil {
		return nil, aerr
	}
	defer s.release(qc)
	qctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	d := &Description{}
	_, err := s.runSQL(qctx, qc, role, verdict, &Outcome{}, func(conn *duckdb.Conn, body, named string) error {
		st, err := prepare(conn, body)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := checkStatementType(st); err != nil {
			return err
		}
		if d.Columns, err = columnNames(conn, st, named, body); err != nil {
			return err
		}
		for i := range d.Columns {
			info, err := st.ColumnTypeInfo(i)
			if err != nil {
				return fmt.Errorf("read result columns: %w", err)
			}
			d.Types = append(d.Types, duck.TypeName(info))
		}
		for i := 1; i <= st.NumInput(); i++ {
			t, err := st.ParamType(i)
			if err != nil || t == duckdb.TYPE_INVALID {
				d.Params = append(d.Params, "")
				continue
			}
			d.Params = append(d.Params, duck.TypeNames[t])
		}
		return nil
	})
	if err != nil {
		return nil, s.classify(qctx, err)
	}
	return d, nil
}
