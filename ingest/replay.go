package ingest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/internal/eventtime"
	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// DLQ replay: dead letters go back to their tables once they are valid
// (a producer's bug understood, a schema version that accepts them
// registered). A replay
//
//  1. selects pending dead letters by a filter and checks each again with
//     the current schemas, as ingest would;
//  2. looks up the accepted events' ids in their tables: an event already
//     there (ingested since, or committed by an earlier replay that was cut
//     off) is not written again;
//  3. commits the others to their tables with their original Kafka
//     coordinates and replay_id set (task replay, one snapshot per table);
//  4. rewrites the dead-letter rows it resolved with replay_id and
//     replayed_at, and those still invalid with their new reason (task
//     replay-mark; the snapshot summary carries the replay's record);
//  5. has the read models of the minutes it touched re-aggregated;
//  6. appends its record to the replay log (task replay-record).
//
// Every step is a commit of the lake's one protocol, each with its
// failpoints. A crash between steps leaves nothing half done: after 3 the
// next replay finds the events present and resolves their rows; after 4
// Recover (run before every replay) finds the mark's record missing from
// the log, re-aggregates its minutes and appends it. Two replays of the
// same rows at once cannot both write: step 3 refuses to commit on top of
// another replay's commit that it did not see in step 2, and starts over.

// Commit tasks of a replay (failpoints: lake/before-commit/replay, ...).
const (
	TaskReplay       = "replay"
	TaskReplayMark   = "replay-mark"
	TaskReplayRecord = "replay-record"
)

// Snapshot summary keys of a replay's commits.
const (
	SummaryReplayID = "eventlake.replay-id"
	// SummaryReplay holds the replay's record (JSON) on its replay-mark
	// snapshot, for Recover.
	SummaryReplay = "eventlake.replay"
)

// Triggers of a replay.
const (
	TriggerManual = "manual"
	TriggerAuto   = "auto"
)

// RequestedByAuto is who requested the replays a registration starts.
const RequestedByAuto = "auto"

// ReplayConfig is the dlq section of the configuration.
type ReplayConfig struct {
	// AutoReplay: when a new version of a subject is registered, the
	// ingest service replays the subject's pending dead letters whose
	// reason a schema can change (schema_violation, unknown_type, ...).
	// Default true.
	AutoReplay *bool `yaml:"auto_replay"`
	// AutoReplayDelay is how long after it sees a registration the
	// service waits before replaying: dead letters ingest read just
	// before the registration are committed by then. Default 10s.
	AutoReplayDelay time.Duration `yaml:"auto_replay_delay"`
	// ReplaysTable is the replay log. Default dlq_replays.
	ReplaysTable string `yaml:"replays_table"`
	// BatchRows bounds the dead letters one replay holds: a larger
	// selection is replayed in batches, each with its own record. Each
	// batch reads the dead-letter table and looks its events up again and
	// re-aggregates its minutes, so small batches cost time (a million
	// replays in 19 s as one batch, in 58 s as eleven); they bound the Go
	// side's memory (ids and places, ~100 B a row), not DuckDB's scan of
	// the table. Default 1,000,000.
	BatchRows int `yaml:"batch_rows"`
}

// Defaults fills unset fields.
func (c *ReplayConfig) Defaults() {
	if c.AutoReplay == nil {
		on := true
		c.AutoReplay = &on
	}
	if c.AutoReplayDelay == 0 {
		c.AutoReplayDelay = 10 * time.Second
	}
	if c.ReplaysTable == "" {
		c.ReplaysTable = lake.TableDLQReplays
	}
	if c.BatchRows == 0 {
		c.BatchRows = 1_000_000
	}
}

// Validate checks the configuration; call Defaults first.
func (c *ReplayConfig) Validate() error {
	if c.BatchRows < 1 {
		return fmt.Errorf("dlq.batch_rows %d must be positive", c.BatchRows)
	}
	if c.AutoReplayDelay < 0 {
		return fmt.Errorf("dlq.auto_replay_delay %v is negative", c.AutoReplayDelay)
	}
	if !lake.ValidTableName(c.ReplaysTable) {
		return fmt.Errorf("dlq.replays_table %q: use letters, digits and _ (starting with a letter)", c.ReplaysTable)
	}
	return nil
}

// AutoReplayReasons are the reasons a newly registered schema version can
// change: the rows an automatic replay selects.
var AutoReplayReasons = []string{
	string(schema.ReasonSchema), string(schema.ReasonUnknownType), string(schema.ReasonOutOfRange),
	string(schema.ReasonUnknownVersion), string(schema.ReasonUnknownID), string(schema.ReasonSchemaMismatch),
}

// ReplayDeps are a Replayer's dependencies.
type ReplayDeps struct {
	Catalog *lake.Catalog
	Layout  *lake.Layout
	Codecs  schema.Codecs
	Logger  *slog.Logger
	// Now is the clock of replayed_at and ingested_at.
	Now        func() time.Time
	Failpoints *failpoint.Set
	// TmpDir stages remote data files for DuckDB.
	TmpDir string
	// Reaggregate recomputes the read models of a raw table's minutes
	// (nil: the process has none to recompute).
	Reaggregate func(ctx context.Context, table string, minutes []time.Time) error
}

// Replayer replays dead letters. Safe for concurrent use: concurrent
// replays of the same rows commit each event once.
type Replayer struct {
	cfg  Config
	rcfg ReplayConfig
	deps ReplayDeps
	com  *lake.Committer
	log  *slog.Logger
}

// NewReplayer returns a replayer of the dead-letter table of cfg.
func NewReplayer(cfg Config, rcfg ReplayConfig, deps ReplayDeps) *Replayer {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	com := lake.NewCommitter(deps.Catalog, lake.CommitConfig{Writer: lake.WriterName("replay"), MaxFailures: 6},
		lake.CommitHooks{}, deps.Logger, deps.Failpoints)
	return &Replayer{cfg: cfg, rcfg: rcfg, deps: deps, com: com, log: deps.Logger}
}

