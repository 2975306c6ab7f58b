package main

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/lake"
)

// runDLQ reads the dead-letter table: `dlq list` counts dead letters by
// reason, type, source and topic; `dlq show` prints them with their raw
// bytes. Both only read: the lake may be in use by a running dev or ingest.
func runDLQ(ctx context.Context, args []string, env *runEnv) (err error) {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "list", "show":
	case "":
		if len(args) > 0 && isHelpFlag(args[0]) {
			sub = "show" // its flags are list's and --limit
			break
		}
		return usageError{"dlq: a subcommand is required: list or show"}
	default:
		return usageError{fmt.Sprintf("dlq: unknown subcommand %q (want list or show)", sub)}
	}
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, false, false, "")
	reasons := fs.String("reason", "", "only these reasons, comma separated (e.g. not_json,schema_violation)")
	types := fs.String("type", "", "only these event types (the envelope's type, or the schema subject), comma separated")
	topics := fs.String("topic", "", "only these Kafka topics, comma separated")
	sinceS := fs.String("since", "", "only dead letters ingested at or after this time (RFC 3339, now, or now-DURATION such as now-1h)")
	untilS := fs.String("until", "", "only dead letters ingested before this time (RFC 3339, now, or now-DURATION)")
	ids := fs.String("ids", "", "only these dead letters, comma separated: event ids (as the raw bytes carry them) or Kafka coordinates topic/partition/offset")
	asJSON := fs.Bool("json", false, "print one JSON document")
	limit := new(int)
	if sub == "show" {
		fs.IntVar(limit, "limit", 20, "most dead letters to print, newest first (0: all)")
	}
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	now := time.Now()
	f := dlqFilter{Reasons: splitList(*reasons), Types: splitList(*types), Topics: splitList(*topics), IDs: splitList(*ids)}
	if f.Since, err = parseWhen(*sinceS, now); err != nil {
		return usageError{fmt.Sprintf("dlq %s: --since %v", sub, err)}
	}
	if f.Until, err = parseWhen(*untilS, now); err != nil {
		return usageError{fmt.Sprintf("dlq %s: --until %v", sub, err)}
	}
	if *limit < 0 {
		return usageError{"dlq show: --limit must be 0 (all) or more"}
	}
	cfg, _, err := loadConfig(&cf, env)
	if err != nil {
		return err
	}
	if err := cfg.Ingest.Validate(); err != nil {
		return err
	}
	cat, err := openLake(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer cat.Close()
	r, err := openDLQ(ctx, cat, cfg.Ingest.DLQTable, filepath.Join(cfg.DataDir, "tmp", "dlq"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, r.close()) }()
	if sub == "list" {
		groups, err := r.list(ctx, f)
		if err != nil {
			return err
		}
		return printDLQGroups(env.stdout, r, groups, *asJSON)
	}
	total, rows, err := r.show(ctx, f, *limit)
	if err != nil {
		return err
	}
	return printDeadLetters(env.stdout, r, total, rows, *asJSON)
}

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

// parseWhen parses --since/--until: RFC 3339, "now", or "now-DURATION"
// (a Go duration, plus d for days: now-1h, now-90m, now-7d). "" is the
// zero time (no bound).
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "now"); ok {
		if rest == "" {
			return now, nil
		}
		sign := time.Duration(1)
		switch rest[0] {
		case '-':
			sign = -1
		case '+':
		default:
			return time.Time{}, fmt.Errorf("%q: want now-DURATION, e.g. now-1h", s)
		}
		d, err := parseDuration(rest[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: %w", s, err)
		}
		return now.Add(sign * d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-11-26T00:00:00Z), now or now-DURATION (now-1h)", s)
	}
	return t, nil
}

// parseDuration is time.ParseDuration plus whole days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("duration %q: want a whole number of days, e.g. 7d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("duration %q: want e.g. 30m, 1h or 7d", s)
	}
	return d, nil
}

