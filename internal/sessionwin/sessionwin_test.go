package sessionwin

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const us = time.Microsecond

// ev is an event with one order of ts cents, so that sums show which
// events a session holds.
func ev(key string, ts int64) Event {
	return Event{Key: key, Time: ts, Contribution: Contribution{Orders: 1, Revenue: decimal128.FromI64(ts)}}
}

// sess is the session of the given events of one key (as ev makes them).
func sess(key string, ts ...int64) Session {
	s := Session{Key: key, Start: slices.Min(ts), End: slices.Max(ts), Events: int64(len(ts)), Orders: int64(len(ts))}
	for _, t := range ts {
		s.Revenue = s.Revenue.Add(decimal128.FromI64(t))
	}
	return s
}

func evicted(s Session) Session { s.Evicted = true; return s }

func mustNew(t testing.TB, cfg Config, reg prometheus.Registerer) *Engine {
	t.Helper()
	e, err := New(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// feed adds events in arrival order, calling Advance after every
// advanceEvery of them (never if 0), and flushes at the end. It returns
// every session emitted, in emission order, and which events were late.
func feed(e *Engine, events []Event, advanceEvery int) (out []Session, late []bool) {
	now := time.Unix(0, 0)
	for i, x := range events {
		var l bool
		out, l = e.Add(out, x.Key, x.Time, x.Contribution)
		late = append(late, l)
		if advanceEvery > 0 && (i+1)%advanceEvery == 0 {
			out = e.Advance(out, now)
		}
	}
	return e.Flush(out), late
}

// applied returns the events that were not late, sorted by time.
func applied(events []Event, late []bool) []Event {
	var out []Event
	for i, x := range events {
		if !late[i] {
			out = append(out, x)
		}
	}
	slices.SortStableFunc(out, func(a, b Event) int { return cmp.Compare(a.Time, b.Time) })
	return out
}

func sessionize(t testing.TB, gap time.Duration, events []Event) []Session {
	t.Helper()
	s, err := Sessionize(gap, events)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func diff(got, want []Session) string {
	if slices.Equal(got, want) {
		return ""
	}
	var b strings.Builder
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = fmt.Sprintf("%+v", got[i])
		}
		if i < len(want) {
			w = fmt.Sprintf("%+v", want[i])
		}
		mark := "  "
		if g != w {
			mark = "! "
		}
		fmt.Fprintf(&b, "%s%d got  %s\n%s%d want %s\n", mark, i, g, mark, i, w)
	}
	return b.String()
}

// TestAdd walks through the placements of an event, gap 10µs.
func TestAdd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lateness time.Duration
		maxOpen  int
		events   []Event // in arrival order
		want     []Session
		late     []int // indices of late events
		merges   int64
	}{
		{name: "one session, last step exactly the gap", events: []Event{ev("a", 0), ev("a", 5), ev("a", 15)},
			want: []Session{sess("a", 0, 5, 15)}},
		{name: "a step one over the gap splits", events: []Event{ev("a", 0), ev("a", 11)},
			want: []Session{sess("a", 0), sess("a", 11)}},
		{name: "keys are independent", events: []Event{ev("a", 0), ev("b", 5), ev("a", 8)},
			want: []Session{sess("b", 5), sess("a", 0, 8)}},
		{name: "extends the start", lateness: 100 * us, events: []Event{ev("a", 50), ev("a", 45), ev("a", 40)},
			want: []Session{sess("a", 40, 45, 50)}},
		{name: "falls inside", lateness: 100 * us, events: []Event{ev("a", 0), ev("a", 10), ev("a", 5)},
			want: []Session{sess("a", 0, 5, 10)}},
		{name: "bridges two sessions", lateness: 100 * us, events: []Event{ev("a", 0), ev("a", 18), ev("a", 9)},
			want: []Session{sess("a", 0, 9, 18)}, merges: 1},
		{name: "bridges exactly at the gap on both sides", lateness: 100 * us, events: []Event{ev("a", 0), ev("a", 20), ev("a", 10)},
			want: []Session{sess("a", 0, 10, 20)}, merges: 1},
		{name: "misses the bridge by one", lateness: 100 * us, events: []Event{ev("a", 0), ev("a", 21), ev("a", 10)},
			want: []Session{sess("a", 0, 10), sess("a", 21)}},
		{name: "bridges from below the next session", lateness: 100 * us, events: []Event{ev("a", 0), ev("a", 30), ev("a", 40), ev("a", 20), ev("a", 10)},
			want: []Session{sess("a", 0, 10, 20, 30, 40)}, merges: 1},
		{name: "three candidates merge into one", lateness: 100 * us,
			events: []Event{ev("a", 0), ev("a", 40), ev("a", 20), ev("b", 20), ev("a", 30), ev("a", 10)},
			want:   []Session{sess("b", 20), sess("a", 0, 10, 20, 30, 40)}, merges: 2},
		{name: "late: older than the watermark, no open session of the key", events: []Event{ev("a", 100), ev("b", 50)},
			want: []Session{sess("a", 100)}, late: []int{1}},
		{name: "older but inside an open session is applied", events: []Event{ev("a", 0), ev("a", 10), ev("b", 12), ev("a", 5)},
			want: []Session{sess("a", 0, 5, 10), sess("b", 12)}},
		{name: "older but after the end within gap is applied", events: []Event{ev("a", 0), ev("b", 8), ev("a", 6)},
			want: []Session{sess("a", 0, 6), sess("b", 8)}},
		{name: "older and bridging two open sessions is applied", lateness: 10 * us,
			events: []Event{ev("a", 0), ev("a", 18), ev("b", 19), ev("a", 8)},
			want:   []Session{sess("a", 0, 8, 18), sess("b", 19)}, merges: 1},
		{name: "late: older and moving a start earlier", events: []Event{ev("a", 10), ev("b", 20), ev("a", 5)},
			want: []Session{sess("a", 10), sess("b", 20)}, late: []int{2}},
		{name: "late: older and touching a session the watermark passed (not yet returned)", events: []Event{ev("a", 0), ev("b", 11), ev("a", 5)},
			want: []Session{sess("a", 0), sess("b", 11)}, late: []int{2}},
		{name: "at the watermark after a passed session opens a new one", events: []Event{ev("a", 0), ev("b", 11), ev("a", 11)},
			want: []Session{sess("a", 0), sess("a", 11), sess("b", 11)}},
		{name: "at the watermark, the watermark exactly gap after the end: joins", events: []Event{ev("a", 0), ev("b", 10), ev("a", 10)},
			want: []Session{sess("a", 0, 10), sess("b", 10)}},
		{name: "full: the oldest end is evicted, its key later split", maxOpen: 2, lateness: 100 * us,
			events: []Event{ev("a", 0), ev("b", 1), ev("c", 2), ev("a", 3)},
			want:   []Session{evicted(sess("a", 0)), evicted(sess("b", 1)), sess("c", 2), sess("a", 3)}},
		{name: "full: a passed session is closed, not evicted", maxOpen: 1, events: []Event{ev("a", 0), ev("b", 20)},
			want: []Session{sess("a", 0), sess("b", 20)}},
		{name: "full: an event joining an open session evicts nothing", maxOpen: 1, lateness: 100 * us,
			events: []Event{ev("a", 0), ev("a", 5), ev("a", 1)},
			want:   []Session{sess("a", 0, 1, 5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Gap: 10 * us, Lateness: tc.lateness, MaxOpen: cmp.Or(tc.maxOpen, 100)}
			e := mustNew(t, cfg, nil)
			got, late := feed(e, tc.events, 0)
			if d := diff(got, tc.want); d != "" {
				t.Errorf("sessions:\n%s", d)
			}
			var lateIdx []int
			for i, l := range late {
				if l {
					lateIdx = append(lateIdx, i)
				}
			}
			if !slices.Equal(lateIdx, tc.late) {
				t.Errorf("late events %v, want %v", lateIdx, tc.late)
			}
			if e.merges != tc.merges {
				t.Errorf("%d merges, want %d", e.merges, tc.merges)
			}
			if e.Len() != 0 {
				t.Errorf("%d sessions open after Flush", e.Len())
			}
			if tc.maxOpen == 0 {
				// Without eviction, the same sessions as the batch.
				if d := diff(got, sessionize(t, cfg.Gap, applied(tc.events, late))); d != "" {
					t.Errorf("differs from Sessionize of the applied events:\n%s", d)
				}
			}
		})
	}
}

