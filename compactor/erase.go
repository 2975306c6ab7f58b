package compactor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
)

// Erasure log stages.
const (
	// StageErased: the rows are gone from the table's current snapshot.
	StageErased = "erased"
	// StagePurged: the snapshots and files that still held them are
	// expired and deleted from storage.
	StagePurged = "purged"
)

// EraseRequest asks for every event of one user to be erased.
type EraseRequest struct {
	UserID      string
	RequestedBy string
	// RequestedAt defaults to now.
	RequestedAt time.Time
	DryRun      bool
}

// EraseTableReport is what an erasure did to one table.
type EraseTableReport struct {
	Table          string   `json:"table"`
	Rows           int64    `json:"rows_removed"`
	FilesRewritten int      `json:"files_rewritten"`
	FilesWritten   int      `json:"files_written"`
	Files          []string `json:"files"`
	SnapshotBefore int64    `json:"snapshot_before"`
	SnapshotAfter  int64    `json:"snapshot_after"`
	// Expired and Deleted are filled once the old snapshots are purged.
	SnapshotsExpired int `json:"snapshots_expired"`
	FilesDeleted     int `json:"files_deleted"`
	// NotSearched says why a table was not searched (no column of it is
	// known to identify a person).
	NotSearched string `json:"not_searched,omitempty"`
}

// EraseReport is the outcome of an erasure.
type EraseReport struct {
	ErasureID     string             `json:"erasure_id"`
	SubjectSHA256 string             `json:"subject_sha256"`
	RequestedBy   string             `json:"requested_by"`
	RequestedAt   time.Time          `json:"requested_at"`
	DryRun        bool               `json:"dry_run"`
	Tables        []EraseTableReport `json:"tables"`
	// ReadModelsRefreshed says whether the ReadModelRefresher ran.
	ReadModelsRefreshed bool `json:"read_models_refreshed"`
	// StaleMinutes counts event-time minutes whose read models are stale
	// when no refresher is configured.
	StaleMinutes int `json:"stale_minutes"`
}