// ReplayRequest is what to replay.
type ReplayRequest struct {
	Filter DLQFilter
	// RequestedBy names who asked (required): a person, or auto.
	RequestedBy string
	Trigger     string // TriggerManual (default) or TriggerAuto
	// DryRun checks and counts, and changes nothing.
	DryRun bool
	// Limit bounds the rows selected (0: all), in the order of
	// cursorOrder: ReplayAll replays a large backlog in batches of this many.
	Limit int
}

// ReplayReport says what a replay did (or, dry, would do).
type ReplayReport struct {
	ReplayID    string    `json:"replay_id"`
	RequestedBy string    `json:"requested_by"`
	Trigger     string    `json:"trigger"`
	RequestedAt time.Time `json:"requested_at"`
	FinishedAt  time.Time `json:"finished_at"`
	DryRun      bool      `json:"dry_run"`
	Filter      DLQFilter `json:"filter"`
	// Selected = Replayed + StillInvalid + AlreadyPresent.
	Selected       int64 `json:"selected"`
	Replayed       int64 `json:"replayed"`
	StillInvalid   int64 `json:"still_invalid"`
	AlreadyPresent int64 `json:"already_present"`
	// Tables: events committed per table; Invalid: rows still invalid by
	// their new reason.
	Tables  map[string]int64 `json:"tables"`
	Invalid map[string]int64 `json:"still_invalid_by_reason"`
	// Snapshots are the snapshots the replay made, per table (as strings:
	// 19-digit ids lose digits as JSON numbers).
	Snapshots map[string]string `json:"snapshot_ids"`
	// Minutes are the event-time minutes (unix minutes) of the replayed
	// events per raw table: what the read models re-aggregate.
	Minutes map[string][]int64 `json:"minutes,omitempty"`

	// last is the coordinates of the last row selected.
	last *coordsCursor
	// interrupted counts, per replay and table, the events found present
	// because an earlier replay committed them and stopped before its end.
	interrupted map[string]map[string]int64
}

// errRaced means another replay committed to a table this replay was
// about to commit to after this one looked its events up, or the
// compactor rewrote dead-letter files this replay was about to mark: the
// replay starts over (it finds what the other one committed).
var errRaced = errors.New("raced with another change to the same rows")

// maxReplayAttempts bounds how often a replay starts over after a race.
const maxReplayAttempts = 5

// Replay replays the pending dead letters req selects.
func (r *Replayer) Replay(ctx context.Context, req ReplayRequest) (*ReplayReport, error) {
	if strings.TrimSpace(req.RequestedBy) == "" {
		return nil, errors.New("replay: who requests it is required (--requested-by)")
	}
	if req.Trigger == "" {
		req.Trigger = TriggerManual
	}
	req.Filter.Pending = true
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	if !req.DryRun {
		if err := r.Recover(ctx); err != nil {
			return nil, err
		}
	}
	rep := &ReplayReport{ReplayID: id.String(), RequestedBy: req.RequestedBy, Trigger: req.Trigger, DryRun: req.DryRun,
		RequestedAt: r.deps.Now().UTC(), Filter: req.Filter}
	for attempt := 1; ; attempt++ {
		err := r.attempt(ctx, req, rep)
		if err == nil {
			break
		}
		if !errors.Is(err, errRaced) || attempt >= maxReplayAttempts {
			return nil, fmt.Errorf("replay %s: %w", rep.ReplayID, err)
		}
		r.log.Info("replay raced, starting over", logkey.ReplayID, rep.ReplayID, logkey.Attempt, attempt, logkey.Err, err)
	}
	if req.DryRun || rep.Selected == 0 {
		rep.FinishedAt = r.deps.Now().UTC()
		return rep, nil
	}
	if err := r.finish(ctx, rep); err != nil {
		return nil, err
	}
	if err := r.logInterrupted(ctx, rep.interrupted); err != nil {
		return nil, err
	}
	r.log.Info("dead letters replayed", logkey.ReplayID, rep.ReplayID, "requested_by", rep.RequestedBy, "trigger", rep.Trigger,
		"selected", rep.Selected, "replayed", rep.Replayed, "still_invalid", rep.StillInvalid, "already_present", rep.AlreadyPresent)
	return rep, nil
}

// ReplayAll replays what req selects in batches of at most batch rows
// (each a replay of its own, with its own record), so that a backlog of
// millions is replayed in bounded memory; a dry run is one pass over all.
// It returns the report of every batch.
func (r *Replayer) ReplayAll(ctx context.Context, req ReplayRequest, batch int) ([]*ReplayReport, error) {
	if req.DryRun || batch <= 0 {
		rep, err := r.Replay(ctx, req)
		if err != nil {
			return nil, err
		}
		return []*ReplayReport{rep}, nil
	}
	var out []*ReplayReport
	req.Limit = batch
	for {
		rep, err := r.Replay(ctx, req)
		if err != nil {
			return out, err
		}
		out = append(out, rep)
		if rep.Selected < int64(batch) || rep.last == nil {
			return out, nil
		}
		req.Filter.after = rep.last
	}
}

// item is one selected dead letter, as pass 1 classified it.
type item struct {
	table   string // accepted: its raw table
	eventID string
	ts      int64 // event time, micros
	// outcome
	accepted, present bool
	by                string        // present: the replay that committed it ("" for ingest)
	derr              *schema.Error // still invalid: the new reason
	// changed: still invalid, with another reason, detail, version or
	// field than the row holds (the row is rewritten)
	changed bool
	file    string // local path of its dead-letter file
	row     int64
}

// items are the selected dead letters, in the order read. They grow by
// chunks: growing one slice of a million items by doubling copied them
// over and over into fresh memory (4 s of a 21 s replay of a million
// dead letters, most of it in page faults).
type items struct {
	chunks [][]item
	n      int
}

const itemChunk = 1 << 16

// add appends it. The first chunk grows as a slice does (a small replay
// stays small), the others are allocated whole.
func (l *items) add(it item) {
	if len(l.chunks) == 0 || len(l.chunks[len(l.chunks)-1]) == itemChunk {
		var c []item
		if len(l.chunks) > 0 {
			c = make([]item, 0, itemChunk)
		}
		l.chunks = append(l.chunks, c)
	}
	c := &l.chunks[len(l.chunks)-1]
	*c = append(*c, it)
	l.n++
}

