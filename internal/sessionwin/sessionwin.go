package sessionwin

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/prometheus/client_golang/prometheus"
)

// Contribution is what one event adds to its session besides counting one
// event.
type Contribution struct {
	Orders int64
	// Revenue is unscaled: the caller fixes one scale for all of them.
	Revenue decimal128.Num
}

// Event is one event for Sessionize.
type Event struct {
	Key string
	// Time is the event time in microseconds since the Unix epoch.
	Time int64
	Contribution
}

// Session is one session: a row of user_sessions.
type Session struct {
	Key string
	// Start and End are the times of the session's first and last event,
	// in microseconds since the Unix epoch.
	Start, End int64
	// Events counts the session's events; Orders and Revenue sum their
	// contributions.
	Events  int64
	Orders  int64
	Revenue decimal128.Num
	// Evicted reports that the session was closed early to bound memory:
	// a later session of the same key may continue it.
	Evicted bool
}

// NoWatermark is the watermark before the first event: no event is older
// than it and no session closes at it.
const NoWatermark = math.MinInt64

// ErrUnsorted is returned by Sessionize for events out of time order.
var ErrUnsorted = errors.New("events are not sorted by time")

// slot holds one open session (or, free, a link in the free list).
type slot struct {
	key     string
	start   int64
	end     int64
	events  int64
	orders  int64
	revenue decimal128.Num
	// next is the key's next (later) open session, or the next free slot;
	// -1 for none.
	next int32
	// at is the slot's position in Engine.heap.
	at int32
	// hend is the end by which the heap orders the slot: end as of the
	// slot's last move in the heap. Extending a session leaves it behind
	// (hend <= end) and moves nothing; a stale slot is put in place only
	// when it comes to the top (see top).
	hend int64
}

// Engine sessionizes a stream of events with bounded memory. Create it
// with New. It is not safe for concurrent use.
type Engine struct {
	gap, lateness int64 // microseconds
	maxOpen       int
	idle          time.Duration

	slots []slot
	free  int32            // first free slot, chained through next; -1 for none
	heap  []int32          // open sessions, a min-heap on (end, key)
	keys  map[string]int32 // a key's earliest open session

	maxTs    int64 // the largest event time seen (or set), or moved on by idleness
	external bool  // maxTs moves only by SetEventTime (and idleness)

	// Idle progress: Add counts events; Advance notes when it first sees a
	// new count, and the event time at that moment.
	adds, addsSeen uint64
	arrived        bool
	arrival        time.Time
	arrivalTs      int64

	merges int64 // sessions joined by a bridging event (for tests)
	m      *metrics
}

type metrics struct {
	open                  prometheus.Gauge
	closed, evicted, late prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventlake_sessions_open", Help: "Open sessions held in memory (at most max_open).",
		}),
		closed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_sessions_closed_total", Help: "Sessions closed by the watermark or a flush.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_sessions_evicted_total", Help: "Sessions closed early because max_open was reached (a later event of the key may start a split session that re-aggregation joins).",
		}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventlake_sessions_late_total", Help: "Events older than the watermark that no open session could take (left to re-aggregation).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.open, m.closed, m.evicted, m.late)
	}
	return m
}

// New returns an empty Engine. Its metrics are registered on reg unless
// reg is nil.
func New(cfg Config, reg prometheus.Registerer) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		gap:      cfg.Gap.Microseconds(),
		lateness: cfg.Lateness.Microseconds(),
		maxOpen:  cfg.MaxOpen,
		idle:     cfg.IdleTimeout,
		external: cfg.ExternalTime,
		m:        newMetrics(reg),
	}
	e.reset()
	return e, nil
}

func (e *Engine) reset() {
	e.slots, e.heap, e.free = nil, nil, -1
	e.keys = map[string]int32{}
	e.maxTs = math.MinInt64
	e.adds, e.addsSeen, e.arrived = 0, 0, false
	e.m.open.Set(0)
}

// Watermark is the largest event time seen minus the lateness (moved on by
// idle progress), or NoWatermark before the first event.
func (e *Engine) Watermark() int64 {
	if e.maxTs < math.MinInt64+e.lateness {
		return math.MinInt64
	}
	return e.maxTs - e.lateness
}

// SetEventTime moves the event time the watermark follows (the watermark
// is t minus Lateness) on to t, with Config.ExternalTime; it never moves
// back. Sessions the new watermark closes are returned by Advance.
func (e *Engine) SetEventTime(t int64) {
	if t > e.maxTs {
		e.maxTs = t
	}
}

