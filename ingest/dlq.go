package ingest

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/lake"
)

// DLQFilter selects dead letters (`eventlake dlq list|show|replay`,
// automatic replays). Empty fields select everything.
type DLQFilter struct {
	Reasons []string `json:"reasons,omitempty"`
	// Types are envelope types or schema subjects.
	Types  []string `json:"types,omitempty"`
	Topics []string `json:"topics,omitempty"`
	// IDs are event ids or topic/partition/offset coordinates.
	IDs   []string  `json:"ids,omitempty"`
	Since time.Time `json:"since,omitzero"` // on ingested_at; zero: no bound
	Until time.Time `json:"until,omitzero"`
	// Pending selects only the rows no replay has resolved.
	Pending bool `json:"pending,omitempty"`

	// after, when set, selects only rows past this position in replay
	// order (cursorOrder): the cursor of a replay in batches.
	after *coordsCursor
}

// coordsCursor is a position in cursorOrder.
type coordsCursor struct {
	ingested  time.Time
	topic     string
	partition int32
	offset    int64
}

// cursorOrder is the order a replay selects rows in: by when ingest stored
// them (so that a batch covers few dead-letter files, which it rewrites),
// then by Kafka coordinates (unique).
var cursorOrder = []string{lake.ColIngestedAt, lake.ColKafkaTopic, lake.ColKafkaPartition, lake.ColKafkaOffset}

// where is the condition "past c in cursorOrder", with its arguments.
func (c *coordsCursor) where() (string, []any) {
	vals := []any{c.ingested, c.topic, c.partition, c.offset}
	// (a > ?) OR (a = ? AND ((b > ?) OR (b = ? AND ...)))
	cond, args := "", []any{}
	for i := len(cursorOrder) - 1; i >= 0; i-- {
		col := duck.QuoteIdent(cursorOrder[i])
		if cond == "" {
			cond, args = col+" > ?", []any{vals[i]}
			continue
		}
		cond = fmt.Sprintf("(%s > ? OR (%s = ? AND (%s)))", col, col, cond)
		args = append([]any{vals[i], vals[i]}, args...)
	}
	return cond, args
}

// Columns derived from the raw bytes: the envelope fields a dead letter
// still carries when its value is UTF-8 JSON (the table has no event_id,
// type or source of its own: the message was rejected before they were
// known to be valid).
const (
	dlqEventID = lake.ColEventID
	dlqType    = lake.ColType
	dlqSource  = lake.ColSource
	// dlqFile and dlqRowNum say where a row is: the local path of its data
	// file and its position in it (what a replay rewrites).
	dlqFile   = "filename"
	dlqRowNum = "file_row_number"
)

// dlqColumns are the dead-letter table's columns that readers select, with
// the DuckDB type of each: a column that no data file has yet (written
// before the table gained it) reads as a typed null.
var dlqColumns = []struct{ name, typ string }{
	{lake.ColRaw, "BLOB"}, {lake.ColReason, "VARCHAR"}, {lake.ColDetail, "VARCHAR"}, {lake.ColKafkaTopic, "VARCHAR"},
	{lake.ColKafkaPartition, "INTEGER"}, {lake.ColKafkaOffset, "BIGINT"}, {lake.ColKafkaTimestamp, "TIMESTAMPTZ"},
	{lake.ColKey, "BLOB"}, {lake.ColSize, "BIGINT"}, {lake.ColIngestedAt, "TIMESTAMPTZ"}, {lake.ColSubject, "VARCHAR"},
	{lake.ColVersion, "INTEGER"}, {lake.ColField, "VARCHAR"}, {lake.ColReplayID, "VARCHAR"}, {lake.ColReplayedAt, "TIMESTAMPTZ"},
}