func (l *items) len() int { return l.n }

// at returns item i (0 <= i < len()).
func (l *items) at(i int) *item { return &l.chunks[i/itemChunk][i%itemChunk] }

// attempt runs one pass of a replay; errRaced asks for another.
func (r *Replayer) attempt(ctx context.Context, req ReplayRequest, rep *ReplayReport) (err error) {
	*rep = ReplayReport{ReplayID: rep.ReplayID, RequestedBy: rep.RequestedBy, Trigger: rep.Trigger, DryRun: rep.DryRun,
		RequestedAt: rep.RequestedAt, Filter: rep.Filter, Tables: map[string]int64{}, Invalid: map[string]int64{},
		Snapshots: map[string]string{}, Minutes: map[string][]int64{}, interrupted: map[string]map[string]int64{}}
	cat := r.deps.Catalog
	dlqTbl, err := cat.LoadTable(ctx, r.cfg.DLQTable)
	if err != nil {
		return fmt.Errorf("load the dead-letter table %s: %w", r.cfg.DLQTable, err)
	}
	if !req.DryRun {
		if dlqTbl, err = cat.Evolve(ctx, dlqTbl, lake.DLQReplayFields(), nil); err != nil {
			return fmt.Errorf("add the replay columns to %s: %w", r.cfg.DLQTable, err)
		}
	}
	rd, err := openDLQTable(ctx, dlqTbl, r.cfg.DLQTable, r.deps.TmpDir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, rd.Close()) }()
	// One order for both passes, and the cursor of ReplayAll's batches.
	var cols []string
	for _, c := range cursorOrder {
		cols = append(cols, duck.QuoteIdent(c))
	}
	order := strings.Join(cols, ", ")

	// Pass 1: check every selected row again.
	dec := schema.NewDecoder(r.cfg.Contract, r.deps.Codecs)
	var ev schema.Event
	var items items
	apps := map[string]*schema.Appender{}
	err = rd.each(ctx, req.Filter, replayCols, order, req.Limit, func(d *DeadLetter) error {
		rep.last = &coordsCursor{ingested: d.IngestedAt, topic: d.Topic, partition: d.Partition, offset: d.Offset}
		it := item{file: d.file, row: d.row}
		if n := items.len(); n > 0 && items.at(n-1).file == d.file {
			it.file = items.at(n - 1).file // rows come by file: one copy of each path
		}
		derr := dec.Decode(d.Raw, recordMicros(d), &ev)
		switch {
		case derr != nil && derr.Unavailable != nil:
			return fmt.Errorf("check %s: the schema registry cannot be asked: %w", d.Coords(), derr.Unavailable)
		case derr != nil:
			it.derr = derr
			it.changed = string(derr.Reason) != d.Reason || derr.Detail != d.Detail || derr.Pointer != deref(d.Field) ||
				derr.Subject != deref(d.Subject) || int32(max(derr.Version, 0)) != deref(d.SchemaVersion)
		default:
			tbl, ok := r.deps.Layout.TableFor(d.Topic)
			if !ok {
				it.derr = &schema.Error{Reason: schema.Reason(d.Reason),
					Detail: fmt.Sprintf("topic %s is not taken by ingest (ingest.topics, ingest.topic_pattern): its events have no table", d.Topic)}
				break
			}
			if cerr, err := r.conflict(ctx, apps, tbl, ev.Version); err != nil {
				return err
			} else if cerr != nil {
				it.derr = cerr
				it.changed = string(cerr.Reason) != d.Reason || cerr.Detail != d.Detail
				break
			}
			it.accepted, it.table, it.eventID, it.ts = true, tbl, string(ev.EventID), ev.TsMicros
		}
		items.add(it)
		return nil
	})
	if err != nil {
		return err
	}
	rep.Selected = int64(items.len())
	if items.len() == 0 {
		return nil
	}

	// Which accepted events are in their tables already?
	base, err := r.lookUp(ctx, &items, rep.ReplayID)
	if err != nil {
		return err
	}
	for i := range items.len() {
		it := items.at(i)
		switch {
		case it.derr != nil:
			rep.StillInvalid++
			rep.Invalid[string(it.derr.Reason)]++
		case it.present:
			rep.AlreadyPresent++
			if it.by != "" {
				if rep.interrupted[it.by] == nil {
					rep.interrupted[it.by] = map[string]int64{}
				}
				rep.interrupted[it.by][it.table]++
			}
		default:
			rep.Replayed++
			rep.Tables[it.table]++
			m := eventtime.FloorDiv(it.ts, 60e6)
			if ms := rep.Minutes[it.table]; len(ms) == 0 || ms[len(ms)-1] != m {
				rep.Minutes[it.table] = append(ms, m)
			}
		}
	}
	for t, ms := range rep.Minutes {
		slices.Sort(ms)
		rep.Minutes[t] = slices.Compact(ms)
	}
	if req.DryRun {
		return nil
	}

	// Pass 2: write the events to replay, then commit them per table.
	if rep.Replayed > 0 {
		if err := r.write(ctx, rd, req.Filter, order, req.Limit, &items, base, rep); err != nil {
			return err
		}
	}
	return r.mark(ctx, dlqTbl, rd, &items, rep)
}

// conflict returns the schema_conflict error of an event of version v
// whose columns table name types differently (ingest dead-letters such
// events too), or nil. apps caches an appender per table (nil: the table
// does not exist yet).
func (r *Replayer) conflict(ctx context.Context, apps map[string]*schema.Appender, name string, v *schema.TypeVersion) (*schema.Error, error) {
	if v == nil {
		return nil, nil
	}
	app, ok := apps[name]
	if !ok {
		tbl, err := r.deps.Catalog.LoadTable(ctx, name)
		switch {
		case isNoSuchTable(err):
		case err != nil:
			return nil, fmt.Errorf("load %s: %w", name, err)
		default:
			sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
			if err != nil {
				return nil, err
			}
			if app, err = schema.NewAppender(sc); err != nil {
				return nil, fmt.Errorf("table %s: %w", name, err)
			}
		}
		apps[name] = app
	}
	if app == nil {
		return nil, nil
	}
	if _, cerr := app.Bind(v); cerr != nil {
		return conflictError(v, cerr), nil
	}
	return nil, nil
}