// Len is the number of open sessions.
func (e *Engine) Len() int { return len(e.heap) }

// apart reports whether b lies more than gap after a (b > a+gap), without
// overflow for any a and b.
func apart(gap, a, b int64) bool { return b > a && uint64(b-a) > uint64(gap) }

// Add applies one event of key at event time ts (microseconds) and reports
// whether it was late instead (see the package documentation); a late
// event changes nothing but the late count. When the event needs a new
// session and MaxOpen sessions are open, the one with the oldest end is
// closed (evicted, or closed normally if the watermark has passed it) and
// appended to dst; Add returns dst either way. Add keeps key while its
// session is open: pass a string that owns its bytes.
func (e *Engine) Add(dst []Session, key string, ts int64, c Contribution) ([]Session, bool) {
	e.adds++
	wm := e.Watermark()
	prev, cur := e.find(key, ts)
	touch := cur >= 0 && !apart(e.gap, ts, e.slots[cur].start)
	if ts < wm {
		// Only an event inside an open session or after it within gap
		// is safe to apply: see the package documentation.
		if !touch || apart(e.gap, e.slots[cur].end, wm) || ts < e.slots[cur].start {
			e.m.late.Inc()
			return dst, true
		}
	}
	if ts > e.maxTs && !e.external {
		e.maxTs = ts
	}
	if !touch {
		if len(e.heap) >= e.maxOpen {
			dst = e.makeRoom(dst)
			prev, cur = e.find(key, ts)
		}
		e.insert(key, ts, c, prev, cur)
		return dst, false
	}
	s := &e.slots[cur]
	s.events++
	s.orders += c.Orders
	s.revenue = s.revenue.Add(c.Revenue)
	switch {
	case ts < s.start:
		s.start = ts
	case ts > s.end:
		s.end = ts
		if n := s.next; n >= 0 && !apart(e.gap, ts, e.slots[n].start) {
			e.join(cur, n)
		}
	}
	return dst, false
}

// find returns the key's first open session that ends at most gap before
// ts (cur) and the one before it (prev); -1 for none. Sessions of a key
// are more than gap apart, so ts can touch only cur and, past cur's end,
// the session after it.
func (e *Engine) find(key string, ts int64) (prev, cur int32) {
	prev, cur = -1, -1
	i, ok := e.keys[key]
	if !ok {
		return prev, cur
	}
	for ; i >= 0; i = e.slots[i].next {
		if !apart(e.gap, e.slots[i].end, ts) {
			return prev, i
		}
		prev = i
	}
	return prev, -1
}

// insert opens a session for one event between the key's sessions prev
// and cur.
func (e *Engine) insert(key string, ts int64, c Contribution, prev, cur int32) {
	i := e.free
	if i >= 0 {
		e.free = e.slots[i].next
	} else {
		i = int32(len(e.slots))
		e.slots = append(e.slots, slot{})
	}
	e.slots[i] = slot{key: key, start: ts, end: ts, hend: ts, events: 1, orders: c.Orders, revenue: c.Revenue, next: cur}
	if prev >= 0 {
		e.slots[prev].next = i
	} else {
		e.keys[key] = i
	}
	e.slots[i].at = int32(len(e.heap))
	e.heap = append(e.heap, i)
	e.up(len(e.heap) - 1)
	e.m.open.Set(float64(len(e.heap)))
}

// join merges session b, the next of its key after a, into a.
func (e *Engine) join(a, b int32) {
	e.removeAt(int(e.slots[b].at))
	x, y := &e.slots[a], &e.slots[b]
	x.end = y.end
	x.events += y.events
	x.orders += y.orders
	x.revenue = x.revenue.Add(y.revenue)
	x.next = y.next
	e.release(b)
	e.merges++
	e.m.open.Set(float64(len(e.heap)))
}

// makeRoom closes the session with the oldest end and appends it to dst.
func (e *Engine) makeRoom(dst []Session) []Session {
	i := e.top()
	evicted := !apart(e.gap, e.slots[i].end, e.Watermark())
	dst = append(dst, e.slots[i].session(evicted))
	e.drop(i)
	if evicted {
		e.m.evicted.Inc()
	} else {
		e.m.closed.Inc()
	}
	return dst
}

// drop removes open session i, which is its key's first: drop is only
// called on the top of the heap, the session with the least end, and a
// key's later sessions end later.
func (e *Engine) drop(i int32) {
	s := &e.slots[i]
	if s.next >= 0 {
		e.keys[s.key] = s.next
	} else {
		delete(e.keys, s.key)
	}
	e.removeAt(int(s.at))
	e.release(i)
	e.m.open.Set(float64(len(e.heap)))
}

