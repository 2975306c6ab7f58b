package streamer

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventlake/eventlake/internal/eventtime"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/sessionwin"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/readmodel"
	"github.com/eventlake/eventlake/schema"
)

// Commit tasks of user_sessions.
const (
	TaskSessions        = "sessions"
	TaskSessionsBuild   = "sessions-build"
	TaskSessionsReaggr  = "sessions-reaggregate"
	SummarySessionsWm   = "eventlake.sessions.watermark"
	propSessionsKey     = "eventlake.sessions.key"
	propSessionsGap     = "eventlake.sessions.gap"
	propSessionsOrders  = "eventlake.sessions.orders"
	propSessionsRevenue = "eventlake.sessions.revenue"
)

// Columns of user_sessions besides the key (named like the key column of
// the events) and ts (the session's start, so that read models bucket
// sessions by when they began).
const (
	ColSessionEnd = "session_end"
	ColEvents     = "events"
	ColOrders     = "orders"
	ColSeconds    = "seconds"
	ColOpen       = "open"
)

const usPerDay = int64(24 * time.Hour / time.Microsecond)

// SessionsConfig configures the session windows the hot tier keeps: a
// session is a run of events of one key (a user) at most Gap apart in
// event time, cut at midnight UTC, and each becomes a row of Table
// (read_models.sessions in the configuration file).
type SessionsConfig struct {
	// Off stops maintaining sessions (the table stays until dropped).
	Off bool `yaml:"off"`
	// Table is the sessions table (default user_sessions).
	Table string `yaml:"table"`
	// Key is the events' column naming the user (default the orders'
	// user column). Events of every type with this column count.
	Key string `yaml:"key"`
	// Orders is the event type whose events count as orders, and Revenue
	// its decimal column summed into revenue (default the orders').
	Orders  string `yaml:"orders"`
	Revenue string `yaml:"revenue"`
	// Gap, Lateness, MaxOpen and IdleTimeout: see sessionwin.Config.
	sessionwin.Config `yaml:",inline"`
}

// Defaults fills unset fields, the event columns from in.
func (c *SessionsConfig) Defaults(in lake.ModelInputs) {
	if c.Table == "" {
		c.Table = "user_sessions"
	}
	if c.Key == "" {
		c.Key = in.Orders.User
	}
	if c.Orders == "" {
		c.Orders = in.Orders.Type
	}
	if c.Revenue == "" {
		c.Revenue = in.Orders.Amount
	}
	c.Config.Defaults()
}

// Validate checks the configuration; call Defaults first.
func (c *SessionsConfig) Validate() error {
	if c.Off {
		return nil
	}
	if c.Key == lake.ColTs || lake.IsEnvelopeColumn(c.Key) {
		return fmt.Errorf("read_models.sessions.key %q must be a payload column (a user id), not an envelope column", c.Key)
	}
	if c.Gap >= 24*time.Hour {
		return fmt.Errorf("read_models.sessions.gap %v must be below a day: sessions are cut at midnight UTC", c.Gap)
	}
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("read_models.sessions: %w", err)
	}
	return nil
}

// Sessions is the resolved sessions declaration the hot tier maintains.
type Sessions struct {
	SessionsConfig
	// Scale is the decimal scale of revenue (that of the orders' column).
	Scale int32
}

// sessionFields are the columns of the sessions table, in order.
func (c *Sessions) fields() []iceberg.NestedField {
	ts := iceberg.PrimitiveTypes.TimestampTz
	long := iceberg.PrimitiveTypes.Int64
	return []iceberg.NestedField{
		{ID: 1, Name: c.Key, Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "the user (" + c.Key + " of the events)"},
		{ID: 2, Name: lake.ColTs, Type: ts, Required: true, Doc: "the session's first event time"},
		{ID: 3, Name: ColSessionEnd, Type: ts, Required: true, Doc: "the session's last event time"},
		{ID: 4, Name: ColEvents, Type: long, Required: true, Doc: "events of the user in the session"},
		{ID: 5, Name: ColOrders, Type: long, Required: true, Doc: "of which " + c.Orders + " events"},
		{ID: 6, Name: lake.ColRevenue, Type: iceberg.DecimalTypeOf(38, int(c.Scale)), Required: true, Doc: "sum of their " + c.Revenue},
		{ID: 7, Name: ColSeconds, Type: iceberg.DecimalTypeOf(18, 6), Required: true, Doc: "session_end - ts, in seconds"},
		{ID: 8, Name: ColOpen, Type: iceberg.PrimitiveTypes.Bool, Required: true, Doc: "provisional: the session may still grow; the next commit replaces it"},
		{ID: 9, Name: readmodel.ColSeq, Type: long, Required: true, Doc: "order in which the hot tier committed the closed session (0: rewritten by re-aggregation)"},
	}
}

// Source is the table as a source of declared read models: its final
// rows (open = false).
func (c *Sessions) Source() readmodel.Source {
	cols := map[string]iceberg.Type{}
	for _, f := range c.fields() {
		if f.Name != ColOpen && f.Name != readmodel.ColSeq {
			cols[f.Name] = f.Type
		}
	}
	return readmodel.Source{Type: c.Table, Columns: cols, Table: c.Table,
		Rows: iceberg.EqualTo(iceberg.Reference(ColOpen), false)}
}