// TestAdvance checks when sessions close and the order they come in.
func TestAdvance(t *testing.T) {
	e := mustNew(t, Config{Gap: 10 * us, Lateness: 5 * us, MaxOpen: 100}, nil)
	now := time.Unix(0, 0)
	if got := e.Watermark(); got != NoWatermark {
		t.Fatalf("watermark before any event %d, want NoWatermark", got)
	}
	if got := e.Advance(nil, now); len(got) != 0 {
		t.Fatalf("Advance before any event returned %v", got)
	}
	var out []Session
	for _, x := range []Event{ev("b", 0), ev("a", 0), ev("c", 4), ev("a", 4)} {
		out, _ = e.Add(out, x.Key, x.Time, x.Contribution)
	}
	out, _ = e.Add(out, "d", 19, Contribution{}) // watermark 14: b [0,0] passed (14 > 10), a [0,4] and c [4,4] not yet (14 = 4+10)
	if len(out) != 0 {
		t.Fatalf("Add returned %v", out)
	}
	if got, want := e.Advance(nil, now), []Session{sess("b", 0)}; !slices.Equal(got, want) {
		t.Fatalf("Advance at watermark 14:\n%s", diff(got, want))
	}
	e.Add(nil, "d", 20, Contribution{}) // watermark 15: a and c pass
	if got, want := e.Advance(nil, now), []Session{sess("a", 0, 4), sess("c", 4)}; !slices.Equal(got, want) {
		t.Fatalf("Advance at watermark 15:\n%s", diff(got, want))
	}
	if got := e.Advance(nil, now); len(got) != 0 {
		t.Fatalf("second Advance returned %v", got)
	}
	if got, want := e.Open(), []Session{{Key: "d", Start: 19, End: 20, Events: 2}}; !slices.Equal(got, want) {
		t.Fatalf("Open:\n%s", diff(got, want))
	}
}