func (e *Engine) release(i int32) {
	e.slots[i] = slot{next: e.free, at: -1} // drops the key
	e.free = i
}

func (s *slot) session(evicted bool) Session {
	return Session{Key: s.key, Start: s.start, End: s.end, Events: s.events, Orders: s.orders, Revenue: s.revenue, Evicted: evicted}
}

// Advance closes the sessions the watermark has passed and appends them to
// dst in (End, Key) order. With Config.IdleTimeout set it first moves the
// watermark on processing time (now) if no event has arrived for
// IdleTimeout; see the package documentation.
func (e *Engine) Advance(dst []Session, now time.Time) []Session {
	if e.idle > 0 {
		switch d := now.Sub(e.arrival); {
		case !e.arrived || e.adds != e.addsSeen:
			e.arrived, e.addsSeen, e.arrival, e.arrivalTs = true, e.adds, now, e.maxTs
		case d >= e.idle && e.arrivalTs != math.MinInt64:
			t := e.arrivalTs + d.Microseconds()
			if t < e.arrivalTs { // overflow
				t = math.MaxInt64
			}
			e.maxTs = max(e.maxTs, t)
		}
	}
	wm := e.Watermark()
	n := 0
	// hend <= end: a session the top's hend shows unpassed is unpassed.
	for len(e.heap) > 0 && apart(e.gap, e.slots[e.heap[0]].hend, wm) {
		i := e.top()
		if !apart(e.gap, e.slots[i].end, wm) {
			break
		}
		dst = append(dst, e.slots[i].session(false))
		e.drop(i)
		n++
	}
	e.m.closed.Add(float64(n))
	return dst
}

// Flush closes every open session and appends them to dst in (End, Key)
// order, for the end of a bounded input (a backfill, a test). It leaves
// the watermark where it is: a stream that goes on should not Flush but
// commit Open as provisional rows.
func (e *Engine) Flush(dst []Session) []Session {
	n := len(e.heap)
	for len(e.heap) > 0 {
		i := e.top()
		dst = append(dst, e.slots[i].session(false))
		e.drop(i)
	}
	e.m.closed.Add(float64(n))
	return dst
}

// Open returns the open sessions in (End, Key) order, for the caller to
// commit as provisional rows. It may include sessions the watermark has
// passed that the next Advance returns.
func (e *Engine) Open() []Session {
	out := make([]Session, 0, len(e.heap))
	for _, i := range e.heap {
		out = append(out, e.slots[i].session(false))
	}
	slices.SortFunc(out, byEndKey)
	return out
}

// Restore replaces the engine's state with open sessions and a watermark
// that an engine of the same Config returned by Open and Watermark (read
// back from their rows after a restart). The caller then resumes reading
// after the events those sessions hold. Sessions of one key must be more
// than Gap apart, as Open returns them.
func (e *Engine) Restore(open []Session, watermark int64) error {
	if len(open) > e.maxOpen {
		return fmt.Errorf("restore %d open sessions: max_open is %d; raise it to at least %d (they were committed under a larger limit)", len(open), e.maxOpen, len(open))
	}
	sorted := slices.Clone(open)
	slices.SortFunc(sorted, func(a, b Session) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Start, b.Start))
	})
	for i, s := range sorted {
		switch {
		case s.Events < 1:
			return fmt.Errorf("restore session of key %q at %d: it has %d events", s.Key, s.Start, s.Events)
		case s.End < s.Start:
			return fmt.Errorf("restore session of key %q: it ends (%d) before it starts (%d)", s.Key, s.End, s.Start)
		case i > 0 && sorted[i-1].Key == s.Key && !apart(e.gap, sorted[i-1].End, s.Start):
			return fmt.Errorf("restore sessions of key %q: [%d, %d] and [%d, %d] are not more than the gap apart (were they written with another gap?)",
				s.Key, sorted[i-1].Start, sorted[i-1].End, s.Start, s.End)
		}
	}
	e.reset()
	switch {
	case watermark == NoWatermark: // maxTs stays unset
	case watermark > math.MaxInt64-e.lateness:
		e.maxTs = math.MaxInt64
	default:
		e.maxTs = watermark + e.lateness
	}
	e.slots = make([]slot, len(sorted))
	e.heap = make([]int32, len(sorted))
	for i, s := range sorted {
		e.slots[i] = slot{key: s.Key, start: s.Start, end: s.End, hend: s.End, events: s.Events, orders: s.Orders, revenue: s.Revenue, next: -1, at: int32(i)}
		e.heap[i] = int32(i)
		if i > 0 && sorted[i-1].Key == s.Key {
			e.slots[i-1].next = int32(i)
		} else {
			e.keys[s.Key] = int32(i)
		}
	}
	for i := len(e.heap)/2 - 1; i >= 0; i-- {
		e.down(i)
	}
	e.m.open.Set(float64(len(e.heap)))
	return nil
}