// TableDef is the layout of the sessions table: partitioned by open (the
// provisional rows every commit replaces) and the day of ts.
func (c *Sessions) TableDef() lake.TableDef {
	props := lake.ReadModelProperties(c.Table)
	props[propSessionsKey] = c.Key
	props[propSessionsGap] = c.Gap.String()
	props[propSessionsOrders] = c.Orders
	props[propSessionsRevenue] = c.Revenue
	return lake.TableDef{
		Name:   c.Table,
		Schema: iceberg.NewSchema(0, c.fields()...),
		Spec: iceberg.NewPartitionSpec(
			iceberg.PartitionField{SourceIDs: []int{8}, FieldID: 1000, Name: ColOpen, Transform: iceberg.IdentityTransform{}},
			iceberg.PartitionField{SourceIDs: []int{2}, FieldID: 1001, Name: "ts_day", Transform: iceberg.DayTransform{}},
		),
		Properties: props,
	}
}

// compatible says why an existing table cannot hold these sessions.
func (c *Sessions) compatible(tbl *table.Table) error {
	props := tbl.Properties()
	for k, want := range map[string]string{propSessionsKey: c.Key, propSessionsGap: c.Gap.String(),
		propSessionsOrders: c.Orders, propSessionsRevenue: c.Revenue} {
		if got := props[k]; got != want {
			return fmt.Errorf("sessions table %s was built with %s %q, the configuration says %q: drop it with `eventlake models drop %s` to rebuild it from the lake",
				c.Table, strings.TrimPrefix(k, "eventlake.sessions."), got, want, c.Table)
		}
	}
	for _, f := range c.fields() {
		got, ok := tbl.Schema().FindFieldByName(f.Name)
		if !ok || !got.Type.Equals(f.Type) {
			return fmt.Errorf("sessions table %s lacks column %s %s: drop it with `eventlake models drop %s` to rebuild it", c.Table, f.Name, f.Type, c.Table)
		}
	}
	return nil
}

// sessState is the hot tier's sessions: the engine holding the open
// ones, the closed ones not committed yet, and the table's state.
//
// mu guards it, but binds (the consuming goroutine's) and the fields fixed
// at New.
type sessState struct {
	*Sessions
	mu sync.Mutex
	coldTable
	eng     *sessionwin.Engine
	pending []sessionwin.Session // closed since the last commit
	next    int64                // the number of the next closed session committed (from 1)
	wm      int64                // committed watermark
	dirty   bool                 // events applied since the last commit
	// read is the next offset of every partition read of the topics the
	// sessions count: the engine holds the events below it.
	read  lake.Offsets
	binds map[*schema.TypeVersion]sessBind
	// clock is each partition's event-time progress: the engine's
	// watermark follows the least latest event time of the partitions not
	// read to their end (see sessionwin.Config.ExternalTime).
	clock   map[string]map[int32]*partClock
	ready   bool
	derived []*model // declared models over the table
	commits prometheus.Counter
	fixes   prometheus.Counter
}

type partClock struct {
	latest       int64 // the latest event time read (MinInt64: none)
	behind, seen bool
}

// initClock marks the partitions read from below their end as behind.
// Called before reading.
func (ss *sessState) initClock(ends map[string]map[int32]int64, starts map[string]map[int32]int64) {
	ss.clock = map[string]map[int32]*partClock{}
	for topic, parts := range starts {
		for p, st := range parts {
			if ss.clock[topic] == nil {
				ss.clock[topic] = map[int32]*partClock{}
			}
			end, ok := ends[topic][p]
			ss.clock[topic][p] = &partClock{latest: math.MinInt64, behind: !ok || st < end}
		}
	}
}

// readPartition notes that topic's partition p was read up to event time
// latest (MinInt64: no event), with more records after it or not.
// Called with ss.mu held.
func (ss *sessState) readPartition(topic string, p int32, latest int64, more bool) {
	parts := ss.clock[topic]
	if parts == nil {
		parts = map[int32]*partClock{}
		ss.clock[topic] = parts
	}
	pc := parts[p]
	if pc == nil {
		pc = &partClock{latest: math.MinInt64}
		parts[p] = pc
	}
	pc.latest, pc.behind, pc.seen = max(pc.latest, latest), more, true
}

// tick moves the engine's event time on: the least latest event time of
// the partitions behind, or the latest of all when none is. Called with
// ss.mu held.
func (ss *sessState) tick() {
	all, least, behind := int64(math.MinInt64), int64(math.MaxInt64), false
	for _, parts := range ss.clock {
		for _, pc := range parts {
			all = max(all, pc.latest)
			if pc.behind {
				behind = true
				least = min(least, pc.latest)
			}
		}
	}
	switch {
	case !behind && all != math.MinInt64:
		ss.eng.SetEventTime(all)
	case behind && least != math.MinInt64:
		ss.eng.SetEventTime(least)
	}
}

// sessBind says how events of one schema version count (key < 0: not).
type sessBind struct {
	key, revenue int
	order        bool
	scale        int32
}