// TestStreamEqualsBatch: for random streams that arrive out of order within
// the lateness, Add+Advance+Flush yields exactly the sessions of
// Sessionize over the same events sorted, in the same order.
func TestStreamEqualsBatch(t *testing.T) {
	const gap = 10
	var merges int64
	for seed := range uint64(500) {
		r := rand.New(rand.NewPCG(seed, 1))
		lateness := []int64{0, 1, gap / 2, gap, 3 * gap, 10 * gap}[r.IntN(6)]
		events := randomEvents(r, gap)
		arrival := arriveWithin(r, events, lateness)
		e := mustNew(t, Config{Gap: gap * us, Lateness: time.Duration(lateness) * us, MaxOpen: 1 << 20}, nil)
		got, late := feed(e, arrival, 1+r.IntN(20))
		if i := slices.Index(late, true); i >= 0 {
			t.Fatalf("seed %d: event %d %+v arrived within the lateness but was late", seed, i, arrival[i])
		}
		if d := diff(got, sessionize(t, gap*us, events)); d != "" {
			t.Fatalf("seed %d (lateness %d): stream and batch differ:\n%s", seed, lateness, d)
		}
		merges += e.merges
	}
	t.Logf("%d merges", merges)
	if merges < 100 {
		t.Fatalf("only %d merges of candidate sessions in all streams: the test does not exercise bridging", merges)
	}
}