// Erase removes every event of req.UserID from every raw table and the
// dead-letter table, then purges the snapshots and files that still held
// them, and records the erasure in the erasure log. Affected data files
// are rewritten without the user's rows (copy on write); a file left
// empty is dropped. A row is the user's when:
//
//   - raw tables: one of its subject columns (the properties the
//     schemas of its event types mark with x-eventlake-subject, listed in
//     the table property eventlake.subject-columns) equals the id, or its
//     payload JSON has a member of such a property's name (at any depth)
//     whose value is the id; a raw table with no subject column is not
//     searched, and the report says so;
//   - dead letters: the id occurs in its raw bytes, detail or key as a
//     whole token (not inside a longer id: "u-1" does not match "u-12").
//
// The query audit log (table kind audit_log) is never searched, whatever
// role it is configured with: it records who asked, not what.
//
// Purging waits until the erasure snapshots are snapshot_min_age old, so
// that queries started before the erasure finish, then expires every
// older snapshot of the erased tables (the time-travel window of those
// tables is given up: older snapshots hold the user's data).
func (c *Compactor) Erase(ctx context.Context, req EraseRequest) (*EraseReport, error) {
	if req.UserID == "" {
		return nil, errors.New("erase: a user id is required")
	}
	if req.RequestedBy == "" {
		return nil, errors.New("erase: requested-by is required (who asked for the erasure)")
	}
	if req.RequestedAt.IsZero() {
		req.RequestedAt = c.deps.Now()
	}
	rep := &EraseReport{
		ErasureID: uuid.NewString(), SubjectSHA256: lake.SubjectHash(req.UserID),
		RequestedBy: req.RequestedBy, RequestedAt: req.RequestedAt.UTC(), DryRun: req.DryRun,
	}
	log := c.log.With(logErasureID, rep.ErasureID)
	log.Info("erasure started", logRequestedBy, req.RequestedBy, logDryRun, req.DryRun)
	var erased []Erased
	tables, err := c.tables(ctx)
	if err != nil {
		return rep, err
	}
	// A property that identifies a person in one event type's schema is
	// looked for in the payloads of every raw table: an erasure should
	// rather match too much than miss a copy of the id nested in another
	// type's payload.
	props := map[string]bool{}
	for _, t := range tables {
		if t.Role != RoleRaw {
			continue
		}
		tbl, err := c.deps.Catalog.LoadTable(ctx, t.Name)
		if err != nil {
			continue // not created yet
		}
		for _, sc := range lake.SubjectColumnsOf(tbl.Properties()) {
			props[sc.Property] = true
		}
	}
	for _, t := range tables {
		if t.Role != RoleRaw && t.Role != RoleDLQ {
			continue
		}
		tr, minutes, err := c.eraseTable(ctx, t, req, rep.ErasureID, props)
		if errors.Is(err, errNoTable) {
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("erase from %s: %w", t.Name, err)
		}
		rep.Tables = append(rep.Tables, *tr)
		if tr.Rows > 0 && t.Role == RoleRaw {
			erased = append(erased, Erased{Table: t.Name, Minutes: minutes, Rows: tr.Rows})
		} else if t.Role == RoleRaw && !req.DryRun {
			// An earlier erasure committed on this table and was stopped
			// before it re-aggregated the read models and purged: finish
			// it (its minutes are in its snapshot's summary).
			if e, ok := c.unfinishedErasure(ctx, t.Name); ok {
				erased = append(erased, e)
				log.Info("completing an interrupted erasure", logkey.Table, t.Name, logMinutes, len(e.Minutes))
			}
		}
		log.Info("table erased", logkey.Table, t.Name, logkey.Rows, tr.Rows, logkey.Files, tr.FilesRewritten,
			logkey.SnapshotID, tr.SnapshotAfter, logDryRun, req.DryRun)
	}
	// Tables derived per user (user_sessions, models keyed by a subject
	// column) lose the subject's rows: re-aggregation cannot remove a
	// key it no longer sees.
	for _, t := range tables {
		if t.Role != RoleOther {
			continue
		}
		tr, err := c.eraseKeyed(ctx, t.Name, req, props)
		if err != nil {
			return rep, fmt.Errorf("erase from %s: %w", t.Name, err)
		}
		if tr != nil {
			rep.Tables = append(rep.Tables, *tr)
			log.Info("table erased", logkey.Table, t.Name, logkey.Rows, tr.Rows, logkey.SnapshotID, tr.SnapshotAfter, logDryRun, req.DryRun)
		}
	}
	if req.DryRun {
		return rep, nil
	}
	var readModelErr error
	// Read models built from the raw rows are recomputed for the minutes
	// that lost rows.
	if len(erased) > 0 {
		for _, e := range erased {
			rep.StaleMinutes += len(e.Minutes)
		}
		if c.deps.ReadModels != nil {
			// Read models are derived data: a failure here must not keep
			// the raw data from being purged. It is reported at the end.
			if err := c.deps.ReadModels.Reaggregate(ctx, erased); err != nil {
				readModelErr = fmt.Errorf("erasure done, but read models were not re-aggregated for %d minutes: %w", rep.StaleMinutes, err)
				log.Warn("re-aggregate read models after erasure", logkey.Err, err)
			} else {
				rep.ReadModelsRefreshed = true
				rep.StaleMinutes = 0
			}
		} else {
			log.Warn("no read-model refresher configured; read models of the erased minutes are stale", logMinutes, rep.StaleMinutes)
		}
	}
	if err := c.logErasure(ctx, rep, StageErased); err != nil {
		return rep, err
	}

	// Purge: let running queries finish, then expire everything older
	// than the erasure snapshots and delete the files only they held. A
	// table this run did not change is purged too when an earlier erasure
	// committed on it but did not purge (a crash between the two): its
	// older snapshots may still hold the subject's data.
	through := map[string]int64{} // table -> purge the snapshots older than this one
	var latest time.Time
	for _, tr := range rep.Tables {
		tbl, err := c.deps.Catalog.LoadTable(ctx, tr.Table)
		if err != nil {
			return rep, err
		}
		sid, ok := tr.SnapshotAfter, tr.FilesRewritten > 0
		if !ok {
			sid, ok = unpurgedErasure(tbl)
		}
		if !ok {
			continue
		}
		through[tr.Table] = sid
		if s := tbl.SnapshotByID(sid); s != nil && time.UnixMilli(s.TimestampMs).After(latest) {
			latest = time.UnixMilli(s.TimestampMs)
		}
	}
	if !latest.IsZero() {
		wait := time.Until(latest.Add(c.cfg.SnapshotMinAge))
		if wait > 0 {
			log.Info("waiting for queries on the old snapshots to finish before purging", logWait, wait.Round(time.Millisecond))
			select {
			case <-ctx.Done():
				return rep, fmt.Errorf("erasure committed but not purged (run it again to purge): %w", ctx.Err())
			case <-time.After(wait):
			}
		}
	}
	for i := range rep.Tables {
		tr := &rep.Tables[i]
		sid, ok := through[tr.Table]
		if !ok {
			continue
		}
		xr, err := c.expireKeeping(ctx, tr.Table, false, func(tbl *table.Table) int {
			return ancestorsThrough(tbl, sid)
		})
		if err != nil {
			return rep, fmt.Errorf("purge snapshots of %s older than the erasure: %w", tr.Table, err)
		}
		tr.SnapshotsExpired, tr.FilesDeleted = xr.SnapshotsExpired, xr.FilesDeleted
	}
	if err := c.logErasure(ctx, rep, StagePurged); err != nil {
		return rep, err
	}
	log.Info("erasure done")
	return rep, readModelErr
}