func newSessState(c *Sessions, reg prometheus.Registerer) (*sessState, error) {
	cfg := c.Config
	cfg.ExternalTime = true
	eng, err := sessionwin.New(cfg, reg)
	if err != nil {
		return nil, err
	}
	ss := &sessState{Sessions: c, coldTable: coldTable{name: c.Table}, eng: eng, wm: sessionwin.NoWatermark,
		binds: map[*schema.TypeVersion]sessBind{}, read: lake.Offsets{}, clock: map[string]map[int32]*partClock{},
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_sessions_committed_total", Help: "Closed sessions committed to the sessions table by the hot tier.",
		}),
		fixes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_sessions_day_rewrites_total", Help: "Days of sessions the re-aggregation found different from the lake's events and rewrote.",
		}),
	}
	reg.MustRegister(ss.commits, ss.fixes)
	return ss, nil
}

func (ss *sessState) bind(v *schema.TypeVersion) sessBind {
	b, ok := ss.binds[v]
	if ok {
		return b
	}
	b = sessBind{key: -1, revenue: -1}
	if k := v.Column(ss.Key); k >= 0 && v.Columns[k].Type.Equals(iceberg.PrimitiveTypes.String) {
		b.key = k
		if v.Subject == ss.Orders {
			b.order = true
			if r := v.Column(ss.Revenue); r >= 0 {
				if d, ok := v.Columns[r].Type.(iceberg.DecimalType); ok && int32(d.Scale()) <= ss.Scale {
					b.revenue, b.scale = r, int32(d.Scale())
				} else {
					b.key = -1 // its revenue cannot be summed exactly: not counted
				}
			}
		}
	}
	ss.binds[v] = b
	return b
}

// engineKey is the engine's key of an event of user key at ts: the user
// and the day, so that sessions are cut at midnight UTC.
func engineKey(key []byte, ts int64) string {
	var buf [64]byte
	b := append(append(buf[:0], key...), 0)
	return string(strconv.AppendInt(b, eventtime.FloorDiv(ts, usPerDay), 36))
}

// userOf is the user of an engine key.
func userOf(k string) string {
	if i := strings.LastIndexByte(k, 0); i >= 0 {
		return k[:i]
	}
	return k
}

// input is ev as the sessions count it (false: they do not). Called by
// the consuming goroutine only.
func (ss *sessState) input(ev *schema.Event) (sessInput, bool) {
	b := ss.bind(ev.Version)
	if b.key < 0 {
		return sessInput{}, false
	}
	k, ok := ev.String(b.key)
	if !ok || len(k) == 0 {
		return sessInput{}, false
	}
	in := sessInput{key: engineKey(k, ev.TsMicros), ts: ev.TsMicros}
	if b.order {
		in.c.Orders = 1
		if b.revenue >= 0 {
			if d, ok := ev.Decimal(b.revenue); ok {
				in.c.Revenue, _ = readmodel.Rescale(d, b.scale, ss.Scale)
			}
		}
	}
	return in, true
}

// addToSessions counts one accepted event. Called with ss.mu held.
func (s *Streamer) addToSessions(in sessInput) {
	ss := s.sess
	n := len(ss.pending)
	ss.pending, _ = ss.eng.Add(ss.pending, in.key, in.ts, in.c)
	s.hot.Add(int64(len(ss.pending) - n)) // held until committed, like model entries
	ss.dirty = true
}

// bootstrapSessions creates or loads the sessions table, builds a new one
// from the lake's history and restores the open sessions it holds.
func (s *Streamer) bootstrapSessions(ctx context.Context) error {
	ss := s.sess
	cat := s.deps.Catalog
	tbl, err := cat.LoadTable(ctx, ss.Table)
	switch {
	case errors.Is(err, icecat.ErrNoSuchTable):
		if tbl, err = cat.EnsureTable(ctx, ss.TableDef()); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if err := ss.compatible(tbl); err != nil {
			return err
		}
	}
	if tbl.CurrentSnapshot() == nil {
		if err := s.buildSessions(ctx, tbl); err != nil {
			return err
		}
	}
	return s.loadSessions(ctx)
}

