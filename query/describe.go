package query

import (
	"context"
	"fmt"
	"net/http"

	duckdb "github.com/duckdb/duckdb-go/v2"
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
	role, aerr := s.role(ctx)
	if aerr != nil {
		return nil, aerr
	}
	verdict := checkText(text)
	if verdict.err != nil {
		return nil, verdict.err
	}
	qc, _, aerr := s.acquire(ctx)
	if aerr != nil {
		return nil, aerr
	}
	defer s.release(qc)
	qctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	d := &Description{}
	_, err := s.runSQL(qctx, qc, role, verdict, &Outcome{}, func(conn *duckdb.Conn, body string) error {
		st, err := prepare(conn, body)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := checkStatementType(st); err != nil {
			return err
		}
		if d.Columns, err = columnNames(conn, st, verdict.body, body); err != nil {
			return err
		}
		for i := range d.Columns {
			info, err := st.ColumnTypeInfo(i)
			if err != nil {
				return fmt.Errorf("read result columns: %w", err)
			}
			d.Types = append(d.Types, typeName(info))
		}
		for i := 1; i <= st.NumInput(); i++ {
			t, err := st.ParamType(i)
			if err != nil || t == duckdb.TYPE_INVALID {
				d.Params = append(d.Params, "")
				continue
			}
			d.Params = append(d.Params, typeNames[t])
		}
		return nil
	})
	if err != nil {
		return nil, s.classify(qctx, err)
	}
	return d, nil
}

// typeName writes a DuckDB type as DuckDB's result columns name it.
func typeName(info duckdb.TypeInfo) string {
	switch d := info.Details().(type) {
	case *duckdb.DecimalDetails:
		return fmt.Sprintf("DECIMAL(%d,%d)", d.Width, d.Scale)
	case *duckdb.ListDetails:
		return typeName(d.Child) + "[]"
	case *duckdb.ArrayDetails:
		return fmt.Sprintf("%s[%d]", typeName(d.Child), d.Size)
	}
	if info.Alias() != "" {
		return info.Alias()
	}
	if n, ok := typeNames[info.InternalType()]; ok {
		return n
	}
	return "VARCHAR"
}

var typeNames = map[duckdb.Type]string{
	duckdb.TYPE_BOOLEAN: "BOOLEAN", duckdb.TYPE_TINYINT: "TINYINT", duckdb.TYPE_SMALLINT: "SMALLINT",
	duckdb.TYPE_INTEGER: "INTEGER", duckdb.TYPE_BIGINT: "BIGINT", duckdb.TYPE_UTINYINT: "UTINYINT",
	duckdb.TYPE_USMALLINT: "USMALLINT", duckdb.TYPE_UINTEGER: "UINTEGER", duckdb.TYPE_UBIGINT: "UBIGINT",
	duckdb.TYPE_HUGEINT: "HUGEINT", duckdb.TYPE_FLOAT: "FLOAT", duckdb.TYPE_DOUBLE: "DOUBLE",
	duckdb.TYPE_VARCHAR: "VARCHAR", duckdb.TYPE_DECIMAL: "DECIMAL", duckdb.TYPE_BLOB: "BLOB",
	duckdb.TYPE_TIMESTAMP_TZ: "TIMESTAMP WITH TIME ZONE", duckdb.TYPE_TIMESTAMP: "TIMESTAMP",
	duckdb.TYPE_TIMESTAMP_S: "TIMESTAMP_S", duckdb.TYPE_TIMESTAMP_MS: "TIMESTAMP_MS", duckdb.TYPE_TIMESTAMP_NS: "TIMESTAMP_NS",
	duckdb.TYPE_DATE: "DATE", duckdb.TYPE_TIME: "TIME", duckdb.TYPE_TIME_TZ: "TIMETZ", duckdb.TYPE_INTERVAL: "INTERVAL",
	duckdb.TYPE_UUID: "UUID", duckdb.TYPE_STRUCT: "STRUCT", duckdb.TYPE_MAP: "MAP", duckdb.TYPE_ENUM: "ENUM",
}