// selectSQL is the one mapping of the dead-letter table's columns to what
// readers see, with the envelope fields taken from the raw bytes and each
// row's file and position.
func (r *DLQReader) selectSQL() string {
	env := func(field string) string {
		// decode fails on bytes that are not UTF-8, json_extract_string on
		// text that is not JSON: try turns both into null. decode has a
		// try of its own: DuckDB computes it once for the three fields,
		// outside the outer try.
		return fmt.Sprintf("try(json_extract_string(try(decode(%s)), %s))", duck.QuoteIdent(lake.ColRaw), duck.QuoteString("$."+field))
	}
	var cols []string
	for _, c := range dlqColumns {
		if r.has[c.name] {
			cols = append(cols, duck.QuoteIdent(c.name))
		} else {
			cols = append(cols, "CAST(NULL AS "+c.typ+") AS "+duck.QuoteIdent(c.name))
		}
	}
	cols = append(cols,
		env("event_id")+" AS "+duck.QuoteIdent(dlqEventID),
		fmt.Sprintf("coalesce(nullif(%s, ''), %s) AS %s", duck.QuoteIdent(lake.ColSubject), env("type"), duck.QuoteIdent(dlqType)),
		env("source")+" AS "+duck.QuoteIdent(dlqSource),
		duck.QuoteIdent(dlqFile), duck.QuoteIdent(dlqRowNum),
	)
	return fmt.Sprintf("SELECT %s FROM read_parquet(%s, union_by_name = true, hive_partitioning = false, filename = true, file_row_number = true)",
		strings.Join(cols, ", "), duck.QuoteList(r.files))
}

// Where is f as a WHERE clause over the reader's columns, with its
// arguments.
func (f DLQFilter) Where() (string, []any) {
	var conds []string
	var args []any
	in := func(col string, vals []string) string {
		ph := make([]string, len(vals))
		for i, v := range vals {
			ph[i] = "?"
			args = append(args, v)
		}
		return fmt.Sprintf("%s IN (%s)", col, strings.Join(ph, ", "))
	}
	if len(f.Reasons) > 0 {
		conds = append(conds, in(duck.QuoteIdent(lake.ColReason), f.Reasons))
	}
	if len(f.Types) > 0 {
		conds = append(conds, in(duck.QuoteIdent(dlqType), f.Types))
	}
	if len(f.Topics) > 0 {
		conds = append(conds, in(duck.QuoteIdent(lake.ColKafkaTopic), f.Topics))
	}
	if len(f.IDs) > 0 {
		byID := in(duck.QuoteIdent(dlqEventID), f.IDs)
		coords := fmt.Sprintf("concat_ws('/', %s, %s, %s)", duck.QuoteIdent(lake.ColKafkaTopic),
			duck.QuoteIdent(lake.ColKafkaPartition), duck.QuoteIdent(lake.ColKafkaOffset))
		conds = append(conds, "("+byID+" OR "+in(coords, f.IDs)+")")
	}
	if !f.Since.IsZero() {
		conds = append(conds, duck.QuoteIdent(lake.ColIngestedAt)+" >= ?")
		args = append(args, f.Since)
	}
	if !f.Until.IsZero() {
		conds = append(conds, duck.QuoteIdent(lake.ColIngestedAt)+" < ?")
		args = append(args, f.Until)
	}
	if f.Pending {
		conds = append(conds, duck.QuoteIdent(lake.ColReplayID)+" IS NULL")
	}
	if f.after != nil {
		cond, a := f.after.where()
		conds = append(conds, cond)
		args = append(args, a...)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// DLQReader reads one snapshot of the dead-letter table with DuckDB.
type DLQReader struct {
	table    string
	tbl      *table.Table
	snapshot int64    // 0: the table has no snapshot yet
	files    []string // local paths
	// dataFiles maps a local path to its data file.
	dataFiles map[string]iceberg.DataFile
	has       map[string]bool // columns some data file has
	db        *sql.DB
	cleanup   []string // staged copies of remote files
}

// OpenDLQ plans a scan of the dead-letter table's current snapshot. Files
// that are not local are staged under tmpDir through the table's FileIO.
// The whole table is planned: filters run in DuckDB, which skips row
// groups by their statistics.
func OpenDLQ(ctx context.Context, cat *lake.Catalog, name, tmpDir string) (*DLQReader, error) {
	tbl, err := cat.LoadTable(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("load the dead-letter table %s: %w", name, err)
	}
	return openDLQTable(ctx, tbl, name, tmpDir)
}

func openDLQTable(ctx context.Context, tbl *table.Table, name, tmpDir string) (r *DLQReader, err error) {
	if kind := tbl.Properties()[lake.PropKind]; kind != lake.KindDLQ {
		return nil, fmt.Errorf("table %s is not a dead-letter table (%s is %q)", name, lake.PropKind, kind)
	}
	r = &DLQReader{table: name, tbl: tbl, dataFiles: map[string]iceberg.DataFile{}, has: map[string]bool{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close())
		}
	}()
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return r, nil
	}
	r.snapshot = snap.SnapshotID
	if r.files, err = stageFiles(ctx, tbl, snap.SnapshotID, nil, tmpDir, r.dataFiles, &r.cleanup); err != nil {
		return nil, err
	}
	if len(r.files) == 0 {
		return r, nil
	}
	if r.db, err = openDuck(ctx); err != nil {
		return nil, err
	}
	if r.has, err = columnsOf(ctx, r.db, r.files); err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", name, err)
	}
	return r, nil
}

