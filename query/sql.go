package query

import (
	"bufio"
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/audit"
	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/internal/httpmw"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
)

// SQLRequest is the body of POST /v1/sql.
type SQLRequest struct {
	SQL string `json:"sql"`
	// MaxRows asks for at most this many rows (1..Config.MaxRows); absent
	// or 0 means Config.MaxRows.
	MaxRows int `json:"max_rows,omitempty"`
}

// SQLResponse is the answer of POST /v1/sql.
type SQLResponse struct {
	Columns []string `json:"columns"`
	// Types are DuckDB's type names: VARCHAR, BIGINT, DECIMAL(18,2),
	// TIMESTAMPTZ, BLOB, VARCHAR[] ...
	Types []string `json:"types"`
	// Rows hold JSON values as described at encodeValue, each row encoded
	// as it was read (an answer holds its rows once, as JSON).
	Rows     []json.RawMessage `json:"rows"`
	RowCount int               `json:"row_count"`
	// Truncated says the statement had more rows than were returned:
	// TruncatedBy says which limit cut the answer, "rows" (max_rows) or
	// "bytes" (query.max_answer_bytes).
	Truncated   bool   `json:"truncated"`
	TruncatedBy string `json:"truncated_by,omitempty"`
	// SnapshotID names the snapshot of every table the query could read
	// (null: the table does not exist or is empty); LakeOffsets are the
	// Kafka offsets those snapshots cover, and Offsets the offsets below
	// which the answer holds every event: the lake's, advanced by the
	// fresh (hot) rows read after them. table -> topic -> partition -> next
	// offset.
	SnapshotID  map[string]*int64       `json:"snapshot_id"`
	Offsets     map[string]lake.Offsets `json:"offsets"`
	LakeOffsets map[string]lake.Offsets `json:"lake_offsets"`
	ElapsedMs   float64                 `json:"elapsed_ms"`
}

func (s *Service) handleSQL(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	req, aerr := s.decodeSQLRequest(w, r)
	if aerr != nil {
		s.m.rejected.WithLabelValues(rejectRequest).Inc()
		s.writeError(w, aerr)
		return
	}
	res := &SQLResponse{Rows: []json.RawMessage{}}
	row := []any{}
	sink := func(cols, types []string) func([]driver.Value) error {
		res.Columns, res.Types = cols, types
		return func(vals []driver.Value) error {
			row = row[:0]
			for i, v := range vals {
				row = append(row, encodeValue(v, types[i]))
			}
			b, err := json.Marshal(row)
			if err != nil {
				return fmt.Errorf("encode a row: %w", err)
			}
			res.Rows = append(res.Rows, b)
			return nil
		}
	}
	out, err := s.Query(r.Context(), Statement{SQL: req.SQL, MaxRows: req.MaxRows, Protocol: audit.ProtocolHTTP}, sink)
	if err != nil {
		s.writeError(w, asAPIError(err))
		return
	}
	res.RowCount = len(res.Rows)
	res.Truncated, res.TruncatedBy = out.TruncatedBy != "", out.TruncatedBy
	res.SnapshotID, res.LakeOffsets, res.Offsets = out.SnapshotID, out.LakeOffsets, out.Offsets
	res.ElapsedMs = float64(time.Since(start).Microseconds()) / 1000
	s.m.rowsReturned.WithLabelValues(endpointSQL).Add(float64(res.RowCount))
	s.writeSQLResponse(w, res)
}

// writeSQLResponse writes res without copying its rows into one buffer:
// the answer around them is encoded alone, and the rows are written
// into its "rows" array one by one.
func (s *Service) writeSQLResponse(w http.ResponseWriter, res *SQLResponse) {
	rows := res.Rows
	res.Rows = []json.RawMessage{}
	b, err := json.Marshal(res)
	if err != nil {
		s.writeError(w, &apiError{status: http.StatusInternalServerError, code: codeInternal, msg: "encode response: " + err.Error()})
		return
	}
	const hole = `"rows":[]`
	i := bytes.Index(b, []byte(hole)) // the first: "rows" follows "columns" and "types", which are arrays of strings
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(b[:i+len(hole)-1])
	for j, r := range rows {
		if j > 0 {
			bw.WriteByte(',')
		}
		bw.Write(r)
		rows[j] = nil // written: let it go
	}
	bw.Write(b[i+len(hole)-1:])
	bw.WriteByte('\n')
	_ = bw.Flush()
}