// unfinishedErasure returns the minutes of the newest erasure of a raw
// table that was not purged (see unpurgedErasure).
func (c *Compactor) unfinishedErasure(ctx context.Context, name string) (Erased, bool) {
	tbl, err := c.deps.Catalog.LoadTable(ctx, name)
	if err != nil {
		return Erased{}, false
	}
	sid, ok := unpurgedErasure(tbl)
	if !ok {
		return Erased{}, false
	}
	s := tbl.SnapshotByID(sid)
	if s == nil || s.Summary == nil {
		return Erased{}, false
	}
	mins, err := decodeMinutes(s.Summary.Properties[SummaryErasureMinutes])
	if err != nil || len(mins) == 0 {
		return Erased{}, false
	}
	return Erased{Table: name, Minutes: mins}, true
}

// encodeMinutes writes event-time minutes as runs "first-last" of unix
// minutes, comma separated (a user's events are clustered in time).
func encodeMinutes(mins []time.Time) string {
	var b strings.Builder
	for i := 0; i < len(mins); {
		first := mins[i].Unix() / 60
		last := first
		j := i + 1
		for j < len(mins) && mins[j].Unix()/60 == last+1 {
			last++
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d-%d", first, last)
		i = j
	}
	return b.String()
}

// decodeMinutes reads what encodeMinutes wrote.
func decodeMinutes(s string) ([]time.Time, error) {
	var out []time.Time
	for _, run := range strings.Split(s, ",") {
		if run == "" {
			continue
		}
		a, b, ok := strings.Cut(run, "-")
		first, err1 := strconv.ParseInt(a, 10, 64)
		last, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || last < first || last-first > 1<<20 {
			return nil, fmt.Errorf("bad minute run %q", run)
		}
		for m := first; m <= last; m++ {
			out = append(out, time.Unix(m*60, 0).UTC())
		}
	}
	return out, nil
}

// unpurgedErasure returns the newest erasure snapshot among the table's
// current snapshot and its ancestors that still has older ancestors (an
// erasure whose purge did not run), and whether there is one.
func unpurgedErasure(tbl *table.Table) (int64, bool) {
	md := tbl.Metadata()
	s := md.CurrentSnapshot()
	for i := 0; s != nil && i <= len(md.Snapshots()); i++ {
		if s.Summary != nil && s.Summary.Properties[SummaryErasureID] != "" {
			return s.SnapshotID, s.ParentSnapshotID != nil && md.SnapshotByID(*s.ParentSnapshotID) != nil
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	return 0, false
}

// ancestorsThrough counts the current snapshot and its ancestors down to
// and including snapshot id.
func ancestorsThrough(tbl *table.Table, id int64) int {
	md := tbl.Metadata()
	s := md.CurrentSnapshot()
	for i := 0; s != nil && i <= len(md.Snapshots()); i++ {
		if s.SnapshotID == id || s.ParentSnapshotID == nil {
			return i + 1
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	return len(md.Snapshots())
}

var errNoTable = errors.New("no such table")

// NotSearchedAuditLog is why an erasure leaves the query audit log
// (table kind lake.KindAuditLog) alone.
const NotSearchedAuditLog = "exempt from erasure: the query audit log records who asked, not what (docs/SECURITY.md)"

// eraseTable rewrites the files of one table holding the user's rows, in
// one commit, and returns the event-time minutes of the removed rows.
func (c *Compactor) eraseTable(ctx context.Context, t Table, req EraseRequest, erasureID string, props map[string]bool) (*EraseTableReport, []time.Time, error) {
	for attempt := 1; ; attempt++ {
		tbl, err := c.deps.Catalog.LoadTable(ctx, t.Name)
		if err != nil {
			if isNoSuchTable(err) {
				return nil, nil, errNoTable
			}
			return nil, nil, err
		}
		tr := &EraseTableReport{Table: t.Name}
		if s := tbl.CurrentSnapshot(); s != nil {
			tr.SnapshotBefore, tr.SnapshotAfter = s.SnapshotID, s.SnapshotID
		}
		if tbl.Properties()[lake.PropKind] == lake.KindAuditLog {
			// Whatever role it was configured with: the audit log records
			// who asked and what they named, it holds no event, and an
			// auditor must be able to see who read a person's data before
			// it was erased.
			tr.NotSearched = NotSearchedAuditLog
			return tr, nil, nil
		}
		subjects := lake.SubjectColumnsOf(tbl.Properties())
		if t.Role == RoleRaw && len(subjects) == 0 && len(props) == 0 {
			tr.NotSearched = "no schema marks a property as the data subject (x-eventlake-subject)"
			return tr, nil, nil
		}
		parts, _, err := livePartitions(ctx, tbl)
		if err != nil {
			return nil, nil, err
		}
		fs, err := tbl.FS(ctx)
		if err != nil {
			return nil, nil, err
		}
		var (
			remove, add []iceberg.DataFile
			minutes     = map[int64]bool{}
		)
		for _, p := range parts {
			for _, f := range p.files {
				rows, mins, err := matchRows(ctx, fs, f.FilePath(), t.Role, req.UserID, subjects, props)
				if err != nil {
					c.discard(ctx, tbl, add)
					return nil, nil, err
				}
				if len(rows) == 0 {
					continue
				}
				tr.Rows += int64(len(rows))
				tr.FilesRewritten++
				tr.Files = append(tr.Files, f.FilePath())
				for _, m := range mins {
					minutes[m] = true
				}
				remove = append(remove, f)
				if req.DryRun {
					continue
				}
				loc, err := c.newLocation(tbl, t.Name, p)
				if err != nil {
					c.discard(ctx, tbl, add)
					return nil, nil, err
				}
				nf, err := c.eng.rewrite(ctx, rewriteSpec{tbl: tbl, inputs: []iceberg.DataFile{f}, location: loc, storageClass: c.storageClass(loc),
					partition: p.value, drop: map[string][]int64{f.FilePath(): rows}})
				if err != nil {
					c.discard(ctx, tbl, add)
					return nil, nil, err
				}
				if nf != nil {
					add = append(add, nf)
				}
			}
		}
		tr.FilesWritten = len(add)
		var mins []time.Time
		for m := range minutes {
			mins = append(mins, time.UnixMicro(m*60_000_000).UTC())
		}
		slices.SortFunc(mins, func(a, b time.Time) int { return a.Compare(b) })
		if len(remove) == 0 || req.DryRun {
			return tr, mins, nil
		}
		summary := iceberg.Properties{SummaryErasureID: erasureID}
		if t.Role == RoleRaw {
			summary[SummaryErasureMinutes] = encodeMinutes(mins)
		}
		newTbl, err := c.replace(ctx, t.Name, TaskErase, remove, add, false, summary)
		if errors.Is(err, ErrStale) && attempt < 5 {
			// Compaction replaced a file meanwhile: scan again.
			c.discard(ctx, tbl, add)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrCommitUnknown) {
				c.discard(ctx, tbl, add)
			}
			return nil, nil, err
		}
		tr.SnapshotAfter = newTbl.CurrentSnapshot().SnapshotID
		var in, out int64
		for _, f := range remove {
			in += f.FileSizeBytes()
		}
		for _, f := range add {
			out += f.FileSizeBytes()
		}
		c.count(t.Name, TaskErase, len(remove), len(add), in, out, 0)
		c.m.erased.WithLabelValues(t.Name).Add(float64(tr.Rows))
		return tr, mins, nil
	}
}

// matchRows returns the rows of a data file that belong to the user, and
// for raw rows their event-time minutes: userID in one of the subject
// columns, or (raw tables) in a payload member named one of props at any
// depth; dead letters by a whole-token match.
func matchRows(ctx context.Context, fs iceio.IO, location, role, userID string, subjects []lake.SubjectColumn, props map[string]bool) (rows []int64, minutes []int64, err error) {
	f, err := fs.Open(location)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", location, err)
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", location, err)
	}
	defer pr.Close()
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", location, err)
	}
	n := pr.NumRows()
	col := func(name string) (*arrow.Chunked, error) {
		i := pr.MetaData().Schema.ColumnIndexByName(name)
		if i < 0 {
			return nil, nil
		}
		cr, err := fr.GetColumn(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("read column %s of %s: %w", name, location, err)
		}
		ch, err := cr.NextBatch(n)
		if err != nil {
			return nil, fmt.Errorf("read column %s of %s: %w", name, location, err)
		}
		return ch, nil
	}
	id := []byte(userID)
	hit := make([]bool, n)
	mark := func(name string, match func([]byte) bool) error {
		ch, err := col(name)
		if err != nil || ch == nil {
			return err
		}
		defer ch.Release()
		var row int64
		for _, arr := range ch.Chunks() {
			for i := 0; i < arr.Len(); i++ {
				if !arr.IsNull(i) && !hit[row] {
					var v []byte
					switch a := arr.(type) {
					case *array.String:
						v = []byte(a.Value(i))
					case *array.Binary:
						v = a.Value(i)
					case *array.LargeString:
						v = []byte(a.Value(i))
					}
					hit[row] = match(v)
				}
				row++
			}
		}
		return nil
	}
	switch role {
	case RoleRaw:
		for _, sc := range subjects {
			if err := mark(sc.Column, func(v []byte) bool { return bytes.Equal(v, id) }); err != nil {
				return nil, nil, err
			}
		}
		if err := mark(lake.ColPayload, func(v []byte) bool { return bytes.Contains(v, id) && payloadHasUser(v, userID, props) }); err != nil {
			return nil, nil, err
		}
	case RoleDLQ:
		for _, name := range []string{lake.ColRaw, lake.ColDetail, lake.ColKey} {
			if err := mark(name, func(v []byte) bool { return containsToken(v, id) }); err != nil {
				return nil, nil, err
			}
		}
	}
	for i, h := range hit {
		if h {
			rows = append(rows, int64(i))
		}
	}
	if len(rows) == 0 || role != RoleRaw {
		return rows, nil, nil
	}
	ts, err := col(lake.ColTs)
	if err != nil || ts == nil {
		return rows, nil, err
	}
	defer ts.Release()
	var row int64
	j := 0
	for _, arr := range ts.Chunks() {
		a, ok := arr.(*array.Timestamp)
		for i := 0; i < arr.Len(); i++ {
			if j < len(rows) && rows[j] == row {
				if ok && !a.IsNull(i) {
					us := int64(a.Value(i))
					m := us / 60_000_000
					if us < 0 && us%60_000_000 != 0 {
						m--
					}
					minutes = append(minutes, m)
				}
				j++
			}
			row++
		}
	}
	return rows, minutes, nil
}

// payloadHasUser reports whether a JSON document has a member named one
// of props at any depth whose value is userID (a string, or a number
// spelled the same).
func payloadHasUser(doc []byte, userID string, props map[string]bool) bool {
	var v any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		// Not JSON (cannot happen for a raw row): erase on a textual match
		// rather than keep the user's data.
		return true
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if props[k] {
					switch s := x.(type) {
					case string:
						if s == userID {
							return true
						}
					case json.Number:
						if s.String() == userID {
							return true
						}
					}
				}
				if walk(x) {
					return true
				}
			}
		case []any:
			for _, x := range v {
				if walk(x) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

// containsToken reports whether id occurs in b not directly preceded or
// followed by a letter, digit, '-' or '_' (so "u-1" is not found in
// "u-12").
func containsToken(b, id []byte) bool {
	if len(id) == 0 {
		return false
	}
	for off := 0; ; {
		i := bytes.Index(b[off:], id)
		if i < 0 {
			return false
		}
		i += off
		end := i + len(id)
		if (i == 0 || !idByte(b[i-1])) && (end == len(b) || !idByte(b[end])) {
			return true
		}
		off = i + 1
	}
}

func idByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// ErasureLogTableDef is the layout of the erasure audit table: one row per
// erased table and stage. The user id itself is not stored (that would
// keep the personal data the erasure removes); its SHA-256 identifies the
// request for an auditor who knows the id.
func ErasureLogTableDef(name string) lake.TableDef {
	fields := []iceberg.NestedField{
		{ID: 1, Name: "erasure_id", Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 2, Name: "stage", Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "erased: gone from the current snapshot; purged: old snapshots and files deleted"},
		{ID: 3, Name: "requested_by", Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 4, Name: "requested_at", Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
		{ID: 5, Name: "recorded_at", Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
		{ID: 6, Name: "subject_sha256", Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 7, Name: "table_name", Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 8, Name: "rows_removed", Type: iceberg.PrimitiveTypes.Int64, Required: true},
		{ID: 9, Name: "files_rewritten", Type: iceberg.PrimitiveTypes.Int64, Required: true},
		{ID: 10, Name: "files", Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "JSON array of the data files rewritten"},
		{ID: 11, Name: "snapshot_id", Type: iceberg.PrimitiveTypes.Int64, Required: true, Doc: "the table's snapshot after the erasure"},
		{ID: 12, Name: "snapshots_expired", Type: iceberg.PrimitiveTypes.Int64, Required: true},
		{ID: 13, Name: "files_deleted", Type: iceberg.PrimitiveTypes.Int64, Required: true},
	}
	return lake.TableDef{
		Name:   name,
		Schema: iceberg.NewSchema(0, fields...),
		Spec:   *iceberg.UnpartitionedSpec,
		Properties: iceberg.Properties{
			"format-version":                  "2",
			"write.format.default":            "parquet",
			"write.parquet.compression-codec": "zstd",
			lake.PropKind:                     "erasure_log",
		},
	}
}

// logErasure appends one row per erased table to the erasure log.
func (c *Compactor) logErasure(ctx context.Context, rep *EraseReport, stage string) error {
	tbl, err := c.deps.Catalog.EnsureTable(ctx, ErasureLogTableDef(c.cfg.ErasureLogTable))
	if err != nil {
		return fmt.Errorf("open erasure log: %w", err)
	}
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		return err
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	now := c.deps.Now()
	for _, tr := range rep.Tables {
		files, err := json.Marshal(tr.Files)
		if err != nil {
			return err
		}
		if tr.Files == nil {
			files = []byte("[]")
		}
		vals := map[string]any{
			"erasure_id": rep.ErasureID, "stage": stage, "requested_by": rep.RequestedBy,
			"requested_at": rep.RequestedAt, "recorded_at": now, "subject_sha256": rep.SubjectSHA256,
			"table_name": tr.Table, "rows_removed": tr.Rows, "files_rewritten": int64(tr.FilesRewritten),
			"files": string(files), "snapshot_id": tr.SnapshotAfter,
			"snapshots_expired": int64(tr.SnapshotsExpired), "files_deleted": int64(tr.FilesDeleted),
		}
		for i, f := range sc.Fields() {
			switch fb := b.Field(i).(type) {
			case *array.StringBuilder:
				fb.Append(fmt.Sprint(vals[f.Name]))
			case *array.Int64Builder:
				fb.Append(vals[f.Name].(int64))
			case *array.TimestampBuilder:
				fb.Append(arrow.Timestamp(vals[f.Name].(time.Time).UnixMicro()))
			default:
				b.Field(i).AppendNull()
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	_, err = c.com.Commit(ctx, lake.Change{
		Table: c.cfg.ErasureLogTable, Task: TaskErase + "-log-" + stage, Base: tbl,
		Summary: iceberg.Properties{SummaryErasureID: rep.ErasureID}, MaxConflicts: maxConflicts,
		Stage: func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
			rdr, err := array.NewRecordReader(sc, []arrow.RecordBatch{rec})
			if err != nil {
				return err
			}
			defer rdr.Release()
			return tx.Append(ctx, rdr, props)
		},
	})
	if err != nil {
		return fmt.Errorf("write erasure log: %w", err)
	}
	return nil
}

func isNoSuchTable(err error) bool { return errors.Is(err, icecat.ErrNoSuchTable) }

// eraseKeyed deletes the rows of a derived table (not raw: sessions, read
// models) whose string column named like a subject property holds the
// subject. nil: the table has no such column, or does not exist.
func (c *Compactor) eraseKeyed(ctx context.Context, name string, req EraseRequest, props map[string]bool) (*EraseTableReport, error) {
	tbl, err := c.deps.Catalog.LoadTable(ctx, name)
	if isNoSuchTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if tbl.Properties()[lake.PropKind] == lake.KindAuditLog || tbl.CurrentSnapshot() == nil {
		return nil, nil
	}
	var filter iceberg.BooleanExpression
	for p := range props {
		if f, ok := tbl.Schema().FindFieldByName(p); ok && f.Type.Equals(iceberg.PrimitiveTypes.String) {
			e := iceberg.EqualTo(iceberg.Reference(p), req.UserID)
			if filter == nil {
				filter = e
			} else {
				filter = iceberg.NewOr(filter, e)
			}
		}
	}
	if filter == nil {
		return nil, nil
	}
	tr := &EraseTableReport{Table: name, SnapshotBefore: tbl.CurrentSnapshot().SnapshotID, SnapshotAfter: tbl.CurrentSnapshot().SnapshotID}
	n, err := countRows(ctx, tbl, filter)
	if err != nil || n == 0 || req.DryRun {
		tr.Rows = n
		return tr, err
	}
	before, err := dataFilePaths(ctx, tbl)
	if err != nil {
		return nil, err
	}
	nt, err := c.com.Commit(ctx, lake.Change{Table: name, Task: TaskErase, Base: tbl,
		Summary: iceberg.Properties{lake.SummaryErasedSubject: lake.SubjectHash(req.UserID)},
		Stage: func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
			return tx.Delete(ctx, filter, props)
		}})
	if err != nil {
		return nil, err
	}
	after, err := dataFilePaths(ctx, nt)
	if err != nil {
		return nil, err
	}
	tr.Rows = n
	for f := range before {
		if !after[f] {
			tr.FilesRewritten++
			tr.Files = append(tr.Files, f)
		}
	}
	for f := range after {
		if !before[f] {
			tr.FilesWritten++
		}
	}
	if s := nt.CurrentSnapshot(); s != nil {
		tr.SnapshotAfter = s.SnapshotID
	}
	return tr, nil
}

// dataFilePaths are the data files of tbl's current snapshot.
func dataFilePaths(ctx context.Context, tbl *table.Table) (map[string]bool, error) {
	parts, _, err := livePartitions(ctx, tbl)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range parts {
		for _, f := range p.files {
			out[f.FilePath()] = true
		}
	}
	return out, nil
}

// countRows counts the rows of tbl filter selects.
func countRows(ctx context.Context, tbl *table.Table, filter iceberg.BooleanExpression) (int64, error) {
	_, it, err := tbl.Scan(table.WithRowFilter(filter)).ToArrowRecords(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for rec, err := range it {
		if err != nil {
			return 0, err
		}
		n += rec.NumRows()
		rec.Release()
	}
	return n, nil
}
