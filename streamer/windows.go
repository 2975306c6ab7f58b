package streamer

import (
	"sort"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/eventlake/eventlake/internal/eventtime"
	"github.com/eventlake/eventlake/internal/hll"
)

// WindowSpec is a tumbling (Slide == Size) or hopping window.
type WindowSpec struct {
	Name  string
	Size  time.Duration
	Slide time.Duration
}

// DefaultWindows are the windows the hot tier keeps.
func DefaultWindows() []WindowSpec {
	return []WindowSpec{
		{Name: "1m", Size: time.Minute, Slide: time.Minute},
		{Name: "5m", Size: 5 * time.Minute, Slide: 5 * time.Minute},
		{Name: "5m_every_1m", Size: 5 * time.Minute, Slide: time.Minute},
	}
}

// WindowResult is the state of one window.
type WindowResult struct {
	Spec           string            `json:"spec"`
	Start          time.Time         `json:"start"`
	End            time.Time         `json:"end"`
	RevenueCents   decimal128.Num    `json:"-"`
	Revenue        string            `json:"revenue"`
	Orders         int64             `json:"orders"`
	ActiveUsers    uint64            `json:"active_users"`
	ProductRevenue map[string]string `json:"product_revenue,omitempty"`
	Final          bool              `json:"final"`
}

type windowAgg struct {
	cents    decimal128.Num
	orders   int64
	users    *hll.Sketch
	products map[string]decimal128.Num
}

// windows computes event-time windows. The watermark is the largest event
// time seen minus the allowed lateness; a window closes (its result becomes
// final and it leaves memory) when the watermark reaches its end. An event
// that belongs only to closed windows is late: it is not added to them (it
// is in the lake and in the exact read models; re-aggregation folds it into
// the read-model rows) and is counted. When no event arrives for idle, the
// watermark advances with processing time so the last windows still close.
// Not safe for concurrent use.
type windows struct {
	specs    []WindowSpec
	lateness int64 // micros
	idle     time.Duration
	now      func() time.Time

	maxTs       int64 // micros; largest event time seen (or advanced by idleness)
	hasTs       bool
	lastArrival time.Time
	lastTick    time.Time
	open        []map[int64]*windowAgg // per spec: window start (micros) -> aggregate
	late        int64
}

func newWindows(specs []WindowSpec, lateness, idle time.Duration, now func() time.Time) *windows {
	w := &windows{specs: specs, lateness: lateness.Microseconds(), idle: idle, now: now}
	for range specs {
		w.open = append(w.open, map[int64]*windowAgg{})
	}
	return w
}

func (w *windows) watermark() (int64, bool) { return w.maxTs - w.lateness, w.hasTs }

// add adds one order. It reports whether the event was late for at least
// one window it belongs to.
func (w *windows) add(ts int64, cents decimal128.Num, user uint64, product string) (late bool) {
	w.lastArrival = w.now()
	wm, ok := w.watermark()
	for i, s := range w.specs {
		size, slide := s.Size.Microseconds(), s.Slide.Microseconds()
		// Windows [start, start+size) with start = k*slide containing ts.
		last := eventtime.FloorDiv(ts, slide) * slide
		for start := last; start > ts-size; start -= slide {
			if ok && start+size <= wm {
				late = true // this window has closed
				continue
			}
			a := w.open[i][start]
			if a == nil {
				a = &windowAgg{users: hll.New(), products: map[string]decimal128.Num{}}
				w.open[i][start] = a
			}
			a.cents = a.cents.Add(cents)
			a.orders++
			a.users.Add(user)
			a.products[product] = a.products[product].Add(cents)
		}
	}
	if !w.hasTs || ts > w.maxTs {
		w.maxTs, w.hasTs = ts, true
	}
	if late {
		w.late++
	}
	return late
}

// tick advances the watermark with processing time while no events
// arrive, so that the last windows close on an idle stream.
func (w *windows) tick() {
	now := w.now()
	if w.hasTs && !w.lastArrival.IsZero() && now.Sub(w.lastArrival) >= w.idle && !w.lastTick.IsZero() {
		w.maxTs += now.Sub(w.lastTick).Microseconds()
	}
	w.lastTick = now
}

// closeDue removes the windows the watermark has passed and returns their
// final results, in end order.
func (w *windows) closeDue() []WindowResult {
	wm, ok := w.watermark()
	if !ok {
		return nil
	}
	var out []WindowResult
	for i, s := range w.specs {
		size := s.Size.Microseconds()
		for start, a := range w.open[i] {
			if start+size <= wm {
				out = append(out, result(s, start, a, true))
				delete(w.open[i], start)
			}
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].End.Equal(out[b].End) {
			return out[a].End.Before(out[b].End)
		}
		return out[a].Spec < out[b].Spec
	})
	return out
}

// current returns the open windows of a spec, in start order.
func (w *windows) current(spec string) []WindowResult {
	var out []WindowResult
	for i, s := range w.specs {
		if s.Name != spec {
			continue
		}
		for start, a := range w.open[i] {
			out = append(out, result(s, start, a, false))
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Start.Before(out[b].Start) })
	return out
}

func result(s WindowSpec, start int64, a *windowAgg, final bool) WindowResult {
	r := WindowResult{
		Spec: s.Name, Start: time.UnixMicro(start).UTC(), End: time.UnixMicro(start + s.Size.Microseconds()).UTC(),
		RevenueCents: a.cents, Revenue: a.cents.ToString(2), Orders: a.orders, ActiveUsers: a.users.Estimate(), Final: final,
		ProductRevenue: map[string]string{},
	}
	for p, c := range a.products {
		r.ProductRevenue[p] = c.ToString(2)
	}
	return r
}