// Statement is one SQL statement to run for the principal of the context
// (auth.From).
type Statement struct {
	SQL string
	// Args bind the statement's parameters ($1, ?); /v1/sql sends none.
	Args []any
	// MaxRows asks for at most this many rows (0: Config.MaxRows).
	MaxRows int
	// Protocol is how the statement came (audit.ProtocolHTTP ...), for
	// the audit log.
	Protocol string
}

// Sink receives an answer: called once with the result's column names and
// DuckDB type names, it returns the function that takes each row (the
// values as duckdb-go returns them, valid only during the call; an error
// stops the statement).
type Sink func(cols, types []string) func(row []driver.Value) error

// Outcome is what Query did.
type Outcome struct {
	Rows  int
	Bytes int64
	// TruncatedBy is "rows" or "bytes" when a limit cut the answer.
	TruncatedBy string
	// Objects are the views, tables and read models the statement named,
	// and Tables the tables behind them.
	Objects []string
	Tables  []string
	// FilesSkipped are the data files a lookup left out by their
	// manifests' bounds (prune.go).
	FilesSkipped int
	SnapshotID   map[string]*int64
	Offsets      map[string]lake.Offsets
	LakeOffsets  map[string]lake.Offsets
}

// Query runs one read-only statement for the principal of ctx, within the
// sandbox, the grants of its role, the query slots and the timeout, and
// hands the answer to sink. Errors are the API's (Status and Code tell
// which).
func (s *Service) Query(ctx context.Context, st Statement, sink Sink) (*Outcome, error) {
	start := s.deps.Now()
	out, err := s.query(ctx, st, sink)
	if aerr := s.audit(ctx, start, st, out, err); aerr != nil {
		return nil, aerr
	}
	return out, err
}

func (s *Service) query(ctx context.Context, st Statement, sink Sink) (*Outcome, error) {
	maxRows := s.cfg.MaxRows
	if st.MaxRows > 0 {
		maxRows = min(st.MaxRows, s.cfg.MaxRows)
	}
	role, verdict, qc, aerr := s.admit(ctx, st.SQL)
	if aerr != nil {
		return nil, aerr
	}
	defer s.release(qc)

	qctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	out := &Outcome{}
	used, err := s.runSQL(qctx, qc, role, verdict, out, func(conn *duckdb.Conn, body, named string) error {
		return execute(qctx, conn, verdict, body, named, st.Args, maxRows, s.cfg.MaxAnswerBytes, sink, out)
	})
	s.m.filesSkipped.Add(float64(out.FilesSkipped))
	if err != nil {
		aerr := s.classify(qctx, err)
		if aerr.code == codeReadOnly || aerr.code == codeForbidden {
			s.m.rejected.WithLabelValues(rejectReadOnly).Inc()
		}
		if aerr.status >= 500 && aerr.code != codeTimeout && aerr.code != codeUnavailable {
			s.log.Error("run query", logkey.RequestID, httpmw.IDFrom(ctx), logkey.Err, err)
		}
		return out, aerr
	}
	out.SnapshotID = used.snapshotIDs()
	out.LakeOffsets = used.offsets()
	return out, nil
}

// audit records a statement in the audit log (deps.Audit) before its
// answer is sent; an answer that could not be recorded is withheld (503).
func (s *Service) audit(ctx context.Context, start time.Time, st Statement, out *Outcome, err error) *apiError {
	if s.deps.Audit == nil {
		return nil
	}
	p, _ := auth.From(ctx)
	rec := audit.Record{
		Time: start, Principal: p.Name, Role: p.Role, Client: p.Client, Protocol: st.Protocol, Kind: audit.KindSQL,
		Statement: st.SQL, Duration: s.deps.Now().Sub(start), Outcome: audit.OutcomeOK, RequestID: httpmw.IDFrom(ctx),
	}
	if out != nil {
		rec.Objects, rec.Rows, rec.Bytes = out.Objects, int64(out.Rows), out.Bytes
		for _, t := range out.Tables {
			if id := out.SnapshotID[t]; id != nil {
				if rec.SnapshotIDs == nil {
					rec.SnapshotIDs = map[string]int64{}
				}
				rec.SnapshotIDs[t] = *id
			}
		}
		if out.TruncatedBy != "" {
			rec.Outcome = audit.OutcomeTruncated
		}
	}
	if err != nil {
		rec.Error = err.Error()
		ae := asAPIError(err)
		switch {
		case ae.status == http.StatusUnauthorized || ae.status == http.StatusForbidden:
			rec.Outcome = audit.OutcomeDenied
		case ae.code == codeCanceled:
			rec.Outcome = audit.OutcomeCanceled
		default:
			rec.Outcome = audit.OutcomeError
		}
	}
	if aerr := s.deps.Audit.Append(context.WithoutCancel(ctx), rec); aerr != nil {
		s.log.Error("record a query in the audit log; the answer is withheld", logkey.RequestID, rec.RequestID, logkey.Err, aerr)
		return &apiError{status: http.StatusServiceUnavailable, code: codeAuditUnavailable, retryAfter: time.Second,
			msg: "the audit log could not record this request, so its answer is withheld: " + aerr.Error()}
	}
	return nil
}