// dlqFilter selects dead letters. Empty fields select everything.
type dlqFilter struct {
	Reasons, Types, Topics []string
	// IDs are event ids or topic/partition/offset coordinates.
	IDs          []string
	Since, Until time.Time // on ingested_at; zero: no bound
}

// Columns derived from the raw bytes: the envelope fields a dead letter
// still carries when its value is UTF-8 JSON (the table has no event_id,
// type or source of its own: the message was rejected before they were
// known to be valid).
const (
	dlqEventID = lake.ColEventID
	dlqType    = lake.ColType
	dlqSource  = lake.ColSource
)

// dlqSelect is the one mapping of the dead-letter table's columns to what
// list and show read, with the envelope fields taken from the raw bytes.
// A column that older data files lack reads as null (union_by_name).
func dlqSelect(files []string) string {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = duck.QuoteString(f)
	}
	env := func(field string) string {
		// decode fails on bytes that are not UTF-8, json_extract_string on
		// text that is not JSON: try turns both into null. decode has a
		// try of its own: DuckDB computes it once for the three fields,
		// outside the outer try.
		return fmt.Sprintf("try(json_extract_string(try(decode(%s)), %s))", duck.QuoteIdent(lake.ColRaw), duck.QuoteString("$."+field))
	}
	cols := []string{
		lake.ColRaw, lake.ColReason, lake.ColDetail, lake.ColKafkaTopic, lake.ColKafkaPartition, lake.ColKafkaOffset,
		lake.ColKafkaTimestamp, lake.ColKey, lake.ColSize, lake.ColIngestedAt, lake.ColSubject, lake.ColVersion, lake.ColField,
	}
	for i, c := range cols {
		cols[i] = duck.QuoteIdent(c)
	}
	cols = append(cols,
		env("event_id")+" AS "+duck.QuoteIdent(dlqEventID),
		fmt.Sprintf("coalesce(nullif(%s, ''), %s) AS %s", duck.QuoteIdent(lake.ColSubject), env("type"), duck.QuoteIdent(dlqType)),
		env("source")+" AS "+duck.QuoteIdent(dlqSource),
	)
	return fmt.Sprintf("SELECT %s FROM read_parquet([%s], union_by_name = true, hive_partitioning = false)",
		strings.Join(cols, ", "), strings.Join(q, ", "))
}

// where is f as a WHERE clause over dlqSelect's columns, with its
// arguments.
func (f dlqFilter) where() (string, []any) {
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
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// dlqReader reads one snapshot of the dead-letter table with DuckDB.
type dlqReader struct {
	table    string
	snapshot int64 // 0: the table has no snapshot yet
	files    []string
	db       *sql.DB
	cleanup  []string // staged copies of remote files
}

// openDLQ plans a scan of the dead-letter table's current snapshot. Files
// that are not local are staged under tmpDir through the table's FileIO.
// The whole table is planned: filters run in DuckDB, which skips row
// groups by their statistics.
func openDLQ(ctx context.Context, cat *lake.Catalog, name, tmpDir string) (r *dlqReader, err error) {
	tbl, err := cat.LoadTable(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("load the dead-letter table %s: %w", name, err)
	}
	if kind := tbl.Properties()[lake.PropKind]; kind != lake.KindDLQ {
		return nil, fmt.Errorf("table %s is not a dead-letter table (%s is %q)", name, lake.PropKind, kind)
	}
	r = &dlqReader{table: name}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.close())
		}
	}()
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return r, nil
	}
	r.snapshot = snap.SnapshotID
	tasks, err := tbl.Scan(table.WithSnapshotID(snap.SnapshotID)).PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan a scan of %s: %w", name, err)
	}
	var fs iceio.IO
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
			r.cleanup = append(r.cleanup, p)
		}
		r.files = append(r.files, p)
	}
	if len(r.files) == 0 {
		return r, nil
	}
	conn, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	r.db = sql.OpenDB(conn)
	r.db.SetMaxOpenConns(1)
	if _, err := r.db.ExecContext(ctx, "SET TimeZone = 'UTC'"); err != nil {
		return nil, fmt.Errorf("configure duckdb: %w", err)
	}
	return r, nil
}