// TestStreamWithLateEquals: events arrive beyond the lateness too. Those
// reported late are left out; the rest give exactly the sessions of
// Sessionize over them, so no late event was applied to a closed session.
func TestStreamWithLateEqualsBatch(t *testing.T) {
	const gap = 10
	var lates, olderApplied, merges int
	for seed := range uint64(500) {
		r := rand.New(rand.NewPCG(seed, 2))
		lateness := []int64{0, gap / 2, gap, 3 * gap}[r.IntN(4)]
		events := randomEvents(r, gap)
		arrival := arriveWithin(r, events, lateness+[]int64{gap, 3 * gap, 10 * gap}[r.IntN(3)])
		e := mustNew(t, Config{Gap: gap * us, Lateness: time.Duration(lateness) * us, MaxOpen: 1 << 20}, nil)
		var got []Session
		var late []bool
		for i, x := range arrival {
			older := x.Time < e.Watermark()
			var l bool
			got, l = e.Add(got, x.Key, x.Time, x.Contribution)
			late = append(late, l)
			if l {
				lates++
			} else if older {
				olderApplied++
			}
			if i%7 == 0 {
				got = e.Advance(got, time.Time{})
			}
		}
		got = e.Flush(got)
		merges += int(e.merges)
		if d := diff(got, sessionize(t, gap*us, applied(arrival, late))); d != "" {
			t.Fatalf("seed %d (lateness %d): stream and batch of the applied events differ:\n%s", seed, lateness, d)
		}
	}
	t.Logf("%d late, %d older than the watermark but applied, %d merges", lates, olderApplied, merges)
	if lates < 100 || olderApplied < 100 || merges < 100 {
		t.Fatalf("%d late, %d older than the watermark but applied, %d merges: the test does not exercise them", lates, olderApplied, merges)
	}
}

// TestAdvanceTimingDoesNotMatter: which events are late, and the sessions,
// depend on the events and their arrival order only, not on when Advance
// is called (a session the watermark passed counts as closed at once).
func TestAdvanceTimingDoesNotMatter(t *testing.T) {
	const gap = 10
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 5))
		lateness := []int64{0, gap / 2, gap, 3 * gap}[r.IntN(4)]
		arrival := arriveWithin(r, randomEvents(r, gap), lateness+3*gap)
		cfg := Config{Gap: gap * us, Lateness: time.Duration(lateness) * us, MaxOpen: 1 << 20}
		eager, eagerLate := feed(mustNew(t, cfg, nil), arrival, 1)
		lazy, lazyLate := feed(mustNew(t, cfg, nil), arrival, 0)
		if !slices.Equal(eagerLate, lazyLate) {
			t.Fatalf("seed %d: late events differ between Advance after every event and never", seed)
		}
		if d := diff(eager, lazy); d != "" {
			t.Fatalf("seed %d: sessions differ between Advance after every event and never:\n%s", seed, d)
		}
	}
}

// TestEvictionOnlySplits: with a small MaxOpen, sessions are cut early, but
// only cut: joining each key's emitted sessions that lie within the gap
// gives Sessionize's sessions of the applied events, and every applied
// event is counted once.
func TestEvictionOnlySplits(t *testing.T) {
	const gap = 10
	var evictions int
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 3))
		events := randomEvents(r, gap)
		arrival := arriveWithin(r, events, 2*gap)
		maxOpen := 1 + r.IntN(4)
		e := mustNew(t, Config{Gap: gap * us, Lateness: gap * us, MaxOpen: maxOpen}, nil)
		var got []Session
		var late []bool
		for i, x := range arrival {
			var l bool
			got, l = e.Add(got, x.Key, x.Time, x.Contribution)
			late = append(late, l)
			if e.Len() > maxOpen {
				t.Fatalf("seed %d: %d open sessions, max_open %d", seed, e.Len(), maxOpen)
			}
			if i%5 == 0 {
				got = e.Advance(got, time.Time{})
			}
		}
		got = e.Flush(got)
		for _, s := range got {
			if s.Evicted {
				evictions++
			}
		}
		if d := diff(joinSplits(got, gap), sessionize(t, gap*us, applied(arrival, late))); d != "" {
			t.Fatalf("seed %d (max_open %d): joined sessions and batch differ:\n%s", seed, maxOpen, d)
		}
	}
	t.Logf("%d evictions", evictions)
	if evictions < 100 {
		t.Fatalf("only %d evictions", evictions)
	}
}