// recordMicros is the Kafka timestamp a dead letter was read with (the
// contract's future/too-old checks are relative to it).
func recordMicros(d *DeadLetter) int64 {
	if d.KafkaTs != nil {
		return d.KafkaTs.UnixMicro()
	}
	return d.IngestedAt.UnixMicro()
}

// lookUp marks the accepted items whose event id their table holds (or an
// earlier item of the selection has), and returns the snapshot of each
// table it looked at (0: the table has none yet). Events that this replay
// committed in an attempt that raced are not present: they count as
// replayed, and write skips them.
func (r *Replayer) lookUp(ctx context.Context, items *items, replayID string) (map[string]int64, error) {
	byTable := map[string][]int{}
	for i := range items.len() {
		if it := items.at(i); it.accepted {
			byTable[it.table] = append(byTable[it.table], i)
		}
	}
	base := map[string]int64{}
	for name, idx := range byTable {
		found, snap, err := r.presentIDs(ctx, name, items, idx)
		if err != nil {
			return nil, err
		}
		base[name] = snap
		seen := map[string]bool{}
		for _, i := range idx {
			it := items.at(i)
			by, ok := found[it.eventID]
			switch {
			case seen[it.eventID]:
				it.present = true // twice in the selection: replayed once
			case ok && by == replayID:
				// committed by an earlier attempt of this replay
			case ok:
				it.present, it.by = true, by
			}
			seen[it.eventID] = true
		}
	}
	return base, nil
}

// presentIDs returns the event ids of items idx that table name holds,
// with the replay that committed each ("" for ingest), and the snapshot
// read. Only data files whose event times overlap the items' are read.
func (r *Replayer) presentIDs(ctx context.Context, name string, items *items, idx []int) (found map[string]string, snap int64, err error) {
	found = map[string]string{}
	tbl, err := r.deps.Catalog.LoadTable(ctx, name)
	if isNoSuchTable(err) {
		return found, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load %s: %w", name, err)
	}
	cur := tbl.CurrentSnapshot()
	if cur == nil {
		return found, 0, nil
	}
	lo, hi := items.at(idx[0]).ts, items.at(idx[0]).ts
	for _, i := range idx {
		lo, hi = min(lo, items.at(i).ts), max(hi, items.at(i).ts)
	}
	var cleanup []string
	defer func() {
		for _, p := range cleanup {
			_ = removeStaged(p)
		}
	}()
	filter := iceberg.NewAnd(
		iceberg.GreaterThanEqual(iceberg.Reference(lake.ColTs), lo),
		iceberg.LessThanEqual(iceberg.Reference(lake.ColTs), hi))
	files, err := stageFiles(ctx, tbl, cur.SnapshotID, []table.ScanOption{table.WithRowFilter(filter)}, r.deps.TmpDir, nil, &cleanup)
	if err != nil {
		return nil, 0, err
	}
	if len(files) == 0 {
		return found, cur.SnapshotID, nil
	}
	db, err := openDuck(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "CREATE TEMP TABLE cand (id VARCHAR)"); err != nil {
		return nil, 0, fmt.Errorf("look up events in %s: %w", name, err)
	}
	err = conn.Raw(func(dc any) error {
		app, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "cand")
		if err != nil {
			return err
		}
		for _, i := range idx {
			if err := app.AppendRow(items.at(i).eventID); err != nil {
				return errors.Join(err, app.Close())
			}
		}
		return app.Close()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("look up events in %s: %w", name, err)
	}
	src := "read_parquet(" + duck.QuoteList(files) + ", union_by_name = true, hive_partitioning = false)"
	has, err := columnsOf(ctx, conn, files)
	if err != nil {
		return nil, 0, fmt.Errorf("look up events in %s: %w", name, err)
	}
	by := "CAST(NULL AS VARCHAR)"
	if has[lake.ColReplayID] {
		by = duck.QuoteIdent(lake.ColReplayID)
	}
	rows, err := conn.QueryContext(ctx, fmt.Sprintf("SELECT %s, coalesce(%s, '') FROM %s WHERE %s IN (SELECT id FROM cand)",
		duck.QuoteIdent(lake.ColEventID), by, src, duck.QuoteIdent(lake.ColEventID)))
	if err != nil {
		return nil, 0, fmt.Errorf("look up events in %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, replay string
		if err := rows.Scan(&id, &replay); err != nil {
			return nil, 0, fmt.Errorf("look up events in %s: %w", name, err)
		}
		if prev, ok := found[id]; !ok || prev != "" {
			found[id] = replay // ingest's copy wins: the event did not need this replay
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("look up events in %s: %w", name, err)
	}
	return found, cur.SnapshotID, nil
}

// querier is a DuckDB database or connection.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// columnsOf returns the columns the Parquet files at paths have.
func columnsOf(ctx context.Context, db querier, paths []string) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, "SELECT DISTINCT name FROM parquet_schema("+duck.QuoteList(paths)+")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	has := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		has[c] = true
	}
	return has, rows.Err()
}