// loadSessions restores the engine from the table's provisional rows and
// watermark: reading resumes at its offsets, so that no event is counted
// twice.
func (s *Streamer) loadSessions(ctx context.Context) error {
	ss := s.sess
	v, err := loadView(ctx, s.deps.Catalog, ss.Table)
	if err != nil {
		return err
	}
	var open []sessionwin.Session
	wm := int64(sessionwin.NoWatermark)
	if v.tbl != nil && v.hasSnap {
		if open, err = ss.readSessions(ctx, v.tbl, iceberg.EqualTo(iceberg.Reference(ColOpen), true)); err != nil {
			return err
		}
		if wm, err = sessionsWatermark(v.tbl); err != nil {
			return err
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.eng.Restore(open, wm); err != nil {
		return fmt.Errorf("restore the open sessions of %s: %w", ss.Table, err)
	}
	ss.tbl, ss.snapshot, ss.hasSnap, ss.offsets = v.tbl, v.snapshot, v.hasSnap, v.offsets
	ss.next = 1
	if n, ok := v.offsets.Get(readmodel.SeqTopic(ss.Table), 0); ok {
		ss.next = n
	}
	ss.wm, ss.pending, ss.dirty, ss.ready = wm, nil, false, true
	s.log.Info("sessions loaded", logkey.Table, ss.Table, "open", len(open), "committed", ss.next-1)
	return nil
}

// sessionsWatermark is the watermark the latest commit of the hot tier
// stored (NoWatermark if none did).
func sessionsWatermark(tbl *table.Table) (int64, error) {
	wm := int64(sessionwin.NoWatermark)
	var err error
	lake.Walk(tbl, func(snap *table.Snapshot) bool {
		if snap.Summary == nil {
			return true
		}
		raw, ok := snap.Summary.Properties[SummarySessionsWm]
		if !ok {
			return true
		}
		wm, err = strconv.ParseInt(raw, 10, 64)
		return false
	})
	return wm, err
}

// readSessions reads the rows of the sessions table filter selects, with
// engine keys.
func (ss *sessState) readSessions(ctx context.Context, tbl *table.Table, filter iceberg.BooleanExpression) ([]sessionwin.Session, error) {
	_, it, err := tbl.Scan(table.WithRowFilter(filter)).ToArrowRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ss.Table, err)
	}
	var out []sessionwin.Session
	for rec, err := range it {
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", ss.Table, err)
		}
		col := func(name string) arrow.Array { return rec.Column(rec.Schema().FieldIndices(name)[0]) }
		keys := col(ss.Key).(*array.String)
		starts, ends := col(lake.ColTs).(*array.Timestamp), col(ColSessionEnd).(*array.Timestamp)
		events, orders := col(ColEvents).(*array.Int64), col(ColOrders).(*array.Int64)
		revs := col(lake.ColRevenue).(*array.Decimal128)
		for i := range int(rec.NumRows()) {
			start := int64(starts.Value(i))
			out = append(out, sessionwin.Session{Key: engineKey([]byte(keys.Value(i)), start), Start: start,
				End: int64(ends.Value(i)), Events: events.Value(i), Orders: orders.Value(i), Revenue: revs.Value(i)})
		}
		rec.Release()
	}
	return out, nil
}

// record builds the rows of sessions: closed ones numbered from next
// (0: all numbered 0, rewritten), then the open ones.
func (ss *sessState) record(sc *arrow.Schema, closed, open []sessionwin.Session, next int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	idx := func(name string) int { return sc.FieldIndices(name)[0] }
	keys := b.Field(idx(ss.Key)).(*array.StringBuilder)
	starts, ends := b.Field(idx(lake.ColTs)).(*array.TimestampBuilder), b.Field(idx(ColSessionEnd)).(*array.TimestampBuilder)
	events, orders := b.Field(idx(ColEvents)).(*array.Int64Builder), b.Field(idx(ColOrders)).(*array.Int64Builder)
	revs, secs := b.Field(idx(lake.ColRevenue)).(*array.Decimal128Builder), b.Field(idx(ColSeconds)).(*array.Decimal128Builder)
	opens, seqs := b.Field(idx(ColOpen)).(*array.BooleanBuilder), b.Field(idx(readmodel.ColSeq)).(*array.Int64Builder)
	add := func(x sessionwin.Session, isOpen bool, n int64) {
		keys.Append(userOf(x.Key))
		starts.Append(arrow.Timestamp(x.Start))
		ends.Append(arrow.Timestamp(x.End))
		events.Append(x.Events)
		orders.Append(x.Orders)
		revs.Append(x.Revenue)
		secs.Append(decimal128.FromI64(x.End - x.Start))
		opens.Append(isOpen)
		seqs.Append(n)
	}
	for i, x := range closed {
		n := int64(0)
		if next > 0 {
			n = next + int64(i)
		}
		add(x, false, n)
	}
	for _, x := range open {
		add(x, true, 0)
	}
	return b.NewRecordBatch()
}

// stage replaces the rows del selects with closed (numbered from next)
// and open sessions.
func (ss *sessState) stage(del iceberg.BooleanExpression, closed, open []sessionwin.Session, next int64) lake.Stage {
	return lake.Replace(ss.Table, del, func(sc *arrow.Schema) (arrow.RecordBatch, error) {
		if len(closed)+len(open) == 0 {
			return nil, nil
		}
		return ss.record(sc, closed, open, next), nil
	})
}