// admit is what every statement passes before DuckDB sees it: the role of
// the caller, the text guard, a query slot (to release).
func (s *Service) admit(ctx context.Context, text string) (*auth.Role, guardVerdict, *qconn, *apiError) {
	role, aerr := s.role(ctx)
	if aerr != nil {
		return nil, guardVerdict{}, nil, aerr
	}
	verdict := checkText(text)
	if verdict.err != nil {
		reason := rejectRequest
		if verdict.err.code == codeReadOnly {
			reason = rejectReadOnly
		}
		s.m.rejected.WithLabelValues(reason).Inc()
		return nil, verdict, nil, verdict.err
	}
	qc, _, aerr := s.acquire(ctx)
	if aerr != nil {
		return nil, verdict, nil, aerr
	}
	return role, verdict, qc, nil
}

// role is the role of ctx's principal; admin when the service has no
// policy (authorization is the front ends' choice).
func (s *Service) role(ctx context.Context) (*auth.Role, *apiError) {
	if s.deps.Policy == nil {
		r, _ := adminPolicy.Role(auth.RoleAdmin)
		return r, nil
	}
	p, ok := auth.From(ctx)
	if !ok {
		return nil, &apiError{status: http.StatusUnauthorized, code: codeUnauthenticated, msg: "the request carries no token"}
	}
	r, ok := s.deps.Policy.Role(p.Role)
	if !ok {
		return nil, &apiError{status: http.StatusForbidden, code: codeForbidden,
			msg: fmt.Sprintf("token %q has role %q, which is not configured (auth.roles)", p.Name, p.Role)}
	}
	return r, nil
}

// adminPolicy holds the built-in roles, for a service without a policy.
var adminPolicy = func() *auth.Policy {
	p, err := auth.NewPolicy(auth.Config{})
	if err != nil {
		panic(err)
	}
	return p
}()

func (s *Service) decodeSQLRequest(w http.ResponseWriter, r *http.Request) (SQLRequest, *apiError) {
	var req SQLRequest
	bad := func(msg string) (SQLRequest, *apiError) {
		return req, &apiError{status: http.StatusBadRequest, code: codeBadRequest, msg: msg}
	}
	// A JSON body only: a web page can send a form or text/plain to
	// another site without asking, but not application/json.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return req, &apiError{status: http.StatusUnsupportedMediaType, code: codeMediaType,
			msg: `POST /v1/sql takes a JSON body with "Content-Type: application/json" (got ` + strconv.Quote(r.Header.Get("Content-Type")) +
				`); other types are refused so that a web page cannot send SQL across sites`}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return bad(fmt.Sprintf("the request body is larger than %d bytes", maxBodyBytes))
		}
		return bad(`the request body must be a JSON object like {"sql": "SELECT 1", "max_rows": 100}: ` + err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return bad(fmt.Sprintf("the request body is larger than %d bytes", maxBodyBytes))
		}
		return bad("the request body must hold one JSON object and nothing after it")
	}
	if strings.TrimSpace(req.SQL) == "" {
		return bad(`"sql" is required`)
	}
	if req.MaxRows < 0 || req.MaxRows > s.cfg.MaxRows {
		return bad(fmt.Sprintf(`"max_rows" must be between 1 and %d (the server's limit)`, s.cfg.MaxRows))
	}
	return req, nil
}