// write writes the items to replay (accepted, not present) to their
// tables with the ingest writer, and commits each table: one snapshot
// per table, on top of the snapshot lookUp read unless the snapshots
// after it hold no other replay's commit (errRaced otherwise).
func (r *Replayer) write(ctx context.Context, rd *DLQReader, f DLQFilter, order string, limit int, items *items, base map[string]int64, rep *ReplayReport) (err error) {
	cat := r.deps.Catalog
	opts := r.cfg.fileOptions()
	enc := newEncoder(1, 4)
	var g errgroup.Group
	g.Go(func() error { enc.run(0); return nil })
	writers := map[string]*tableWriter{}
	defer func() {
		enc.close()
		_ = g.Wait()
		if err != nil {
			for _, w := range writers {
				_ = w.abort(context.WithoutCancel(ctx))
			}
		}
	}()
	writer := func(name, topic string) (*tableWriter, error) {
		if w := writers[name]; w != nil {
			return w, nil
		}
		tbl, err := cat.LoadTable(ctx, name)
		if isNoSuchTable(err) {
			tbl, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
		if tbl != nil {
			// Tables created before replays existed get the column.
			if tbl, err = cat.Evolve(ctx, tbl, []iceberg.NestedField{lake.ReplayIDField()}, nil); err != nil {
				return nil, fmt.Errorf("add %s to %s: %w", lake.ColReplayID, name, err)
			}
		}
		w, err := newRawWriter(name, topic, cat, tbl, opts, memory.DefaultAllocator, enc)
		if err != nil {
			return nil, err
		}
		writers[name] = w
		return w, nil
	}
	dec := schema.NewDecoder(r.cfg.Contract, r.deps.Codecs)
	var ev schema.Event
	now := r.deps.Now().UnixMicro()
	i := 0
	err = rd.each(ctx, f, replayCols, order, limit, func(d *DeadLetter) error {
		if i >= items.len() || items.at(i).file != d.file || items.at(i).row != d.row {
			return fmt.Errorf("%w: the dead letters changed between two reads of snapshot %d", errRaced, rd.Snapshot())
		}
		it := items.at(i)
		i++
		if !it.accepted || it.present {
			return nil
		}
		if derr := dec.Decode(d.Raw, recordMicros(d), &ev); derr != nil {
			return fmt.Errorf("%s: checked valid, then %s: %s", d.Coords(), derr.Reason, derr.Detail)
		}
		w, err := writer(it.table, d.Topic)
		if err != nil {
			return err
		}
		if err := w.prepare(ctx, ev.Version, r.deps.Codecs); err != nil {
			return fmt.Errorf("prepare %s for %s: %w", it.table, d.Coords(), err)
		}
		k := schema.Coords{Topic: d.Topic, Partition: d.Partition, Offset: d.Offset, KafkaTs: recordMicros(d), Ingested: now, ReplayID: rep.ReplayID}
		return w.addEvent(ctx, &ev, &k)
	})
	if err != nil {
		return err
	}
	if i != items.len() {
		// Marking rows whose events were not written would lose them.
		return fmt.Errorf("%w: the second read of snapshot %d returned %d of %d dead letters", errRaced, rd.Snapshot(), i, items.len())
	}
	for _, w := range writers {
		w.closeOpen()
	}
	enc.drain()
	names := make([]string, 0, len(writers))
	for n := range writers {
		names = append(names, n)
	}
	slices.Sort(names)
	header, err := json.Marshal(ReplayReport{ReplayID: rep.ReplayID, RequestedBy: rep.RequestedBy, Trigger: rep.Trigger,
		RequestedAt: rep.RequestedAt, Filter: rep.Filter})
	if err != nil {
		return err
	}
	for _, name := range names {
		w := writers[name]
		files, err := w.finishFiles()
		if err != nil {
			return err
		}
		since := base[name]
		tbl, err := r.com.Commit(ctx, lake.Change{
			Table: name, Task: TaskReplay, Base: w.tbl,
			Summary: iceberg.Properties{SummaryReplayID: rep.ReplayID, SummaryReplay: string(header)},
			Stage: func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
				st, err := tx.StagedTable()
				if err != nil {
					return err
				}
				if other := replayedSince(st.Table, since, rep.ReplayID); other != "" {
					return fmt.Errorf("%w: replay %s committed to %s after this one looked its events up", errRaced, other, name)
				}
				return tx.AddDataFiles(ctx, files, props, table.WithoutDuplicateCheck())
			},
		})
		if err != nil {
			return err
		}
		w.reset()
		delete(writers, name) // committed: not aborted on a later error
		rep.Snapshots[name] = fmt.Sprint(tbl.CurrentSnapshot().SnapshotID)
	}
	return nil
}

// replayedSince returns the id of another replay that committed to t
// after snapshot since (0: since the table began), or "".
func replayedSince(t *table.Table, since int64, self string) string {
	other := ""
	lake.Walk(t, func(s *table.Snapshot) bool {
		if s.SnapshotID == since {
			return false
		}
		if s.Summary != nil && s.Summary.Properties[lake.SummaryTask] == TaskReplay {
			if id := s.Summary.Properties[SummaryReplayID]; id != self {
				other = id
				return false
			}
		}
		return true
	})
	return other
}

// rowMark is what a replay writes on one dead-letter row (neither
// resolved nor derr: the row stays as it is).
type rowMark struct {
	resolved bool          // replay_id and replayed_at
	derr     *schema.Error // still invalid: the new reason
}

// mark rewrites the dead-letter files holding the items: resolved rows
// get replay_id and replayed_at, rows still invalid their new reason. The
// replay's record rides in the snapshot summary.
func (r *Replayer) mark(ctx context.Context, dlqTbl *table.Table, rd *DLQReader, items *items, rep *ReplayReport) (err error) {
	// local path -> marks by row number (up to the last row marked)
	marks := map[string][]rowMark{}
	for i := range items.len() {
		it := items.at(i)
		if it.derr != nil && !it.changed {
			continue // still invalid for the same reason: the row stays as it is
		}
		m := marks[it.file]
		if m == nil {
			if df := rd.dataFiles[it.file]; df != nil && df.Count() > 0 {
				m = make([]rowMark, 0, df.Count()) // a hint: rows past it grow the slice
			}
		}
		if it.row < 0 {
			return fmt.Errorf("dead letters of %s: row %d of %s", r.cfg.DLQTable, it.row, it.file)
		}
		if grow := int(it.row) + 1 - len(m); grow > 0 {
			m = append(m, make([]rowMark, grow)...)
		}
		if it.derr != nil {
			m[it.row] = rowMark{derr: it.derr}
		} else {
			m[it.row] = rowMark{resolved: true}
		}
		marks[it.file] = m
	}
	now := r.deps.Now()
	var remove, add []iceberg.DataFile
	defer func() {
		if err != nil {
			for _, f := range add {
				_ = lake.RemoveFile(context.WithoutCancel(ctx), dlqTbl, f.FilePath())
			}
		}
	}()
	paths := make([]string, 0, len(marks))
	for p := range marks {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		old := rd.dataFiles[p]
		if old == nil {
			return fmt.Errorf("dead letters of %s: no data file for %s", r.cfg.DLQTable, p)
		}
		df, err := rewriteDLQFile(ctx, dlqTbl, old, marks[p], rep.ReplayID, now)
		if err != nil {
			return err
		}
		remove, add = append(remove, old), append(add, df)
	}
	rep.FinishedAt = r.deps.Now().UTC()
	if len(marks) == 0 {
		return nil // nothing resolved, nothing changed: only the record
	}
	record, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	tbl, err := r.com.Commit(ctx, lake.Change{
		Table: r.cfg.DLQTable, Task: TaskReplayMark, Base: dlqTbl,
		Summary: iceberg.Properties{SummaryReplayID: rep.ReplayID, SummaryReplay: string(record)},
		Stage: func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
			err := tx.ReplaceDataFilesWithDataFiles(ctx, remove, add, props)
			if err != nil && strings.Contains(err.Error(), "do not belong to the table") {
				// The compactor rewrote them: read the rows again.
				return fmt.Errorf("%w: dead-letter files were rewritten meanwhile", errRaced)
			}
			return err
		},
	})
	if err != nil {
		return err
	}
	rep.Snapshots[r.cfg.DLQTable] = fmt.Sprint(tbl.CurrentSnapshot().SnapshotID)
	return nil
}