// commitSessions commits the sessions closed since the last commit (as
// final rows, numbered), the open ones (replacing the provisional rows)
// and the watermark, with the offsets read: the table then holds exactly
// the engine's state after those offsets. The models over the table are
// fed the closed sessions it now holds.
func (s *Streamer) commitSessions(ctx context.Context) (bool, error) {
	ss := s.sess
	ss.mu.Lock()
	if !ss.ready || ss.tbl == nil {
		ss.mu.Unlock()
		return false, nil
	}
	held := len(ss.pending)
	ss.pending = ss.eng.Advance(ss.pending, s.deps.Now())
	s.hot.Add(int64(len(ss.pending) - held))
	if len(ss.pending) == 0 && !ss.dirty {
		ss.mu.Unlock()
		return false, nil
	}
	closed, open, wm := slices.Clone(ss.pending), ss.eng.Open(), ss.eng.Watermark()
	offsets := lake.Offsets{}
	for topic, parts := range ss.read {
		for p, h := range parts {
			if o, _ := ss.offsets.Get(topic, p); h > o {
				offsets.Set(topic, p, h)
			}
		}
	}
	seqTopic := readmodel.SeqTopic(ss.Table)
	next := ss.next
	offsets.Set(seqTopic, 0, next+int64(len(closed)))
	base, tbl := ss.offsets.Clone(), ss.tbl
	ss.dirty = false
	ss.mu.Unlock()

	start := time.Now()
	n := len(closed)
	var erased map[string]bool // subjects erased since tbl (SHA-256)
	nt, err := s.committer.Commit(ctx, lake.Change{Table: ss.Table, Task: TaskSessions, Base: tbl, Offsets: offsets, Fence: base,
		Summary: iceberg.Properties{SummarySessionsWm: strconv.FormatInt(wm, 10)},
		Stage: func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
			staged, err := tx.StagedTable()
			if err != nil {
				return err
			}
			// An erasure removed a subject's rows since the engine's
			// state was last committed: none of its sessions is written
			// again.
			if erased = erasedSince(staged.Table, ss.snapshot); len(erased) > 0 {
				closed, open = ss.without(erased, closed), ss.without(erased, open)
			}
			return ss.stage(iceberg.EqualTo(iceberg.Reference(ColOpen), true), closed, open, next)(ctx, tx, props)
		}})
	if err != nil {
		ss.mu.Lock()
		ss.dirty = true
		ss.mu.Unlock()
		return false, fmt.Errorf("commit %s: %w", ss.Table, err)
	}
	s.m.commitDuration.WithLabelValues(ss.Table).Observe(time.Since(start).Seconds())
	s.m.lastCommit.WithLabelValues(ss.Table).Set(float64(s.deps.Now().UnixNano()) / 1e9)
	ss.commits.Add(float64(len(closed)))

	ss.mu.Lock()
	held = len(ss.pending)
	ss.pending = slices.Clone(ss.pending[n:])
	if len(erased) > 0 {
		ss.pending = ss.without(erased, ss.pending)
		dropped := ss.eng.Forget(func(k string) bool { return erased[lake.SubjectHash(userOf(k))] })
		s.log.Info("sessions of erased subjects dropped", logkey.Table, ss.Table, "subjects", len(erased), "open", dropped)
	}
	ss.next += int64(n)
	ss.offsets, ss.tbl, ss.wm = ss.offsets.Merge(offsets), nt, wm
	if snap := nt.CurrentSnapshot(); snap != nil {
		ss.snapshot, ss.hasSnap = snap.SnapshotID, true
	}
	s.hot.Add(-int64(held - len(ss.pending)))
	ss.mu.Unlock()
	// The models over the table count the sessions it now holds.
	for _, md := range ss.derived {
		md.mu.Lock()
		touched := map[string]bool{}
		for i, x := range closed {
			if row := s.addSessionToModel(md, next+int64(i), x); row != nil {
				touched[row.Key] = true
			}
		}
		md.read.Set(seqTopic, 0, next+int64(n))
		s.push.add(s.updates(md, slices.Collect(maps.Keys(touched))))
		md.mu.Unlock()
	}
	s.resumeIfDrained()
	s.setStateSizes()
	return true, nil
}

// addSessionToModel counts closed session x, committed as number n, in
// md, a model over the sessions table. Called with md.mu held.
func (s *Streamer) addSessionToModel(md *model, n int64, x sessionwin.Session) *readmodel.Row {
	ss := s.sess
	topic := readmodel.SeqTopic(ss.Table)
	if o, _ := md.offsets.Get(topic, 0); n < o {
		return nil
	}
	user := []byte(userOf(x.Key))
	c, ok := md.m.ContributeFrom(func(col string) readmodel.Value {
		switch col {
		case ss.Key:
			return readmodel.Value{B: user}
		case lake.ColTs:
			return readmodel.Value{I: x.Start}
		case ColSessionEnd:
			return readmodel.Value{I: x.End}
		case ColEvents:
			return readmodel.Value{I: x.Events}
		case ColOrders:
			return readmodel.Value{I: x.Orders}
		case lake.ColRevenue:
			return readmodel.Value{D: x.Revenue}
		case ColSeconds:
			return readmodel.Value{D: decimal128.FromI64(x.End - x.Start)}
		}
		return readmodel.Value{Null: true}
	})
	if !ok {
		return nil
	}
	md.maxTs = max(md.maxTs, x.Start)
	return s.addEntry(md, topic, 0, n, c)
}

// addEntry holds contribution c of the event at off of topic's partition
// p in md's hot rows, and returns the row it changed. Called with md.mu
// held.
func (s *Streamer) addEntry(md *model, topic string, p int32, off int64, c readmodel.Contribution) *readmodel.Row {
	parts := md.entries[topic]
	if parts == nil {
		parts = map[int32][]modelEntry{}
		md.entries[topic] = parts
	}
	parts[p] = append(parts[p], modelEntry{off: off, c: c})
	md.n++
	s.hot.Add(1)
	return md.hot.Apply(c)
}