// openDuck opens an in-memory DuckDB for one reader.
func openDuck(ctx context.Context) (*sql.DB, error) {
	conn, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "SET TimeZone = 'UTC'"); err != nil {
		return nil, errors.Join(fmt.Errorf("configure duckdb: %w", err), db.Close())
	}
	return db, nil
}

// stageFiles plans a scan of snapshot id of tbl (filtered by rowFilter
// when set) and returns the local path of each data file: local files as
// they are, remote ones downloaded under tmpDir (appended to cleanup).
// dataFiles, when not nil, receives local path -> data file.
func stageFiles(ctx context.Context, tbl *table.Table, id int64, opts []table.ScanOption, tmpDir string, dataFiles map[string]iceberg.DataFile, cleanup *[]string) ([]string, error) {
	name := tbl.Identifier()[len(tbl.Identifier())-1]
	tasks, err := tbl.Scan(append([]table.ScanOption{table.WithSnapshotID(id)}, opts...)...).PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan a scan of %s: %w", name, err)
	}
	var (
		fs    iceio.IO
		files []string
	)
	for _, t := range tasks {
		if len(t.DeleteFiles) > 0 {
			// eventlake's tables are copy-on-write; a delete file would be
			// another writer's, and ignoring it would show deleted rows.
			return nil, fmt.Errorf("table %s has delete files (%s): reading them is not supported", name, t.DeleteFiles[0].FilePath())
		}
		p, ok := lake.LocalPath(t.File.FilePath())
		if !ok {
			if fs == nil {
				if fs, err = tbl.FS(ctx); err != nil {
					return nil, fmt.Errorf("open the io of %s: %w", name, err)
				}
			}
			if p, err = lake.Download(fs, t.File.FilePath(), tmpDir); err != nil {
				return nil, err
			}
			*cleanup = append(*cleanup, p)
		}
		if dataFiles != nil {
			dataFiles[p] = t.File
		}
		files = append(files, p)
	}
	return files, nil
}