func (r *dlqReader) close() error {
	var errs []error
	if r.db != nil {
		if err := r.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close duckdb: %w", err))
		}
	}
	for _, p := range r.cleanup {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dlqGroup is one line of `dlq list`.
type dlqGroup struct {
	Reason    string    `json:"reason"`
	Type      *string   `json:"type"`
	Source    *string   `json:"source"`
	Topic     string    `json:"topic"`
	Count     int64     `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

func (r *dlqReader) list(ctx context.Context, f dlqFilter) ([]dlqGroup, error) {
	out := []dlqGroup{}
	if r.db == nil {
		return out, nil
	}
	where, args := f.where()
	keys := []string{duck.QuoteIdent(lake.ColReason), duck.QuoteIdent(dlqType), duck.QuoteIdent(dlqSource), duck.QuoteIdent(lake.ColKafkaTopic)}
	q := fmt.Sprintf("SELECT %s, count(*), min(%s), max(%s) FROM (%s)%s GROUP BY ALL ORDER BY count(*) DESC, %s",
		strings.Join(keys, ", "), duck.QuoteIdent(lake.ColIngestedAt), duck.QuoteIdent(lake.ColIngestedAt),
		dlqSelect(r.files), where, strings.Join(keys, ", "))
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("count dead letters of %s: %w", r.table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var g dlqGroup
		if err := rows.Scan(&g.Reason, &g.Type, &g.Source, &g.Topic, &g.Count, &g.FirstSeen, &g.LastSeen); err != nil {
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

// deadLetter is one row of `dlq show`.
type deadLetter struct {
	raw, key      []byte
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
}

// coords is the dead letter's topic/partition/offset (what --ids takes).
func (d *deadLetter) coords() string { return fmt.Sprintf("%s/%d/%d", d.Topic, d.Partition, d.Offset) }

// MarshalJSON adds the raw bytes and the key: as a string, and also as
// base64 when they are not UTF-8 (the string then has U+FFFD in place of
// the bytes that are not).
func (d *deadLetter) MarshalJSON() ([]byte, error) {
	type plain deadLetter
	v := struct {
		ID string `json:"id"`
		*plain
		Raw       *string `json:"raw"`
		RawBase64 *string `json:"raw_base64,omitempty"`
		Key       *string `json:"kafka_key"`
		KeyBase64 *string `json:"kafka_key_base64,omitempty"`
	}{ID: d.coords(), plain: (*plain)(d)}
	v.Raw, v.RawBase64 = bytesJSON(d.raw)
	v.Key, v.KeyBase64 = bytesJSON(d.key)
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

// show returns how many dead letters f selects and the newest limit of
// them (0: all).
func (r *dlqReader) show(ctx context.Context, f dlqFilter, limit int) (int64, []*deadLetter, error) {
	out := []*deadLetter{}
	if r.db == nil {
		return 0, out, nil
	}
	where, args := f.where()
	src := dlqSelect(r.files)
	var total int64
	if err := r.db.QueryRowContext(ctx, "SELECT count(*) FROM ("+src+")"+where, args...).Scan(&total); err != nil {
		return 0, nil, fmt.Errorf("count dead letters of %s: %w", r.table, err)
	}
	cols := []string{
		lake.ColRaw, lake.ColKey, dlqEventID, dlqType, dlqSource, lake.ColReason, lake.ColDetail, lake.ColSubject, lake.ColVersion,
		lake.ColField, lake.ColKafkaTopic, lake.ColKafkaPartition, lake.ColKafkaOffset, lake.ColKafkaTimestamp, lake.ColSize, lake.ColIngestedAt,
	}
	for i, c := range cols {
		cols[i] = duck.QuoteIdent(c)
	}
	q := fmt.Sprintf("SELECT %s FROM (%s)%s ORDER BY %s DESC, %s, %s, %s DESC", strings.Join(cols, ", "), src, where,
		duck.QuoteIdent(lake.ColIngestedAt), duck.QuoteIdent(lake.ColKafkaTopic), duck.QuoteIdent(lake.ColKafkaPartition), duck.QuoteIdent(lake.ColKafkaOffset))
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, nil, fmt.Errorf("read dead letters of %s: %w", r.table, err)
	}
	defer rows.Close()
	for rows.Next() {
		d := &deadLetter{}
		if err := rows.Scan(&d.raw, &d.key, &d.EventID, &d.Type, &d.Source, &d.Reason, &d.Detail, &d.Subject, &d.SchemaVersion,
			&d.Field, &d.Topic, &d.Partition, &d.Offset, &d.KafkaTs, &d.Size, &d.IngestedAt); err != nil {
			return 0, nil, fmt.Errorf("read dead letters of %s: %w", r.table, err)
		}
		d.IngestedAt = d.IngestedAt.UTC()
		if d.KafkaTs != nil {
			*d.KafkaTs = d.KafkaTs.UTC()
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("read dead letters of %s: %w", r.table, err)
	}
	return total, out, nil
}

// safe returns s as it is when every character prints, else quoted in Go
// syntax: a dead letter's bytes never reach a terminal as control
// characters.
func safe(s string) string {
	for _, c := range s {
		if c == utf8.RuneError || (!unicode.IsPrint(c) && c != ' ') {
			return strconv.Quote(s)
		}
	}
	return s
}

func safePtr(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return safe(*s)
}

// writeDLQJSON writes the one JSON document of list and show: the table,
// the snapshot read (a string: a 19-digit id loses digits as a JSON number
// in JavaScript and jq), the total and the rows under key.
func writeDLQJSON(w io.Writer, r *dlqReader, total int64, key string, rows any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"table": r.table, "snapshot_id": strconv.FormatInt(r.snapshot, 10), "total": total, key: rows})
}

func printDLQGroups(w io.Writer, r *dlqReader, groups []dlqGroup, asJSON bool) error {
	var total int64
	for _, g := range groups {
		total += g.Count
	}
	if asJSON {
		return writeDLQJSON(w, r, total, "groups", groups)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "reason\ttype\tsource\ttopic\tcount\tfirst seen\tlast seen")
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", safe(g.Reason), safePtr(g.Type), safePtr(g.Source), safe(g.Topic), g.Count,
			g.FirstSeen.Format(time.RFC3339), g.LastSeen.Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d dead letters in %s (snapshot %d)\n", total, r.table, r.snapshot)
	return err
}

func printDeadLetters(w io.Writer, r *dlqReader, total int64, rows []*deadLetter, asJSON bool) error {
	if asJSON {
		return writeDLQJSON(w, r, total, "dead_letters", rows)
	}
	for _, d := range rows {
		fmt.Fprintf(w, "%s  %s  %s\n", safe(d.coords()), d.IngestedAt.Format(time.RFC3339Nano), safe(d.Reason))
		fmt.Fprintf(w, "  event_id: %s  type: %s  source: %s\n", safePtr(d.EventID), safePtr(d.Type), safePtr(d.Source))
		if d.Subject != nil && *d.Subject != "" {
			v := "-"
			if d.SchemaVersion != nil {
				v = strconv.Itoa(int(*d.SchemaVersion))
			}
			fmt.Fprintf(w, "  schema: %s version %s at %s\n", safe(*d.Subject), v, safePtr(d.Field))
		}
		fmt.Fprintf(w, "  detail: %s\n", safe(d.Detail))
		if d.key != nil {
			fmt.Fprintf(w, "  key: %s\n", strconv.Quote(string(d.key)))
		}
		if d.raw == nil {
			fmt.Fprintf(w, "  raw: null (tombstone)\n\n")
			continue
		}
		fmt.Fprintf(w, "  raw (%d bytes): %s\n\n", d.Size, strconv.Quote(string(d.raw)))
	}
	_, err := fmt.Fprintf(w, "%d of %d dead letters in %s (snapshot %d)\n", len(rows), total, r.table, r.snapshot)
	return err
}