// acquire takes a query slot, waiting at most QueueTimeout, and the
// generation in service.
func (s *Service) acquire(ctx context.Context) (*qconn, *generation, *apiError) {
	gen := s.gen.Load()
	if gen == nil {
		s.m.rejected.WithLabelValues(rejectNotReady).Inc()
		return nil, nil, &apiError{status: http.StatusServiceUnavailable, code: codeNotReady, retryAfter: time.Second,
			msg: "the query service has not read the lake yet; retry in a moment (see /readyz)"}
	}
	qc, err := s.pool.acquire(ctx, s.cfg.QueueTimeout)
	switch {
	case errors.Is(err, errBusy):
		s.m.rejected.WithLabelValues(rejectBusy).Inc()
		return nil, nil, &apiError{status: http.StatusServiceUnavailable, code: codeBusy, retryAfter: time.Second,
			msg: fmt.Sprintf("all %d query slots stayed busy for %v; retry after the Retry-After delay, send fewer concurrent queries, or raise query.max_concurrent_queries",
				s.cfg.MaxConcurrentQueries, s.cfg.QueueTimeout)}
	case errors.Is(err, errClosed):
		return nil, nil, &apiError{status: http.StatusServiceUnavailable, code: codeNotReady, msg: err.Error()}
	case err != nil:
		return nil, nil, &apiError{status: 499, code: codeCanceled, msg: "the client went away while waiting for a query slot"}
	}
	s.m.inflight.Inc()
	// The newest generation, now that we hold a connection.
	return qc, s.gen.Load(), nil
}

func (s *Service) release(qc *qconn) {
	s.m.inflight.Dec()
	s.pool.release(qc)
}

// statementError is a refusal decided after preparing.
type statementError struct{ api *apiError }

func (e *statementError) Error() string { return e.api.msg }

// checkStatementType refuses every prepared statement but SELECT and
// EXPLAIN. This is what keeps the endpoint read-only: the text guard only
// gives clearer messages.
func checkStatementType(st *duckdb.Stmt) error {
	t, err := st.StatementType()
	if err != nil {
		return fmt.Errorf("read statement type: %w", err)
	}
	switch t {
	case duckdb.STATEMENT_TYPE_SELECT, duckdb.STATEMENT_TYPE_EXPLAIN:
		return nil
	}
	return &statementError{api: readOnlyError(stmtTypeName(t))}
}

func stmtTypeName(t duckdb.StmtType) string {
	names := map[duckdb.StmtType]string{
		duckdb.STATEMENT_TYPE_INSERT: "INSERT", duckdb.STATEMENT_TYPE_UPDATE: "UPDATE", duckdb.STATEMENT_TYPE_DELETE: "DELETE",
		duckdb.STATEMENT_TYPE_CREATE: "CREATE", duckdb.STATEMENT_TYPE_DROP: "DROP", duckdb.STATEMENT_TYPE_ALTER: "ALTER",
		duckdb.STATEMENT_TYPE_COPY: "COPY", duckdb.STATEMENT_TYPE_ATTACH: "ATTACH", duckdb.STATEMENT_TYPE_DETACH: "DETACH",
		duckdb.STATEMENT_TYPE_SET: "SET", duckdb.STATEMENT_TYPE_VARIABLE_SET: "SET VARIABLE", duckdb.STATEMENT_TYPE_PRAGMA: "PRAGMA",
		duckdb.STATEMENT_TYPE_CALL: "CALL", duckdb.STATEMENT_TYPE_LOAD: "LOAD/INSTALL", duckdb.STATEMENT_TYPE_EXPORT: "EXPORT",
		duckdb.STATEMENT_TYPE_TRANSACTION: "transaction", duckdb.STATEMENT_TYPE_PREPARE: "PREPARE", duckdb.STATEMENT_TYPE_EXECUTE: "EXECUTE",
		duckdb.STATEMENT_TYPE_VACUUM: "VACUUM", duckdb.STATEMENT_TYPE_ANALYZE: "ANALYZE", duckdb.STATEMENT_TYPE_CREATE_FUNC: "CREATE FUNCTION",
		duckdb.STATEMENT_TYPE_EXTENSION: "extension", duckdb.STATEMENT_TYPE_MULTI: "multi",
	}
	if n, ok := names[t]; ok {
		return n
	}
	return "statement type " + strconv.Itoa(int(t))
}

// runSQL runs one statement on qc with run (given the text authorize made
// of it), in one transaction with the generation it reads, and returns
// that generation.
//
// The transaction's snapshot is taken before the generation is chosen:
// DuckDB takes it at the transaction's first statement, not at BEGIN, and
// that statement is the parse of the text (authorize needs it anyway).
// The refresher
// publishes a generation before it deletes the hot rows that generation's
// snapshots cover, so every delete committed before this transaction began
// belongs to the chosen generation or an older one, and removed only rows
// the chosen generation reads from the lake; deletes committed later are
// invisible to the transaction (DuckDB's MVCC snapshot). The query and the
// hot watermarks it reports see the same hot rows, whatever the hot tier
// appends meanwhile.
func (s *Service) runSQL(ctx context.Context, qc *qconn, role *auth.Role, v guardVerdict, out *Outcome, run func(conn *duckdb.Conn, body, named string) error) (*generation, error) {
	var gen *generation
	err := qc.c.Raw(func(dc any) error {
		conn, ok := dc.(*duckdb.Conn)
		if !ok {
			return fmt.Errorf("duckdb connection is %T", dc)
		}
		var err error
		gen, err = s.runIn(ctx, conn, qc, role, v, out, run, true)
		if errors.Is(err, errInstants) {
			// The error ended DuckDB's transaction: run the statement
			// again, without the lookup.
			gen, err = s.runIn(ctx, conn, qc, role, v, out, run, false)
		}
		return err
	})
	return gen, err
}