// feedDerived gives md, a model over the sessions table, the closed
// sessions the table holds past md's offsets (committed before a restart
// that lost md's own commit).
func (s *Streamer) feedDerived(ctx context.Context, md *model) error {
	ss := s.sess
	ss.mu.Lock()
	tbl, next := ss.tbl, ss.next
	ss.mu.Unlock()
	md.mu.RLock()
	from, _ := md.offsets.Get(readmodel.SeqTopic(ss.Table), 0)
	md.mu.RUnlock()
	if tbl == nil {
		return nil
	}
	type entry struct {
		n int64
		c readmodel.Contribution
	}
	var es []entry
	if err := md.m.Tail(ctx, tbl, max(from, 1), func(n int64, c readmodel.Contribution) { es = append(es, entry{n, c}) }); err != nil {
		return fmt.Errorf("read model %s: read the sessions it has not counted: %w", md.name, err)
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	for _, e := range es {
		s.addEntry(md, readmodel.SeqTopic(ss.Table), 0, e.n, e.c)
	}
	md.read.Set(readmodel.SeqTopic(ss.Table), 0, next)
	return nil
}

// sessionEvent is one event as sessions count it, read from the lake.
type sessionEvent struct {
	key string
	ts  int64
	c   sessionwin.Contribution
	at  [3]int64 // topic index, partition, offset: a stable order for ties
}

// scanSessionEvents reads the events of [from, to) in event time from the
// raw tables (those below below, when set) and returns them in time
// order.
func (ss *sessState) scanSessionEvents(ctx context.Context, raws []*table.Table, from, to int64, below lake.Offsets) ([]sessionEvent, error) {
	var out []sessionEvent
	topics := map[string]int64{}
	for _, tbl := range raws {
		sc := tbl.Schema()
		kf, ok := sc.FindFieldByName(ss.Key)
		if !ok || !kf.Type.Equals(iceberg.PrimitiveTypes.String) || tbl.CurrentSnapshot() == nil {
			continue
		}
		fields := []string{ss.Key, lake.ColTs, lake.ColType, lake.ColKafkaTopic, lake.ColKafkaPartition, lake.ColKafkaOffset}
		scale := int32(-1)
		if rf, ok := sc.FindFieldByName(ss.Revenue); ok && slices.Contains(lake.TypesOf(tbl.Properties()), ss.Orders) {
			if d, ok := rf.Type.(iceberg.DecimalType); ok && int32(d.Scale()) <= ss.Scale {
				fields, scale = append(fields, ss.Revenue), int32(d.Scale())
			}
		}
		filter := iceberg.NewAnd(iceberg.GreaterThanEqual(iceberg.Reference(lake.ColTs), iceberg.Timestamp(from)),
			iceberg.LessThan(iceberg.Reference(lake.ColTs), iceberg.Timestamp(to)))
		_, it, err := tbl.Scan(table.WithRowFilter(filter), table.WithSelectedFields(fields...)).ToArrowRecords(ctx)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", tbl.Identifier(), err)
		}
		for rec, err := range it {
			if err != nil {
				return nil, fmt.Errorf("scan %s: %w", tbl.Identifier(), err)
			}
			col := func(name string) arrow.Array { return rec.Column(rec.Schema().FieldIndices(name)[0]) }
			keys, types := col(ss.Key).(*array.String), col(lake.ColType).(*array.String)
			tss := col(lake.ColTs).(*array.Timestamp)
			tps, parts, offs := col(lake.ColKafkaTopic).(*array.String), col(lake.ColKafkaPartition).(*array.Int32), col(lake.ColKafkaOffset).(*array.Int64)
			var revs *array.Decimal128
			if scale >= 0 {
				revs = col(ss.Revenue).(*array.Decimal128)
			}
			for i := range int(rec.NumRows()) {
				if keys.IsNull(i) || keys.Value(i) == "" {
					continue
				}
				if below != nil {
					if o, ok := below.Get(tps.Value(i), parts.Value(i)); !ok || offs.Value(i) >= o {
						continue
					}
				}
				e := sessionEvent{key: keys.Value(i), ts: int64(tss.Value(i))}
				if types.Value(i) == ss.Orders {
					e.c.Orders = 1
					if revs != nil && !revs.IsNull(i) {
						e.c.Revenue, _ = readmodel.Rescale(revs.Value(i), scale, ss.Scale)
					}
				}
				t, ok := topics[tps.Value(i)]
				if !ok {
					t = int64(len(topics))
					topics[tps.Value(i)] = t
				}
				e.at = [3]int64{t, int64(parts.Value(i)), offs.Value(i)}
				out = append(out, e)
			}
			rec.Release()
		}
	}
	slices.SortFunc(out, func(a, b sessionEvent) int {
		return cmp.Or(cmp.Compare(a.ts, b.ts), slices.Compare(a.at[:], b.at[:]))
	})
	return out, nil
}

// rawTimeSpan is the event-time span of the raw tables' data files
// (from their column bounds), in microseconds; ok false when empty.
func rawTimeSpan(ctx context.Context, raws []*table.Table) (lo, hi int64, ok bool, err error) {
	lo, hi = math.MaxInt64, math.MinInt64
	for _, tbl := range raws {
		if tbl.CurrentSnapshot() == nil {
			continue
		}
		f, found := tbl.Schema().FindFieldByName(lake.ColTs)
		if !found {
			continue
		}
		tasks, err := tbl.Scan().PlanFiles(ctx)
		if err != nil {
			return 0, 0, false, fmt.Errorf("plan files of %s: %w", tbl.Identifier(), err)
		}
		for _, t := range tasks {
			l, lok := t.File.LowerBoundValues()[f.ID]
			u, uok := t.File.UpperBoundValues()[f.ID]
			if !lok || !uok || len(l) != 8 || len(u) != 8 {
				return 0, 0, false, fmt.Errorf("data file %s of %s has no event-time bounds", t.File.FilePath(), tbl.Identifier())
			}
			// Iceberg's single-value serialization: little-endian.
			lo, hi = min(lo, int64(binary.LittleEndian.Uint64(l))), max(hi, int64(binary.LittleEndian.Uint64(u)))
			ok = true
		}
	}
	return lo, hi, ok, nil
}