// Sessionize groups events sorted by time into sessions by the gap rule of
// Engine, for re-aggregation and backfill, and returns them in (End, Key)
// order. Events out of time order are an error (ErrUnsorted).
func Sessionize(gap time.Duration, events []Event) ([]Session, error) {
	if gap < time.Microsecond {
		return nil, fmt.Errorf("sessionize: gap %v must be at least 1µs", gap)
	}
	g := gap.Microseconds()
	var out []Session
	cur := map[string]int{} // a key's latest session in out
	for n, ev := range events {
		if n > 0 && ev.Time < events[n-1].Time {
			return nil, fmt.Errorf("sessionize: event %d at %d comes after event %d at %d: %w", n, ev.Time, n-1, events[n-1].Time, ErrUnsorted)
		}
		if i, ok := cur[ev.Key]; ok && !apart(g, out[i].End, ev.Time) {
			s := &out[i]
			s.End = ev.Time
			s.Events++
			s.Orders += ev.Orders
			s.Revenue = s.Revenue.Add(ev.Revenue)
			continue
		}
		cur[ev.Key] = len(out)
		out = append(out, Session{Key: ev.Key, Start: ev.Time, End: ev.Time, Events: 1, Orders: ev.Orders, Revenue: ev.Revenue})
	}
	slices.SortFunc(out, byEndKey)
	return out, nil
}

func byEndKey(a, b Session) int {
	return cmp.Or(cmp.Compare(a.End, b.End), cmp.Compare(a.Key, b.Key))
}

// The heap of open sessions: a min-heap of slot indices on (hend, key),
// each slot knowing its position. A key's sessions have distinct hends
// (hend lies within the session as it is now, and sessions of a key do not
// overlap), so the order is total and the output deterministic.
//
// Ordering on hend rather than end keeps the commonest event, one that
// extends its session's end, from moving it to the bottom of the heap
// (a walk of log2(open) cache misses). Every other slot's (hend, key) is
// at least the top's, and end >= hend, so once top has made the top's
// hend its end, the top has the least (end, key) of all.

// top returns the open session with the least (end, key), moving stale
// slots down first.
func (e *Engine) top() int32 {
	for {
		i := e.heap[0]
		s := &e.slots[i]
		if s.hend == s.end {
			return i
		}
		s.hend = s.end
		e.down(0)
	}
}

func (e *Engine) less(a, b int32) bool {
	x, y := &e.slots[a], &e.slots[b]
	if x.hend != y.hend {
		return x.hend < y.hend
	}
	return x.key < y.key
}

func (e *Engine) swap(i, j int) {
	h := e.heap
	h[i], h[j] = h[j], h[i]
	e.slots[h[i]].at = int32(i)
	e.slots[h[j]].at = int32(j)
}

func (e *Engine) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !e.less(e.heap[j], e.heap[i]) {
			break
		}
		e.swap(i, j)
		j = i
	}
}

func (e *Engine) down(i0 int) bool {
	i, n := i0, len(e.heap)
	for {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && e.less(e.heap[r], e.heap[j]) {
			j = r
		}
		if !e.less(e.heap[j], e.heap[i]) {
			break
		}
		e.swap(i, j)
		i = j
	}
	return i > i0
}

func (e *Engine) removeAt(i int) {
	n := len(e.heap) - 1
	if i != n {
		e.swap(i, n)
	}
	e.heap = e.heap[:n]
	if i != n && !e.down(i) {
		e.up(i)
	}
}

// Forget drops every open session whose key match selects (the sessions
// of a data subject whose events were erased) and returns how many.
func (e *Engine) Forget(match func(key string) bool) int {
	n := 0
	for k, i := range e.keys {
		if !match(k) {
			continue
		}
		for i >= 0 {
			next := e.slots[i].next
			e.removeAt(int(e.slots[i].at))
			e.release(i)
			i = next
			n++
		}
		delete(e.keys, k)
	}
	e.m.open.Set(float64(len(e.heap)))
	return n
}