// runIn is runSQL's transaction on conn; lookups says whether a lookup
// may read fewer files (prune.go).
func (s *Service) runIn(ctx context.Context, conn *duckdb.Conn, qc *qconn, role *auth.Role, v guardVerdict, out *Outcome,
	run func(conn *duckdb.Conn, body, named string) error, lookups bool) (*generation, error) {
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION", nil); err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	tree, perr := parseTree(ctx, conn, v.body) // the snapshot
	gen := s.gen.Load()
	err := s.syncViewsRaw(ctx, conn, qc, gen)
	body, named := v.body, v.body
	var lk *lookup
	if err == nil && perr == nil && lookups && startsWithSelect(v.body) {
		lk, err = lookupOf(tree, gen.byName, role, instantsOn(ctx, conn))
	}
	if err == nil {
		body, named, err = authorize(tree, perr, role, gen, v, lk, out)
	}
	if err == nil {
		err = run(conn, body, named)
	}
	if err == nil {
		out.Offsets, err = readWatermarks(ctx, conn, gen)
	}
	if err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK", nil)
		qc.gen, qc.views = 0, nil // views created in the transaction are gone
		return gen, err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT", nil); err != nil {
		qc.gen, qc.views = 0, nil
		return gen, fmt.Errorf("end transaction: %w", err)
	}
	return gen, nil
}

// authorize checks what the statement reads, as parsed into tree (or the
// parse's error), against role (authz.go),
// records it in out, and returns the text to run: the statement, under
// the WITH clause of the role's masks and filters and of a lookup's files
// (prune.go). named is the text whose result columns have the
// statement's own names (the text to run, or the statement when that
// wraps it).
func authorize(tree map[string]any, err error, role *auth.Role, gen *generation, v guardVerdict, lk *lookup, out *Outcome) (run, named string, _ error) {
	if err != nil {
		var pe *parseError
		switch {
		case !errors.As(err, &pe):
			return "", "", err
		case role.Admin:
			return v.body, v.body, nil // EXPLAIN, PIVOT ...: DuckDB decides
		case pe.kind == "not implemented":
			return "", "", &statementError{api: &apiError{status: http.StatusForbidden, code: codeForbidden,
				msg: fmt.Sprintf("role %q may run SELECT statements only (DuckDB cannot show what this one reads): %s", role.Name, pe.msg)}}
		}
		return "", "", &statementError{api: &apiError{status: http.StatusBadRequest, code: codeBadSQL, msg: "Parser Error: " + pe.msg}}
	}
	r := checkReads(tree, role, gen.byName)
	out.Objects = r.objects
	for _, o := range r.objects {
		for _, t := range gen.byName[strings.ToLower(o)].tables {
			if !slices.Contains(out.Tables, t) {
				out.Tables = append(out.Tables, t)
			}
		}
	}
	if r.denied != nil {
		return "", "", &statementError{api: r.denied}
	}
	// A lookup reads only the files that can hold its rows (prune.go);
	// lk is nil for other statements.
	var src map[string]string
	if lk != nil {
		if sql, n := gen.pruned(lk); n > 0 {
			src = map[string]string{lk.view.name: sql}
			out.FilesSkipped = n
		}
	}
	parts := restrictions(role, r.objects, gen.byName, src)
	if len(parts) == 0 {
		return v.body, v.body, nil
	}
	with := "WITH " + strings.Join(parts, ", ") + "\n"
	if src != nil {
		// A lookup has no WITH clause of its own (lookupOf), so this one
		// goes before it, and its columns keep their own names.
		return with + v.body, with + v.body, nil
	}
	return with + "SELECT * FROM (\n" + v.body + "\n)", v.body, nil
}