// buildSessions computes a new sessions table from every event the raw
// tables hold, an hour of event time at a time in time order through the
// engine, and commits the closed sessions, the open ones and the
// watermark with the offsets the raw tables cover.
func (s *Streamer) buildSessions(ctx context.Context, tbl *table.Table) error {
	ss := s.sess
	start := time.Now()
	raws, err := readmodel.RawTables(ctx, s.deps.Catalog)
	if err != nil {
		return err
	}
	covered, err := lake.CoveredOffsets(raws)
	if err != nil {
		return err
	}
	lo, hi, ok, err := rawTimeSpan(ctx, raws)
	if err != nil || !ok || len(covered) == 0 {
		return err // an empty lake: sessions start with the topics
	}
	cfg := ss.Config
	cfg.IdleTimeout = 0
	eng, err := sessionwin.New(cfg, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	hour := int64(time.Hour / time.Microsecond)
	var closed []sessionwin.Session
	events := 0
	for h := eventtime.FloorDiv(lo, hour) * hour; h <= hi; h += hour {
		evs, err := ss.scanSessionEvents(ctx, raws, h, h+hour, covered)
		if err != nil {
			return fmt.Errorf("build %s: %w", ss.Table, err)
		}
		for _, e := range evs {
			closed, _ = eng.Add(closed, engineKey([]byte(e.key), e.ts), e.ts, e.c)
		}
		events += len(evs)
		closed = eng.Advance(closed, time.Time{})
	}
	open := eng.Open()
	covered.Set(readmodel.SeqTopic(ss.Table), 0, 1+int64(len(closed)))
	_, err = s.committer.Commit(ctx, lake.Change{Table: ss.Table, Task: TaskSessionsBuild, Base: tbl,
		Offsets: covered, Fence: lake.Offsets{},
		Summary: iceberg.Properties{SummarySessionsWm: strconv.FormatInt(eng.Watermark(), 10)},
		Stage:   ss.stage(nil, closed, open, 1)})
	if errors.Is(err, lake.ErrFenced) {
		return nil // another committer built it: load theirs
	}
	if err != nil {
		return fmt.Errorf("build %s: %w", ss.Table, err)
	}
	s.log.Info("sessions built from the lake", logkey.Table, ss.Table, "events", events, "closed", len(closed), "open", len(open),
		logkey.Duration, time.Since(start))
	return nil
}

// reaggregateSessions recomputes the sessions of the closed days of the
// lookback (those whose every session the watermark has closed) from the
// raw events below the table's offsets, rewrites the days that differ
// (late events the hot tier could not apply, sessions split to bound
// memory, erasures), and then re-aggregates the models over the table.
func (s *Streamer) reaggregateSessions(ctx context.Context) {
	ss := s.sess
	ss.mu.Lock()
	wm, below, tbl := ss.wm, ss.offsets.Clone(), ss.tbl
	ss.mu.Unlock()
	// The models over the table must have committed every session they
	// were fed: their re-aggregation counts every row it holds.
	caughtUp := true
	for _, md := range ss.derived {
		md.mu.RLock()
		if md.n > 0 {
			caughtUp = false
		}
		md.mu.RUnlock()
	}
	if wm == sessionwin.NoWatermark || tbl == nil || !caughtUp {
		return
	}
	// A day's sessions end before midnight: all are closed once the
	// watermark is a gap past it.
	to := eventtime.FloorDiv(wm-ss.Gap.Microseconds(), usPerDay) * usPerDay
	days := max(int64(1), (s.cfg.ReaggregateLookback.Microseconds()+usPerDay-1)/usPerDay)
	from := to - days*usPerDay
	if err := s.resessionize(ctx, from, to, below); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("re-aggregate sessions", logkey.Table, ss.Table, logkey.Err, err)
		}
		return
	}
	for _, md := range ss.derived {
		_, err := Backfill(ctx, s.deps.Catalog, s.committer, BackfillConfig{
			Model: md.m, From: time.UnixMicro(from).UTC(), To: time.UnixMicro(to).UTC(), Chunk: 24 * time.Hour,
			Wait: 10 * time.Second, RunID: "reaggregate-sessions-" + strconv.FormatInt(time.Now().UnixNano(), 36), SkipUnchanged: true,
		}, s.log)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("re-aggregate read model", logkey.Table, md.name, logkey.Err, err)
		}
	}
}