// removeStaged removes a staged copy.
func removeStaged(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// isNoSuchTable reports whether err says a table does not exist.
func isNoSuchTable(err error) bool { return errors.Is(err, icecat.ErrNoSuchTable) }

// Table is the table's name; Snapshot the snapshot read (0: none yet).
func (r *DLQReader) Table() string   { return r.table }
func (r *DLQReader) Snapshot() int64 { return r.snapshot }

// Close closes DuckDB and removes staged copies.
func (r *DLQReader) Close() error {
	var errs []error
	if r.db != nil {
		if err := r.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close duckdb: %w", err))
		}
	}
	for _, p := range r.cleanup {
		if err := removeStaged(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DLQGroup is one line of `dlq list`: dead letters of one reason, type,
// source, topic and status (pending or replayed).
type DLQGroup struct {
	Reason    string    `json:"reason"`
	Type      *string   `json:"type"`
	Source    *string   `json:"source"`
	Topic     string    `json:"topic"`
	Status    string    `json:"status"`
	Count     int64     `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// Status values of DLQGroup.
const (
	StatusPending  = "pending"
	StatusReplayed = "replayed"
)

// List counts the dead letters f selects by reason, type, source, topic
// and status.
func (r *DLQReader) List(ctx context.Context, f DLQFilter) ([]DLQGroup, error) {
	out := []DLQGroup{}
	if r.db == nil {
		return out, nil
	}
	where, args := f.Where()
	status := fmt.Sprintf("CASE WHEN %s IS NULL THEN '%s' ELSE '%s' END AS status", duck.QuoteIdent(lake.ColReplayID), StatusPending, StatusReplayed)
	keys := []string{duck.QuoteIdent(lake.ColReason), duck.QuoteIdent(dlqType), duck.QuoteIdent(dlqSource), duck.QuoteIdent(lake.ColKafkaTopic), "status"}
	q := fmt.Sprintf("SELECT %s, count(*), min(%s), max(%s) FROM (SELECT *, %s FROM (%s)%s) GROUP BY ALL ORDER BY count(*) DESC, %s",
		strings.Join(keys, ", "), duck.QuoteIdent(lake.ColIngestedAt), duck.QuoteIdent(lake.ColIngestedAt),
		status, r.selectSQL(), where, strings.Join(keys, ", "))
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("count dead letters of %s: %w", r.table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var g DLQGroup
		if err := rows.Scan(&g.Reason, &g.Type, &g.Source, &g.Topic, &g.Status, &g.Count, &g.FirstSeen, &g.LastSeen); err != nil {
			return nil, fmt.Errorf("count dead letters of %s: %w", r.table, err)
		}
		g.FirstSeen, g.LastSeen = g.FirstSeen.UTC(), g.LastSeen.UTC()
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count dead letters of %s: %w", r.table, err)
	}
	return out, nil
}

// DeadLetter is one row of the dead-letter table.
type DeadLetter struct {
	Raw, Key      []byte     `json:"-"` // MarshalJSON writes them
	EventID       *string    `json:"event_id"`
	Type          *string    `json:"type"`
	Source        *string    `json:"source"`
	Reason        string     `json:"reason"`
	Detail        string     `json:"detail"`
	Subject       *string    `json:"subject,omitempty"`
	SchemaVersion *int32     `json:"schema_version,omitempty"`
	Field         *string    `json:"field,omitempty"`
	Topic         string     `json:"kafka_topic"`
	Partition     int32      `json:"kafka_partition"`
	Offset        int64      `json:"kafka_offset"`
	KafkaTs       *time.Time `json:"kafka_timestamp"`
	Size          int64      `json:"size"`
	IngestedAt    time.Time  `json:"ingested_at"`
	ReplayID      *string    `json:"replay_id"`
	ReplayedAt    *time.Time `json:"replayed_at"`

	file string // local path of its data file
	row  int64  // position in that file
}

// Coords is the dead letter's topic/partition/offset (what --ids takes).
func (d *DeadLetter) Coords() string { return fmt.Sprintf("%s/%d/%d", d.Topic, d.Partition, d.Offset) }

// MarshalJSON adds the raw bytes and the key: as a string, and also as
// base64 when they are not UTF-8 (the string then has U+FFFD in place of
// the bytes that are not).
func (d *DeadLetter) MarshalJSON() ([]byte, error) {
	type plain DeadLetter
	v := struct {
		ID string `json:"id"`
		*plain
		Raw       *string `json:"raw"`
		RawBase64 *string `json:"raw_base64,omitempty"`
		Key       *string `json:"kafka_key"`
		KeyBase64 *string `json:"kafka_key_base64,omitempty"`
	}{ID: d.Coords(), plain: (*plain)(d)}
	v.Raw, v.RawBase64 = bytesJSON(d.Raw)
	v.Key, v.KeyBase64 = bytesJSON(d.Key)
	return json.Marshal(v)
}

func bytesJSON(b []byte) (s, b64 *string) {
	if b == nil {
		return nil, nil
	}
	str := string(b)
	if utf8.Valid(b) {
		return &str, nil
	}
	str = strings.ToValidUTF8(str, "\uFFFD")
	enc := base64.StdEncoding.EncodeToString(b)
	return &str, &enc
}

// deadLetterCols are every column a DeadLetter is scanned from (dest).
var deadLetterCols = []string{
	lake.ColRaw, lake.ColKey, dlqEventID, dlqType, dlqSource, lake.ColReason, lake.ColDetail, lake.ColSubject, lake.ColVersion,
	lake.ColField, lake.ColKafkaTopic, lake.ColKafkaPartition, lake.ColKafkaOffset, lake.ColKafkaTimestamp, lake.ColSize,
	lake.ColIngestedAt, lake.ColReplayID, lake.ColReplayedAt, dlqFile, dlqRowNum,
}

// replayCols are the columns a replay reads: what it checks again and
// writes, and where each row is. Not the key, the size, the replay
// columns, or the event id and source that DuckDB would take out of
// every row's raw bytes (a third of the scan's time).
var replayCols = []string{
	lake.ColRaw, lake.ColReason, lake.ColDetail, lake.ColSubject, lake.ColVersion, lake.ColField, lake.ColKafkaTopic,
	lake.ColKafkaPartition, lake.ColKafkaOffset, lake.ColKafkaTimestamp, lake.ColIngestedAt, dlqFile, dlqRowNum,
}

// dest is where column col (one of deadLetterCols) of a row is scanned to.
func (d *DeadLetter) dest(col string) any {
	switch col {
	case lake.ColRaw:
		return &d.Raw
	case lake.ColKey:
		return &d.Key
	case dlqEventID:
		return &d.EventID
	case dlqType:
		return &d.Type
	case dlqSource:
		return &d.Source
	case lake.ColReason:
		return &d.Reason
	case lake.ColDetail:
		return &d.Detail
	case lake.ColSubject:
		return &d.Subject
	case lake.ColVersion:
		return &d.SchemaVersion
	case lake.ColField:
		return &d.Field
	case lake.ColKafkaTopic:
		return &d.Topic
	case lake.ColKafkaPartition:
		return &d.Partition
	case lake.ColKafkaOffset:
		return &d.Offset
	case lake.ColKafkaTimestamp:
		return &d.KafkaTs
	case lake.ColSize:
		return &d.Size
	case lake.ColIngestedAt:
		return &d.IngestedAt
	case lake.ColReplayID:
		return &d.ReplayID
	case lake.ColReplayedAt:
		return &d.ReplayedAt
	case dlqFile:
		return &d.file
	case dlqRowNum:
		return &d.row
	}
	return nil
}

// scanDeadLetter scans a row of columns cols; the fields of other columns
// are left zero.
func scanDeadLetter(rows *sql.Rows, cols []string) (*DeadLetter, error) {
	d := &DeadLetter{}
	dest := make([]any, len(cols))
	for i, c := range cols {
		if dest[i] = d.dest(c); dest[i] == nil {
			return nil, fmt.Errorf("no dead-letter field for column %s", c)
		}
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, err
	}
	d.IngestedAt = d.IngestedAt.UTC()
	if d.KafkaTs != nil {
		*d.KafkaTs = d.KafkaTs.UTC()
	}
	if d.ReplayedAt != nil {
		*d.ReplayedAt = d.ReplayedAt.UTC()
	}
	return d, nil
}

// Show returns how many dead letters f selects and the newest limit of
// them (0: all).
func (r *DLQReader) Show(ctx context.Context, f DLQFilter, limit int) (int64, []*DeadLetter, error) {
	out := []*DeadLetter{}
	if r.db == nil {
		return 0, out, nil
	}
	where, args := f.Where()
	src := r.selectSQL()
	var total int64
	if err := r.db.QueryRowContext(ctx, "SELECT count(*) FROM ("+src+")"+where, args...).Scan(&total); err != nil {
		return 0, nil, fmt.Errorf("count dead letters of %s: %w", r.table, err)
	}
	order := fmt.Sprintf("%s DESC, %s, %s, %s DESC", duck.QuoteIdent(lake.ColIngestedAt), duck.QuoteIdent(lake.ColKafkaTopic),
		duck.QuoteIdent(lake.ColKafkaPartition), duck.QuoteIdent(lake.ColKafkaOffset))
	err := r.each(ctx, f, deadLetterCols, order, limit, func(d *DeadLetter) error {
		out = append(out, d)
		return nil
	})
	return total, out, err
}

// each calls fn with every dead letter f selects, in order (an ORDER BY
// list), at most limit of them (0: all), with the fields of columns cols
// (of deadLetterCols) set.
func (r *DLQReader) each(ctx context.Context, f DLQFilter, cols []string, order string, limit int, fn func(*DeadLetter) error) error {
	if r.db == nil {
		return nil
	}
	where, args := f.Where()
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = duck.QuoteIdent(c)
	}
	q := fmt.Sprintf("SELECT %s FROM (%s)%s ORDER BY %s", strings.Join(quoted, ", "), r.selectSQL(), where, order)
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read dead letters of %s: %w", r.table, err)
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDeadLetter(rows, cols)
		if err != nil {
			return fmt.Errorf("read dead letters of %s: %w", r.table, err)
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read dead letters of %s: %w", r.table, err)
	}
	return nil
}