// rewriteDLQFile writes a copy of the dead-letter data file old with marks
// (by row number; rows past the end are not marked) applied, in the
// table's current schema.
func rewriteDLQFile(ctx context.Context, tbl *table.Table, old iceberg.DataFile, marks []rowMark, replayID string, now time.Time) (iceberg.DataFile, error) {
	in, err := lake.ReadFile(ctx, tbl, old.FilePath())
	if err != nil {
		return nil, fmt.Errorf("read dead letters %s: %w", old.FilePath(), err)
	}
	defer in.Release()
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		return nil, err
	}
	mem := memory.DefaultAllocator
	n := int(in.NumRows())
	if len(marks) > n {
		return nil, fmt.Errorf("dead letters %s: row %d marked, the file has %d", old.FilePath(), len(marks)-1, n)
	}
	// Columns no mark changes are copied as they are.
	var resolved, invalid bool
	for _, m := range marks {
		resolved, invalid = resolved || m.resolved, invalid || m.derr != nil
	}
	cols := make([]arrow.Array, sc.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	column := func(name string) (arrow.Array, error) {
		idx := in.Schema().FieldIndices(name)
		if len(idx) == 0 {
			return nil, nil // a column the file predates: null
		}
		return array.Concatenate(in.Column(idx[0]).Data().Chunks(), mem)
	}
	for i, f := range sc.Fields() {
		src, err := column(f.Name)
		if err != nil {
			return nil, fmt.Errorf("read column %s of %s: %w", f.Name, old.FilePath(), err)
		}
		patch := dlqPatch(f.Name, marks, resolved, invalid, replayID, now)
		if src != nil && patch == nil && arrow.TypeEqual(src.DataType(), f.Type) {
			cols[i] = src
			continue
		}
		b := array.NewBuilder(mem, f.Type)
		for row := range n {
			if patch != nil {
				if v, ok := patch(int64(row)); ok {
					if err := lake.AppendValue(b, f, v); err != nil {
						b.Release()
						if src != nil {
							src.Release()
						}
						return nil, fmt.Errorf("mark column %s of %s: %w", f.Name, old.FilePath(), err)
					}
					continue
				}
			}
			if src == nil || src.IsNull(row) {
				b.AppendNull()
				continue
			}
			if err := copyValue(b, src, row); err != nil {
				b.Release()
				src.Release()
				return nil, fmt.Errorf("copy column %s of %s: %w", f.Name, old.FilePath(), err)
			}
		}
		cols[i] = b.NewArray()
		b.Release()
		if src != nil {
			src.Release()
		}
	}
	rec := array.NewRecordBatch(sc, cols, int64(n))
	defer rec.Release()
	loc := path.Join(path.Dir(old.FilePath()), uuid.NewString()+".parquet")
	if i := strings.Index(old.FilePath(), "://"); i >= 0 {
		loc = old.FilePath()[:i+3] + path.Join(path.Dir(old.FilePath()[i+3:]), uuid.NewString()+".parquet")
	}
	w, err := lake.CreateFile(ctx, tbl, loc, sc, old.Partition(), (Config{}).fileOptions(), mem)
	if err != nil {
		return nil, err
	}
	if err := w.Write(rec); err != nil {
		return nil, errors.Join(err, w.Abort(ctx, tbl))
	}
	return w.Close(tbl)
}

// dlqPatch returns, for a column the marks change, the new value of each
// row (ok false: keep the row's value); nil for other columns, and for
// those of resolved rows when no mark resolves one (resolved false) or of
// rows still invalid when no mark has one (invalid false).
func dlqPatch(col string, marks []rowMark, resolved, invalid bool, replayID string, now time.Time) func(row int64) (any, bool) {
	get := func(fn func(m rowMark) (any, bool)) func(int64) (any, bool) {
		return func(row int64) (any, bool) {
			if row >= int64(len(marks)) {
				return nil, false
			}
			return fn(marks[row])
		}
	}
	ifResolved := func(v any) func(int64) (any, bool) {
		if !resolved {
			return nil
		}
		return get(func(m rowMark) (any, bool) { return v, m.resolved })
	}
	ifInvalid := func(fn func(e *schema.Error) any) func(int64) (any, bool) {
		if !invalid {
			return nil
		}
		return get(func(m rowMark) (any, bool) {
			if m.derr == nil {
				return nil, false
			}
			return fn(m.derr), true
		})
	}
	optStr := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	switch col {
	case lake.ColReplayID:
		return ifResolved(replayID)
	case lake.ColReplayedAt:
		return ifResolved(now)
	case lake.ColReason:
		return ifInvalid(func(e *schema.Error) any { return string(e.Reason) })
	case lake.ColDetail:
		return ifInvalid(func(e *schema.Error) any { return e.Detail })
	case lake.ColSubject:
		return ifInvalid(func(e *schema.Error) any { return optStr(e.Subject) })
	case lake.ColVersion:
		return ifInvalid(func(e *schema.Error) any {
			if e.Version <= 0 {
				return nil
			}
			return int32(e.Version)
		})
	case lake.ColField:
		return ifInvalid(func(e *schema.Error) any { return optStr(e.Pointer) })
	}
	return nil
}