// joinSplits joins each key's sessions that overlap or lie within gap, as
// re-aggregation would, and returns them in (End, Key) order.
func joinSplits(in []Session, gap int64) []Session {
	s := slices.Clone(in)
	slices.SortFunc(s, func(a, b Session) int { return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Start, b.Start)) })
	var out []Session
	for _, x := range s {
		x.Evicted = false
		if n := len(out); n > 0 && out[n-1].Key == x.Key && x.Start <= out[n-1].End+gap {
			p := &out[n-1]
			p.End = max(p.End, x.End)
			p.Events += x.Events
			p.Orders += x.Orders
			p.Revenue = p.Revenue.Add(x.Revenue)
			continue
		}
		out = append(out, x)
	}
	slices.SortFunc(out, byEndKey)
	return out
}

// TestRestore: a run interrupted at any point, its open sessions and
// watermark restored into a fresh engine, ends with the same sessions and
// late events as an uninterrupted run; nothing is counted twice.
func TestRestore(t *testing.T) {
	const gap = 10
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 4))
		lateness := []int64{0, gap / 2, gap, 3 * gap}[r.IntN(4)]
		events := randomEvents(r, gap)
		arrival := arriveWithin(r, events, lateness+[]int64{0, gap, 3 * gap}[r.IntN(3)])
		cfg := Config{Gap: gap * us, Lateness: time.Duration(lateness) * us, MaxOpen: []int{2, 5, 1 << 20}[r.IntN(3)]}
		every := 1 + r.IntN(10)
		run := func(e *Engine, from, to int, out []Session, late []bool) ([]Session, []bool) {
			for i := from; i < to; i++ {
				x := arrival[i]
				var l bool
				out, l = e.Add(out, x.Key, x.Time, x.Contribution)
				late = append(late, l)
				if (i+1)%every == 0 {
					out = e.Advance(out, time.Time{})
				}
			}
			return out, late
		}
		// The uninterrupted run.
		e1 := mustNew(t, cfg, nil)
		want, wantLate := run(e1, 0, len(arrival), nil, nil)
		want = e1.Flush(want)

		// Interrupted after k events: the caller has committed the
		// sessions emitted so far and Open as provisional rows.
		k := r.IntN(len(arrival) + 1)
		e2 := mustNew(t, cfg, nil)
		got, gotLate := run(e2, 0, k, nil, nil)
		provisional, wm := e2.Open(), e2.Watermark()
		e3 := mustNew(t, cfg, nil)
		if err := e3.Restore(provisional, wm); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if e3.Watermark() != wm || !slices.Equal(e3.Open(), provisional) {
			t.Fatalf("seed %d: restored state differs: watermark %d want %d", seed, e3.Watermark(), wm)
		}
		got, gotLate = run(e3, k, len(arrival), got, gotLate)
		got = e3.Flush(got)
		if d := diff(got, want); d != "" {
			t.Fatalf("seed %d: restored after %d of %d events, sessions differ:\n%s", seed, k, len(arrival), d)
		}
		if !slices.Equal(gotLate, wantLate) {
			t.Fatalf("seed %d: restored after %d events, late events differ", seed, k)
		}
		var counted, appliedN int64
		for _, s := range got {
			counted += s.Events
		}
		for _, l := range gotLate {
			if !l {
				appliedN++
			}
		}
		if counted != appliedN {
			t.Fatalf("seed %d: sessions count %d events, %d were applied", seed, counted, appliedN)
		}
	}
}