// syncViewsRaw is syncViews on the raw connection (inside the query's
// transaction).
func (s *Service) syncViewsRaw(ctx context.Context, conn *duckdb.Conn, qc *qconn, gen *generation) error {
	if qc.gen == gen.id {
		return nil
	}
	qc.gen = 0
	if qc.views == nil {
		qc.views = map[string]string{}
	}
	err := createChanged(gen, qc.views, func(stmt string) error {
		_, err := conn.ExecContext(ctx, stmt, nil)
		return err
	})
	if err != nil {
		return err
	}
	qc.gen = gen.id
	return nil
}

// createChanged creates (or drops) the views of gen that differ from
// have, what a connection holds (name -> SQL), and records them there. A
// generation usually changes one table's view (a commit), and views bind
// what they name when a query runs, so the others are left as they are:
// creating a view over Parquet files reads their footers.
func createChanged(gen *generation, have map[string]string, exec func(string) error) error {
	for _, v := range gen.views {
		if sql, ok := have[v.name]; ok && sql == v.sql {
			continue
		}
		delete(have, v.name)
		if err := exec(v.create()); err != nil {
			return fmt.Errorf("create view %s of generation %d: %w", v.name, gen.id, err)
		}
		have[v.name] = v.sql
	}
	for name := range have {
		if gen.byName[strings.ToLower(name)] == nil {
			if err := exec("DROP VIEW IF EXISTS " + duck.QuoteIdent(name)); err != nil {
				return fmt.Errorf("drop view %s: %w", name, err)
			}
			delete(have, name)
		}
	}
	return nil
}

// prepare prepares exactly one statement. driver.Conn's Prepare refuses
// text holding several statements, where PrepareContext would execute all
// but the last one.
func prepare(conn *duckdb.Conn, text string) (*duckdb.Stmt, error) {
	return duckStmt(conn.Prepare(text))
}

// duckStmt is the DuckDB statement behind a prepared driver statement.
func duckStmt(ds driver.Stmt, err error) (*duckdb.Stmt, error) {
	if err != nil {
		return nil, err
	}
	st, ok := ds.(*duckdb.Stmt)
	if !ok {
		_ = ds.Close()
		return nil, fmt.Errorf("duckdb statement is %T", ds)
	}
	return st, nil
}

// expandsToSeveral reports whether err is DuckDB refusing to prepare
// body, one statement by the guard's reading, because DuckDB itself made
// several of it: a PIVOT whose values come from the data (no IN list)
// becomes CREATE TEMPORARY TYPE ... AS ENUM (SELECT DISTINCT ...) per
// pivot column, then the PIVOT over those types.
func expandsToSeveral(err error, body string) bool {
	if !strings.Contains(err.Error(), "multi-statement") {
		return false
	}
	sc := scanSQL(body)
	return !sc.multi && slices.Contains(sc.words, "PIVOT")
}

// prepareExpanded prepares the last statement DuckDB made of body after
// running the ones before it (its own enum types, built by reads).
func prepareExpanded(ctx context.Context, conn *duckdb.Conn, body string) (*duckdb.Stmt, error) {
	return duckStmt(conn.PrepareContext(ctx, body))
}

// dropPivotTypes drops the enum types a PIVOT left on conn (each has a
// name of its own), so that pooled connections do not collect them.
func dropPivotTypes(conn *duckdb.Conn) {
	rows, err := conn.QueryContext(context.Background(),
		`SELECT type_name FROM duckdb_types() WHERE database_name = 'temp' AND starts_with(type_name, '__pivot_enum_')`, nil)
	if err != nil {
		return
	}
	var names []string
	dest := make([]driver.Value, 1)
	for rows.Next(dest) == nil {
		if n, ok := dest[0].(string); ok {
			names = append(names, n)
		}
	}
	_ = rows.Close()
	for _, n := range names {
		_, _ = conn.ExecContext(context.Background(), "DROP TYPE IF EXISTS temp.main."+duck.QuoteIdent(n), nil)
	}
}