// copyValue appends row of src to b (src's type may differ from b's
// only in ways the Parquet round trip allows: string and binary widths).
func copyValue(b array.Builder, src arrow.Array, row int) error {
	switch b := b.(type) {
	case *array.StringBuilder:
		switch s := src.(type) {
		case *array.String:
			b.Append(s.Value(row))
			return nil
		case *array.LargeString:
			b.Append(s.Value(row))
			return nil
		}
	case *array.BinaryBuilder:
		switch s := src.(type) {
		case *array.Binary:
			b.Append(s.Value(row))
			return nil
		case *array.LargeBinary:
			b.Append(s.Value(row))
			return nil
		}
	case *array.Int32Builder:
		if s, ok := src.(*array.Int32); ok {
			b.Append(s.Value(row))
			return nil
		}
	case *array.Int64Builder:
		if s, ok := src.(*array.Int64); ok {
			b.Append(s.Value(row))
			return nil
		}
	case *array.TimestampBuilder:
		if s, ok := src.(*array.Timestamp); ok {
			unit := s.DataType().(*arrow.TimestampType).Unit
			b.Append(arrow.Timestamp(s.Value(row).ToTime(unit).UnixMicro()))
			return nil
		}
	}
	return b.AppendValueFromString(src.ValueStr(row))
}

// finish re-aggregates the read models of the replayed minutes and
// appends the replay's record to the log.
func (r *Replayer) finish(ctx context.Context, rep *ReplayReport) error {
	if err := r.reaggregate(ctx, rep); err != nil {
		return err
	}
	return r.record(ctx, rep)
}

func (r *Replayer) reaggregate(ctx context.Context, rep *ReplayReport) error {
	if r.deps.Reaggregate == nil {
		return nil
	}
	for t, ms := range rep.Minutes {
		minutes := make([]time.Time, len(ms))
		for i, m := range ms {
			minutes[i] = time.Unix(m*60, 0).UTC()
		}
		if err := r.deps.Reaggregate(ctx, t, minutes); err != nil {
			return fmt.Errorf("replay %s: re-aggregate the read models of %s: %w", rep.ReplayID, t, err)
		}
	}
	return nil
}

// record appends rep to the replay log.
func (r *Replayer) record(ctx context.Context, rep *ReplayReport) error {
	cat := r.deps.Catalog
	tbl, err := cat.EnsureTable(ctx, lake.DLQReplaysTableDef(r.rcfg.ReplaysTable))
	if err != nil {
		return fmt.Errorf("create the replay log %s: %w", r.rcfg.ReplaysTable, err)
	}
	if logged, err := r.loggedIDs(ctx, tbl); err != nil {
		return err
	} else if logged[rep.ReplayID] {
		return nil
	}
	df, err := writeReplayRecord(ctx, tbl, r.cfg.DLQTable, rep)
	if err != nil {
		return err
	}
	_, err = r.com.Commit(ctx, lake.Change{
		Table: r.rcfg.ReplaysTable, Task: TaskReplayRecord, Base: tbl,
		Summary: iceberg.Properties{SummaryReplayID: rep.ReplayID},
		Stage:   lake.Append([]iceberg.DataFile{df}),
		Applied: func(t *table.Table) bool { return replayLogged(t, rep.ReplayID) },
	})
	if err != nil {
		_ = lake.RemoveFile(context.WithoutCancel(ctx), tbl, df.FilePath())
		return fmt.Errorf("log replay %s: %w", rep.ReplayID, err)
	}
	return nil
}

// replayLogged reports whether a snapshot of the log carries replay id.
func replayLogged(t *table.Table, id string) bool {
	found := false
	lake.Walk(t, func(s *table.Snapshot) bool {
		if s.Summary != nil && s.Summary.Properties[SummaryReplayID] == id {
			found = true
			return false
		}
		return true
	})
	return found
}