func TestRestoreRejects(t *testing.T) {
	e := mustNew(t, Config{Gap: 10 * us, MaxOpen: 2}, nil)
	for _, tc := range []struct {
		name string
		open []Session
		want string
	}{
		{"too many", []Session{sess("a", 0), sess("b", 0), sess("c", 0)}, "restore 3 open sessions: max_open is 2; raise it to at least 3"},
		{"no events", []Session{{Key: "a"}}, `restore session of key "a" at 0: it has 0 events`},
		{"ends before it starts", []Session{{Key: "a", Start: 5, End: 4, Events: 1}}, `it ends (4) before it starts (5)`},
		{"within the gap", []Session{sess("a", 0, 3), sess("a", 13)}, `[0, 3] and [13, 13] are not more than the gap apart`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.Restore(tc.open, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A restore without a watermark (nothing read yet).
	if err := e.Restore(nil, NoWatermark); err != nil || e.Watermark() != NoWatermark || e.Len() != 0 {
		t.Fatalf("Restore(nil, NoWatermark) = %v, watermark %d, %d open", err, e.Watermark(), e.Len())
	}
}

// TestIdleProgress: with IdleTimeout, the watermark follows the injected
// clock once no event has arrived for that long, and never moves back.
func TestIdleProgress(t *testing.T) {
	const base = int64(1_700_000_000_000_000)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := Config{Gap: 30 * time.Minute, Lateness: time.Minute, MaxOpen: 10, IdleTimeout: 10 * time.Second}

	t.Run("off", func(t *testing.T) {
		c := cfg
		c.IdleTimeout = 0
		e := mustNew(t, c, nil)
		e.Add(nil, "u", base, Contribution{})
		for _, d := range []time.Duration{0, time.Hour, 24 * time.Hour} {
			if got := e.Advance(nil, t0.Add(d)); len(got) != 0 || e.Watermark() != base-time.Minute.Microseconds() {
				t.Fatalf("after %v: closed %v, watermark %d", d, got, e.Watermark())
			}
		}
	})
	t.Run("on", func(t *testing.T) {
		e := mustNew(t, cfg, nil)
		if e.Advance(nil, t0); e.Watermark() != NoWatermark {
			t.Fatal("idle progress moved the watermark before any event")
		}
		e.Add(nil, "u", base, Contribution{Orders: 1})
		wm0 := base - time.Minute.Microseconds()
		steps := []struct {
			at     time.Duration // after t0
			wm     int64
			closed int
		}{
			{0, wm0, 0},                       // Advance notes the arrival
			{9 * time.Second, wm0, 0},         // not idle yet
			{10 * time.Second, wm0 + 10e6, 0}, // idle: event time moved as much as processing time
			{31 * time.Minute, wm0 + (31 * time.Minute).Microseconds(), 0},
			{31*time.Minute + time.Microsecond, wm0 + (31*time.Minute + time.Microsecond).Microseconds(), 1}, // passed end + gap
			{20 * time.Minute, wm0 + (31*time.Minute + time.Microsecond).Microseconds(), 0},                  // a clock going back moves nothing
		}
		for _, s := range steps {
			got := e.Advance(nil, t0.Add(s.at))
			if e.Watermark() != s.wm || len(got) != s.closed {
				t.Fatalf("at t0+%v: watermark %d (want %d), closed %v (want %d)", s.at, e.Watermark(), s.wm, got, s.closed)
			}
		}
		// An event after the idle advance: older than the (moved) watermark
		// with no open session, it is late; the watermark does not go back.
		wm := e.Watermark()
		if _, late := e.Add(nil, "u", base+time.Minute.Microseconds(), Contribution{}); !late || e.Watermark() != wm {
			t.Fatalf("event behind the idle watermark: late %v, watermark %d want %d", late, e.Watermark(), wm)
		}
		// New events reset the idle clock.
		ts := wm + time.Hour.Microseconds()
		e.Add(nil, "v", ts, Contribution{})
		e.Advance(nil, t0.Add(time.Hour))
		e.Advance(nil, t0.Add(time.Hour+9*time.Second))
		if want := ts - time.Minute.Microseconds(); e.Watermark() != want {
			t.Fatalf("watermark %d after a new event, want %d", e.Watermark(), want)
		}
	})
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := mustNew(t, Config{Gap: 10 * us, MaxOpen: 2}, reg)
	var out []Session
	for _, x := range []Event{ev("a", 0), ev("b", 1), ev("c", 2), ev("a", -50), ev("d", 30)} {
		out, _ = e.Add(out, x.Key, x.Time, x.Contribution)
	}
	// a evicted by c; a at -50 late; d closes b normally (passed) and then
	// c is passed too: Advance closes it.
	out = e.Advance(out, time.Time{})
	for _, m := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"open", e.m.open, 1},
		{"evicted", e.m.evicted, 1},
		{"closed", e.m.closed, 2},
		{"late", e.m.late, 1},
	} {
		if got := testutil.ToFloat64(m.c); got != m.want {
			t.Errorf("%s = %v, want %v (emitted %+v)", m.name, got, m.want, out)
		}
	}
	n, err := testutil.GatherAndCount(reg, "eventlake_sessions_open", "eventlake_sessions_closed_total",
		"eventlake_sessions_evicted_total", "eventlake_sessions_late_total")
	if err != nil || n != 4 {
		t.Fatalf("gathered %d metrics (%v), want 4", n, err)
	}
}

func TestSessionize(t *testing.T) {
	if _, err := Sessionize(10*us, []Event{ev("a", 5), ev("b", 4)}); !errors.Is(err, ErrUnsorted) {
		t.Fatalf("unsorted events: %v, want ErrUnsorted", err)
	}
	if _, err := Sessionize(0, nil); err == nil {
		t.Fatal("gap 0 accepted")
	}
	got := sessionize(t, 10*us, []Event{ev("a", 0), ev("b", 0), ev("a", 10), ev("b", 11), ev("a", 21)})
	want := []Session{sess("b", 0), sess("a", 0, 10), sess("b", 11), sess("a", 21)}
	if d := diff(got, want); d != "" {
		t.Fatal(d)
	}
}

// TestExtremeTimes: times near the ends of int64 neither overflow the gap
// arithmetic nor the watermark.
func TestExtremeTimes(t *testing.T) {
	e := mustNew(t, Config{Gap: time.Hour, Lateness: time.Hour, MaxOpen: 10}, nil)
	var out []Session
	for _, ts := range []int64{math.MinInt64, math.MinInt64 + 1, math.MaxInt64 - 1, math.MaxInt64} {
		out, _ = e.Add(out, "a", ts, Contribution{})
	}
	out = e.Flush(e.Advance(out, time.Time{}))
	want := []Session{{Key: "a", Start: math.MinInt64, End: math.MinInt64 + 1, Events: 2}, {Key: "a", Start: math.MaxInt64 - 1, End: math.MaxInt64, Events: 2}}
	if d := diff(out, want); d != "" {
		t.Fatal(d)
	}
}

// randomEvents makes 1..8 keys' event series, each step drawn around the
// gap (so sessions split and join at the threshold), merged by time.
func randomEvents(r *rand.Rand, gap int64) []Event {
	keys := 1 + r.IntN(8)
	n := 1 + r.IntN(120)
	steps := []int64{0, 1, gap - 1, gap, gap + 1, 2 * gap, 2*gap + 1}
	var out []Event
	for k := range keys {
		ts := int64(r.IntN(int(5 * gap)))
		for range n / keys {
			out = append(out, ev(fmt.Sprintf("k%d", k), ts))
			if r.IntN(3) == 0 {
				ts += r.Int64N(3 * gap)
			} else {
				ts += steps[r.IntN(len(steps))]
			}
		}
	}
	if len(out) == 0 {
		out = append(out, ev("k0", 0))
	}
	slices.SortStableFunc(out, func(a, b Event) int { return cmp.Compare(a.Time, b.Time) })
	return out
}

// arriveWithin shuffles events so that each arrives at most spread after
// the largest event time before it: events are ordered by time plus a
// random delay in [0, spread]; an event t then follows only events at or
// before t+spread.
func arriveWithin(r *rand.Rand, events []Event, spread int64) []Event {
	type delayed struct {
		at int64
		e  Event
	}
	d := make([]delayed, len(events))
	for i, x := range events {
		d[i] = delayed{x.Time + r.Int64N(spread+1), x}
	}
	slices.SortStableFunc(d, func(a, b delayed) int { return cmp.Compare(a.at, b.at) })
	out := make([]Event, len(d))
	for i := range d {
		out[i] = d[i].e
	}
	return out
}

// TestExternalTime: two partitions in time order, read one far ahead of
// the other (a backlog). Following the largest event time, the behind
// partition's events are late; following the least of the partitions'
// latest times (ExternalTime) none is, and the sessions are Sessionize's.
func TestExternalTime(t *testing.T) {
	const gap = 10
	r := rand.New(rand.NewPCG(7, 7))
	var parts [2][]Event
	var all []Event
	for i := range 400 {
		x := ev(fmt.Sprintf("k%d", r.IntN(20)), int64(i*3))
		p := r.IntN(2)
		parts[p] = append(parts[p], x)
		all = append(all, x)
	}
	// Partition 0 first, then 1: the read order of a backlog.
	read := append(slices.Clone(parts[0]), parts[1]...)
	for _, external := range []bool{false, true} {
		e := mustNew(t, Config{Gap: gap * us, Lateness: 0, MaxOpen: 1 << 20, ExternalTime: external}, nil)
		var out []Session
		latest := [2]int64{math.MinInt64, math.MinInt64}
		lates := 0
		for i, x := range read {
			p := 0
			if i >= len(parts[0]) {
				p = 1
			}
			var late bool
			out, late = e.Add(out, x.Key, x.Time, x.Contribution)
			if late {
				lates++
			}
			latest[p] = x.Time
			// Partition 1 is behind until it is read to its end.
			if p == 1 && i < len(read)-1 {
				e.SetEventTime(latest[1])
			}
		}
		out = e.Flush(out)
		switch {
		case !external && lates == 0:
			t.Fatal("following the largest event time, no event of the partition behind was late: the test shows nothing")
		case external && lates > 0:
			t.Fatalf("with ExternalTime %d events were late", lates)
		case external:
			slices.SortStableFunc(all, func(a, b Event) int { return cmp.Compare(a.Time, b.Time) })
			if d := diff(out, sessionize(t, gap*us, all)); d != "" {
				t.Fatalf("sessions differ from Sessionize:\n%s", d)
			}
		}
	}
}

func TestForget(t *testing.T) {
	e := mustNew(t, Config{Gap: 10 * us, Lateness: 100 * us, MaxOpen: 100}, nil)
	for _, x := range []Event{ev("a", 0), ev("b", 1), ev("a", 50), ev("c", 2), ev("a", 100)} {
		e.Add(nil, x.Key, x.Time, x.Contribution)
	}
	if n := e.Forget(func(k string) bool { return k == "a" }); n != 3 {
		t.Fatalf("Forget dropped %d sessions, want a's 3", n)
	}
	if got, want := e.Flush(nil), []Session{sess("b", 1), sess("c", 2)}; !slices.Equal(got, want) {
		t.Fatalf("after Forget:\n%s", diff(got, want))
	}
	e.Add(nil, "a", 200, Contribution{})
	if got := e.Open(); len(got) != 1 || got[0].Key != "a" || got[0].Events != 1 {
		t.Fatalf("a new session of a forgotten key: %+v", got)
	}
}