// execute runs body (v's statement, or what authorize made of it) and
// hands its rows to sink, stopping after maxRows rows or maxBytes bytes.
func execute(ctx context.Context, conn *duckdb.Conn, v guardVerdict, body, named string, args []any, maxRows int, maxBytes int64, sink Sink, out *Outcome) error {
	st, err := prepare(conn, body)
	if err != nil && expandsToSeveral(err, body) {
		st, err = prepareExpanded(ctx, conn, body)
		defer dropPivotTypes(conn)
	}
	if err != nil {
		return err
	}
	if err := checkStatementType(st); err != nil {
		_ = st.Close()
		return err
	}
	if in := st.NumInput(); in != len(args) {
		_ = st.Close()
		msg := fmt.Sprintf("the statement has %d parameters and %d values were given", in, len(args))
		if len(args) == 0 {
			msg = "the statement has parameters ($1, ?), which /v1/sql does not bind; write the values into the SQL"
		}
		return &statementError{api: &apiError{status: http.StatusBadRequest, code: codeBadSQL, msg: msg}}
	}
	n, err := st.ColumnCount()
	if err != nil {
		_ = st.Close()
		return fmt.Errorf("read result columns: %w", err)
	}
	// The names are the statement's own: wrapping it in a SELECT * (for
	// masks or the row limit) renames duplicates (a, a_1).
	names, err := columnNames(conn, st, named, body)
	if err != nil {
		_ = st.Close()
		return err
	}
	t, _ := st.StatementType()
	sized := false // the last column is the answer's size up to its row
	if t == duckdb.STATEMENT_TYPE_SELECT && !v.explain {
		if cut, ok := capped(conn, body, n, maxRows, maxBytes); ok {
			_ = st.Close()
			st, sized = cut, true
		}
	}
	defer st.Close()
	bound := make([]driver.NamedValue, len(args))
	for i, a := range args {
		bound[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	dr, err := st.QueryContext(ctx, bound)
	if err != nil {
		return err
	}
	rows := dr.(interface {
		driver.Rows
		driver.RowsColumnTypeDatabaseTypeName
	})
	defer rows.Close()
	types := make([]string, n)
	for i := range types {
		types[i] = rows.ColumnTypeDatabaseTypeName(i)
	}
	add := sink(names, types)
	width := n
	if sized {
		width++
	}
	dest := make([]driver.Value, width)
	for out.Rows <= maxRows {
		if err := rows.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if out.Rows == maxRows {
			// One row past the limit: the answer is cut by rows.
			out.TruncatedBy = "rows"
			break
		}
		var total int64
		if sized {
			total, _ = dest[n].(int64)
		} else {
			total = out.Bytes + rowSize(dest)
		}
		if total > maxBytes {
			// The row that crosses the cap is left out, and so is the
			// rest: an answer never holds more than the cap.
			out.TruncatedBy = "bytes"
			break
		}
		if err := add(dest[:n]); err != nil {
			return err
		}
		out.Bytes = total
		out.Rows++
	}
	return nil
}

// capped prepares body so that DuckDB stops it at the answer's limits:
// after maxRows+1 rows, and after the first row whose running size (the
// last column, rowSizeSQL) passes maxBytes. duckdb-go materializes a
// result, in DuckDB and again as Go values, so a SELECT * over the lake
// or a few huge values must be cut before they are produced, not after.
// The running sum is a streaming window (no sort, nothing held), so rows
// past the cap are computed and dropped, never stored. DuckDB keeps the
// order of an ordered subquery under a LIMIT and a streaming window. ok is
// false when the wrapped statement does not prepare with n columns; the
// statement then runs as it is, cut by rowSize in Go.
func capped(conn *duckdb.Conn, body string, n, maxRows int, maxBytes int64) (*duckdb.Stmt, bool) {
	limited := "SELECT * FROM (\n" + body + "\n) LIMIT " + strconv.Itoa(maxRows+1)
	lst, err := prepare(conn, limited)
	if err != nil {
		return nil, false
	}
	defer lst.Close()
	if cols, _ := lst.ColumnCount(); cols != n {
		return nil, false
	}
	// The names DuckDB gave the limited statement's columns (duplicates
	// renamed), to refer to them.
	size := make([]string, n)
	for i := range size {
		name, err := lst.ColumnName(i)
		if err != nil {
			return nil, false
		}
		info, err := lst.ColumnTypeInfo(i)
		if err != nil {
			return nil, false
		}
		size[i] = valueSizeSQL(duck.QuoteIdent(name), info.InternalType())
	}
	row := strings.Join(size, " + ")
	text := "SELECT * FROM (SELECT *, CAST(sum(" + row + ") OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS " + sizeColumn +
		" FROM (\n" + limited + "\n)) WHERE " + sizeColumn + " - (" + row + ") <= " + strconv.FormatInt(maxBytes, 10)
	cut, err := prepare(conn, text)
	if err != nil {
		return nil, false
	}
	if cols, _ := cut.ColumnCount(); cols != n+1 {
		_ = cut.Close()
		return nil, false
	}
	return cut, true
}

// sizeColumn is the column capped adds.
const sizeColumn = `"eventlake answer size"`

// valueSizeSQL is valueSize (encode.go) as DuckDB computes it for a
// column of type t.
func valueSizeSQL(col string, t duckdb.Type) string {
	switch t {
	case duckdb.TYPE_VARCHAR:
		return "coalesce(strlen(" + col + ") + 3, 4)"
	case duckdb.TYPE_BLOB:
		return "coalesce((octet_length(" + col + ") + 2) // 3 * 4 + 3, 4)"
	case duckdb.TYPE_BOOLEAN:
		return "6"
	case duckdb.TYPE_TIMESTAMP, duckdb.TYPE_TIMESTAMP_TZ, duckdb.TYPE_TIMESTAMP_S, duckdb.TYPE_TIMESTAMP_MS,
		duckdb.TYPE_TIMESTAMP_NS, duckdb.TYPE_DATE, duckdb.TYPE_TIME, duckdb.TYPE_TIME_TZ:
		return "40"
	case duckdb.TYPE_DECIMAL, duckdb.TYPE_HUGEINT, duckdb.TYPE_UHUGEINT:
		return "44"
	case duckdb.TYPE_LIST, duckdb.TYPE_ARRAY, duckdb.TYPE_STRUCT, duckdb.TYPE_MAP, duckdb.TYPE_UNION, duckdb.TYPE_BIT:
		// Nested values: their text, about their JSON.
		return "coalesce(strlen(CAST(" + col + " AS VARCHAR)) + 3, 4)"
	}
	return "24" // numbers, intervals, UUIDs
}

// columnNames are the result columns of text, prepared as st when it is
// what runs, else prepared again (it never runs).
func columnNames(conn *duckdb.Conn, st *duckdb.Stmt, text, ran string) ([]string, error) {
	if text != ran {
		own, err := prepare(conn, text)
		if err != nil {
			return nil, err
		}
		defer own.Close()
		st = own
	}
	n, err := st.ColumnCount()
	if err != nil {
		return nil, fmt.Errorf("read result columns: %w", err)
	}
	names := make([]string, n)
	for i := range names {
		if names[i], err = st.ColumnName(i); err != nil {
			return nil, fmt.Errorf("read result columns: %w", err)
		}
	}
	return names, nil
}

// classify turns an error of preparing or running a query into an answer.
func (s *Service) classify(ctx context.Context, err error) *apiError {
	var se *statementError
	if errors.As(err, &se) {
		return se.api
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &apiError{status: http.StatusGatewayTimeout, code: codeTimeout,
			msg: fmt.Sprintf("the query ran longer than %v and was canceled; filter more (for example on ts) or aggregate", s.cfg.QueryTimeout)}
	case ctx.Err() != nil:
		return &apiError{status: 499, code: codeCanceled, msg: "the client went away; the query was canceled"}
	case strings.Contains(err.Error(), "multi-statement"):
		return &apiError{status: http.StatusBadRequest, code: codeMultiple,
			msg: "only one statement per request is allowed; send each statement in its own request"}
	}
	var de *duckdb.Error
	if !errors.As(err, &de) {
		return &apiError{status: http.StatusInternalServerError, code: codeInternal, msg: err.Error()}
	}
	msg := de.Msg
	if i := strings.Index(msg, unavailableMarker); i >= 0 {
		return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: msg[i+len(unavailableMarker):]}
	}
	switch de.Type {
	case duckdb.ErrorTypePermission:
		return &apiError{status: http.StatusForbidden, code: codeForbidden,
			msg: "only the lake's files are readable: " + msg}
	case duckdb.ErrorTypeInterrupt:
		return &apiError{status: http.StatusGatewayTimeout, code: codeTimeout, msg: "the query was interrupted: " + msg}
	case duckdb.ErrorTypeOutOfMemory:
		return &apiError{status: http.StatusUnprocessableEntity, code: codeOutOfMemory,
			msg: fmt.Sprintf("the query needs more memory than the %s limit; filter or aggregate more: %s", s.cfg.MemoryLimit, msg)}
	case duckdb.ErrorTypeIO, duckdb.ErrorTypeInternal, duckdb.ErrorTypeFatal, duckdb.ErrorTypeConnection,
		duckdb.ErrorTypeSerialization, duckdb.ErrorTypeTransaction, duckdb.ErrorTypeNullPointer:
		return &apiError{status: http.StatusInternalServerError, code: codeInternal, msg: msg}
	}
	return &apiError{status: http.StatusBadRequest, code: codeBadSQL, msg: msg}
}