// loggedIDs are the replay ids the log holds.
func (r *Replayer) loggedIDs(ctx context.Context, tbl *table.Table) (ids map[string]bool, err error) {
	ids = map[string]bool{}
	cur := tbl.CurrentSnapshot()
	if cur == nil {
		return ids, nil
	}
	var cleanup []string
	defer func() {
		for _, p := range cleanup {
			_ = removeStaged(p)
		}
	}()
	files, err := stageFiles(ctx, tbl, cur.SnapshotID, nil, r.deps.TmpDir, nil, &cleanup)
	if err != nil || len(files) == 0 {
		return ids, err
	}
	db, err := openDuck(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	rows, err := db.QueryContext(ctx, "SELECT "+duck.QuoteIdent(lake.ColReplayID)+" FROM read_parquet("+duck.QuoteList(files)+")")
	if err != nil {
		return nil, fmt.Errorf("read the replay log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids[id] = true
	}
	return ids, rows.Err()
}

// writeReplayRecord writes rep as one row of the replay log.
func writeReplayRecord(ctx context.Context, tbl *table.Table, dlqTable string, rep *ReplayReport) (iceberg.DataFile, error) {
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		return nil, err
	}
	filter, err := json.Marshal(rep.Filter)
	if err != nil {
		return nil, err
	}
	tables, err := json.Marshal(rep.Tables)
	if err != nil {
		return nil, err
	}
	snaps, err := json.Marshal(rep.Snapshots)
	if err != nil {
		return nil, err
	}
	mem := memory.DefaultAllocator
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	for i, f := range sc.Fields() {
		var v any
		switch f.Name {
		case lake.ColReplayID:
			v = rep.ReplayID
		case lake.ColReplayRequestedBy:
			v = rep.RequestedBy
		case lake.ColReplayRequestedAt:
			v = rep.RequestedAt
		case lake.ColReplayFinishedAt:
			v = rep.FinishedAt
		case lake.ColReplayTrigger:
			v = rep.Trigger
		case lake.ColReplayFilter:
			v = string(filter)
		case lake.ColReplaySelected:
			v = rep.Selected
		case lake.ColReplayReplayed:
			v = rep.Replayed
		case lake.ColReplayInvalid:
			v = rep.StillInvalid
		case lake.ColReplayPresent:
			v = rep.AlreadyPresent
		case lake.ColReplayTables:
			v = string(tables)
		case lake.ColReplaySnapshots:
			v = string(snaps)
		case lake.ColReplayDLQSnapshot:
			if id, err := strconv.ParseInt(rep.Snapshots[dlqTable], 10, 64); err == nil {
				v = id
			}
		}
		if err := lake.AppendValue(b.Field(i), f, v); err != nil {
			return nil, fmt.Errorf("replay record, column %s: %w", f.Name, err)
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	day := eventtime.FloorDiv(rep.RequestedAt.UnixMicro(), microsPerDay)
	lp, err := tbl.LocationProvider()
	if err != nil {
		return nil, err
	}
	value := iceberg.Date(day)
	loc := lp.NewDataLocation("requested_day=" + iceberg.DayTransform{}.ToHumanStr(value) + "/" + uuid.NewString() + ".parquet")
	w, err := lake.CreateFile(ctx, tbl, loc, sc, partitionOf(tbl, value), lake.FileOptions{}, mem)
	if err != nil {
		return nil, err
	}
	if err := w.Write(rec); err != nil {
		return nil, errors.Join(err, w.Abort(ctx, tbl))
	}
	return w.Close(tbl)
}

// logInterrupted logs the replays that committed events and stopped
// before they marked their dead letters (a later replay found the events
// and resolved the rows): each with what it committed, from its commits'
// summaries, so that every replay_id in a table is in the log.
func (r *Replayer) logInterrupted(ctx context.Context, interrupted map[string]map[string]int64) error {
	if len(interrupted) == 0 {
		return nil
	}
	tbl, err := r.deps.Catalog.EnsureTable(ctx, lake.DLQReplaysTableDef(r.rcfg.ReplaysTable))
	if err != nil {
		return fmt.Errorf("create the replay log %s: %w", r.rcfg.ReplaysTable, err)
	}
	logged, err := r.loggedIDs(ctx, tbl)
	if err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(interrupted)) {
		if logged[id] {
			continue
		}
		var rep *ReplayReport
		for _, name := range slices.Sorted(maps.Keys(interrupted[id])) {
			t, err := r.deps.Catalog.LoadTable(ctx, name)
			if err != nil {
				return fmt.Errorf("load %s: %w", name, err)
			}
			lake.Walk(t, func(s *table.Snapshot) bool {
				if s.Summary == nil || s.Summary.Properties[SummaryReplayID] != id || s.Summary.Properties[lake.SummaryTask] != TaskReplay {
					return true
				}
				if rep == nil {
					rep = &ReplayReport{}
					if json.Unmarshal([]byte(s.Summary.Properties[SummaryReplay]), rep) != nil {
						rep = &ReplayReport{ReplayID: id}
					}
					rep.Tables, rep.Snapshots, rep.Invalid = map[string]int64{}, map[string]string{}, map[string]int64{}
				}
				n := interrupted[id][name]
				rep.Tables[name] += n
				rep.Selected += n
				rep.Replayed += n
				rep.Snapshots[name] = fmt.Sprint(s.SnapshotID)
				rep.FinishedAt = time.UnixMilli(s.TimestampMs).UTC()
				return false
			})
		}
		if rep == nil {
			continue // its snapshots expired: nothing left to say what it was
		}
		r.log.Warn("logging an interrupted replay that committed events", logkey.ReplayID, id, "requested_by", rep.RequestedBy)
		if err := r.record(ctx, rep); err != nil {
			return err
		}
	}
	return nil
}

// Recover finishes replays whose dead-letter rows are marked but whose
// record is not in the log (the process stopped in between): it
// re-aggregates their minutes and appends their records.
func (r *Replayer) Recover(ctx context.Context) error {
	dlqTbl, err := r.deps.Catalog.LoadTable(ctx, r.cfg.DLQTable)
	if isNoSuchTable(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load the dead-letter table %s: %w", r.cfg.DLQTable, err)
	}
	var pending []*ReplayReport
	var perr error
	lake.Walk(dlqTbl, func(s *table.Snapshot) bool {
		if s.Summary == nil || s.Summary.Properties[lake.SummaryTask] != TaskReplayMark {
			return true
		}
		rep := &ReplayReport{}
		if err := json.Unmarshal([]byte(s.Summary.Properties[SummaryReplay]), rep); err != nil {
			perr = fmt.Errorf("snapshot %d of %s: replay record: %w", s.SnapshotID, r.cfg.DLQTable, err)
			return false
		}
		if rep.Snapshots == nil {
			rep.Snapshots = map[string]string{}
		}
		rep.Snapshots[r.cfg.DLQTable] = fmt.Sprint(s.SnapshotID)
		pending = append(pending, rep)
		return len(pending) < 100 // the latest replays; older ones were recovered long ago
	})
	if perr != nil || len(pending) == 0 {
		return perr
	}
	logTbl, err := r.deps.Catalog.EnsureTable(ctx, lake.DLQReplaysTableDef(r.rcfg.ReplaysTable))
	if err != nil {
		return fmt.Errorf("create the replay log %s: %w", r.rcfg.ReplaysTable, err)
	}
	logged, err := r.loggedIDs(ctx, logTbl)
	if err != nil {
		return err
	}
	for i := len(pending) - 1; i >= 0; i-- {
		rep := pending[i]
		if logged[rep.ReplayID] {
			continue
		}
		r.log.Warn("finishing an interrupted replay", logkey.ReplayID, rep.ReplayID, "requested_by", rep.RequestedBy)
		if err := r.finish(ctx, rep); err != nil {
			return err
		}
	}
	return nil
}

// partitionOf is the partition of a table with one partition field.
func partitionOf(tbl *table.Table, value any) map[int]any {
	spec := tbl.Spec()
	return map[int]any{spec.Field(0).FieldID: value}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