// resessionize rewrites the days of [from, to) whose sessions differ from
// those of the raw events below below.
func (s *Streamer) resessionize(ctx context.Context, from, to int64, below lake.Offsets) error {
	ss := s.sess
	raws, err := readmodel.RawTables(ctx, s.deps.Catalog)
	if err != nil {
		return err
	}
	rawOff, err := lake.CoveredOffsets(raws)
	if err != nil {
		return err
	}
	for topic, parts := range below {
		for p, o := range parts {
			if r, _ := rawOff.Get(topic, p); r < o && !strings.HasPrefix(topic, "@") {
				return fmt.Errorf("%w: %s partition %d at %d, sessions at %d", errRawBehind, topic, p, r, o)
			}
		}
	}
	for day := from; day < to; day += usPerDay {
		evs, err := ss.scanSessionEvents(ctx, raws, day, day+usPerDay, below)
		if err != nil {
			return err
		}
		in := make([]sessionwin.Event, len(evs))
		for i, e := range evs {
			in[i] = sessionwin.Event{Key: e.key, Time: e.ts, Contribution: e.c}
		}
		want, err := sessionwin.Sessionize(ss.Gap, in)
		if err != nil {
			return err
		}
		span := iceberg.NewAnd(iceberg.EqualTo(iceberg.Reference(ColOpen), false),
			iceberg.GreaterThanEqual(iceberg.Reference(lake.ColTs), iceberg.Timestamp(day)),
			iceberg.LessThan(iceberg.Reference(lake.ColTs), iceberg.Timestamp(day+usPerDay)))
		ss.mu.Lock()
		tbl := ss.tbl
		ss.mu.Unlock()
		have, err := ss.readSessions(ctx, tbl, span)
		if err != nil {
			return err
		}
		for i := range want {
			want[i].Key = engineKey([]byte(want[i].Key), want[i].Start)
		}
		if sameSessions(have, want) {
			continue
		}
		nt, err := s.committer.Commit(ctx, lake.Change{Table: ss.Table, Task: TaskSessionsReaggr, Base: tbl,
			Stage: func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
				staged, err := tx.StagedTable()
				if err != nil {
					return err
				}
				if cur := staged.CurrentSnapshot(); cur == nil || cur.SnapshotID != tbl.CurrentSnapshot().SnapshotID {
					return errModelMoved // the hot tier committed: the next round looks again
				}
				return ss.stage(span, want, nil, 0)(ctx, tx, props)
			}})
		if errors.Is(err, errModelMoved) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("rewrite the sessions of %s: %w", time.UnixMicro(day).UTC().Format(time.DateOnly), err)
		}
		ss.fixes.Inc()
		s.log.Info("sessions re-aggregated", logkey.Table, ss.Table, "day", time.UnixMicro(day).UTC().Format(time.DateOnly),
			"had", len(have), "now", len(want))
		ss.mu.Lock()
		ss.tbl = nt
		if snap := nt.CurrentSnapshot(); snap != nil {
			ss.snapshot = snap.SnapshotID
		}
		ss.mu.Unlock()
	}
	return nil
}

// sameSessions reports whether a and b hold the same sessions.
func sameSessions(a, b []sessionwin.Session) bool {
	if len(a) != len(b) {
		return false
	}
	order := func(x, y sessionwin.Session) int {
		return cmp.Or(cmp.Compare(x.Key, y.Key), cmp.Compare(x.Start, y.Start))
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, order)
	slices.SortFunc(b, order)
	for i := range a {
		x, y := a[i], b[i]
		if x.Key != y.Key || x.Start != y.Start || x.End != y.End || x.Events != y.Events || x.Orders != y.Orders || x.Revenue != y.Revenue {
			return false
		}
	}
	return true
}

// initSessionsClock marks the partitions of the topics sessions read
// that start below their end as behind, so that the watermark waits for
// them (a backlog read one partition after another).
func (s *Streamer) initSessionsClock(ctx context.Context, adm *kadm.Client, starts map[string]map[int32]kgo.Offset) error {
	var topics []string
	from := map[string]map[int32]int64{}
	s.srcMu.Lock()
	counted := maps.Clone(s.modelTopics)
	s.srcMu.Unlock()
	for topic, parts := range starts {
		if !counted[topic] {
			continue
		}
		topics = append(topics, topic)
		from[topic] = map[int32]int64{}
		for p, o := range parts {
			from[topic][p] = o.EpochOffset().Offset
		}
	}
	ends := map[string]map[int32]int64{}
	if len(topics) > 0 {
		lo, err := adm.ListEndOffsets(ctx, topics...)
		if err != nil {
			return fmt.Errorf("list end offsets of %v: %w", topics, err)
		}
		lo.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				if ends[o.Topic] == nil {
					ends[o.Topic] = map[int32]int64{}
				}
				ends[o.Topic][o.Partition] = o.Offset
			}
		})
	}
	s.sess.mu.Lock()
	defer s.sess.mu.Unlock()
	s.sess.initClock(ends, from)
	return nil
}

// erasedSince collects the subjects whose rows erasures removed from tbl
// after snapshot since (SHA-256, hex).
func erasedSince(tbl *table.Table, since int64) map[string]bool {
	out := map[string]bool{}
	lake.Walk(tbl, func(snap *table.Snapshot) bool {
		if snap.SnapshotID == since {
			return false
		}
		if snap.Summary != nil {
			if h := snap.Summary.Properties[lake.SummaryErasedSubject]; h != "" {
				out[h] = true
			}
		}
		return true
	})
	return out
}

// without returns the sessions of list whose user is not among erased.
func (ss *sessState) without(erased map[string]bool, list []sessionwin.Session) []sessionwin.Session {
	out := make([]sessionwin.Session, 0, len(list))
	for _, x := range list {
		if !erased[lake.SubjectHash(userOf(x.Key))] {
			out = append(out, x)
		}
	}
	return out
}
