package streamer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Update is one change of a declared read model's row, pushed live: the
// row's answer as GET /v1/models/{name} gives it.
type Update struct {
	Seq   uint64         `json:"seq"`
	Model string         `json:"model"`
	Row   map[string]any `json:"row"`
	// Final is set once the watermark has passed the bucket's end; a late
	// event may still change a final bucket (and is pushed as such).
	Final bool `json:"final"`
	// Key is the row's bucket and key values (readmodel.Row.Key).
	Key string `json:"-"`
	// Minute, Revenue and OrderCount are order_revenue_minute's row in
	// the shape of GET /v1/stream/order_revenue_minute.
	Minute     string `json:"-"`
	Revenue    string `json:"-"`
	OrderCount int64  `json:"-"`
}

// key is the update's identity: updates of the same key replace each
// other within a coalescing interval (the model and its row).
func (u Update) key() string { return u.Model + "\x00" + u.Key + "\x00" + u.Minute }

// revenueUpdate is the shape of GET /v1/stream/order_revenue_minute.
type revenueUpdate struct {
	Seq        uint64 `json:"seq"`
	Minute     string `json:"minute"`
	Revenue    string `json:"revenue"`
	OrderCount int64  `json:"order_count"`
	Final      bool   `json:"final"`
}

// coalescer sits in front of the hubs: each key (a model's row) gets at
// most one message per interval, with its latest value. A key quiet for an
// interval is sent at once (a dashboard sees a sparse change in
// milliseconds); changes within an interval of its last message are held,
// only the latest kept, and sent when the interval since that message has
// passed. The hubs number what they are handed, so sequence numbers stay
// contiguous and Last-Event-ID resumes exactly as without coalescing. With
// interval 0 every update goes straight to the hubs.
//
// What it holds is bounded by the keys changed within one interval (the
// rows a poll of the topics touches), not by the update rate.
type coalescer struct {
	publish  func([]Update) // the hubs'
	interval time.Duration
	// onCoalesced counts updates replaced by a later one of their key
	// (never sent).
	onCoalesced func(n int)

	// mu is held while updates are handed to the hubs, so that what add
	// and flush send reaches them in order.
	mu      sync.Mutex
	pending []Update
	index   map[string]int       // key -> position in pending
	sent    map[string]time.Time // key -> its last message, within the last interval
}

func newCoalescer(publish func([]Update), interval time.Duration, onCoalesced func(n int)) *coalescer {
	return &coalescer{publish: publish, interval: interval, onCoalesced: onCoalesced, index: map[string]int{}, sent: map[string]time.Time{}}
}

// add publishes updates: at once when coalescing is off or the key had no
// message within the last interval, else at the flush after the interval
// has passed, each replacing a held update of its key.
func (c *coalescer) add(us []Update) {
	if len(us) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.interval <= 0 {
		c.publish(us)
		return
	}
	now := time.Now()
	replaced := 0
	var now1 []Update
	for _, u := range us {
		k := u.key()
		if i, ok := c.index[k]; ok {
			c.pending[i] = u
			replaced++
			continue
		}
		if t, ok := c.sent[k]; ok && now.Sub(t) < c.interval {
			c.index[k] = len(c.pending)
			c.pending = append(c.pending, u)
			continue
		}
		c.sent[k] = now
		now1 = append(now1, u)
	}
	c.publish(now1)
	if replaced > 0 && c.onCoalesced != nil {
		c.onCoalesced(replaced)
	}
}

// flush sends the held updates whose interval has passed (all with all),
// and forgets keys quiet for an interval.
func (c *coalescer) flush(all bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	var due, keep []Update
	for _, u := range c.pending {
		if all || now.Sub(c.sent[u.key()]) >= c.interval {
			due = append(due, u)
			c.sent[u.key()] = now
		} else {
			keep = append(keep, u)
		}
	}
	c.publish(due)
	c.pending = append(c.pending[:0], keep...)
	clear(c.index)
	for i, u := range c.pending {
		c.index[u.key()] = i
	}
	for k, t := range c.sent {
		if _, held := c.index[k]; !held && now.Sub(t) >= c.interval {
			delete(c.sent, k)
		}
	}
}

// run flushes four times an interval (a held update waits at most 1.25
// intervals after its key's last message) until ctx ends, and then sends
// everything held. Its ticker is time's: tests run it inside a
// testing/synctest bubble, whose clock is fake.
func (c *coalescer) run(ctx context.Context) error {
	if c.interval <= 0 {
		return nil
	}
	tick := time.NewTicker(max(c.interval/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			c.flush(true)
			return nil
		case <-tick.C:
			c.flush(false)
		}
	}
}

// hub fans updates out to live clients and keeps the last ones so that a
// client reconnecting with Last-Event-ID resumes without a gap.
type hub struct {
	mu      sync.Mutex
	seq     uint64
	ring    []Update
	head, n int
	subs    map[*sub]struct{}
	onDrop  func()
}

type sub struct {
	ch   chan Update
	gone chan struct{} // closed when the hub drops a client that fell behind
}

func newHub(size int, onDrop func()) *hub {
	return &hub{ring: make([]Update, size), subs: map[*sub]struct{}{}, onDrop: onDrop}
}

// publish numbers updates and sends them to every client; a client whose
// buffer is full is dropped (it reconnects and resumes from the ring).
func (h *hub) publish(us []Update) {
	if len(us) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range us {
		h.seq++
		u.Seq = h.seq
		h.ring[(h.head+h.n)%len(h.ring)] = u
		if h.n < len(h.ring) {
			h.n++
		} else {
			h.head = (h.head + 1) % len(h.ring)
		}
		for s := range h.subs {
			select {
			case s.ch <- u:
			default:
				delete(h.subs, s)
				close(s.gone)
				if h.onDrop != nil {
					h.onDrop()
				}
			}
		}
	}
}

// subscribe registers a client. With a last id it returns the updates
// after it; ok is false if some were already evicted from the ring.
func (h *hub) subscribe(last uint64, resume bool) (s *sub, backlog []Update, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s = &sub{ch: make(chan Update, 1024), gone: make(chan struct{})}
	h.subs[s] = struct{}{}
	ok = true
	if resume && last < h.seq {
		oldest := h.seq - uint64(h.n) + 1
		if last+1 < oldest {
			ok = false
		}
		for i := 0; i < h.n; i++ {
			u := h.ring[(h.head+i)%len(h.ring)]
			if u.Seq > last {
				backlog = append(backlog, u)
			}
		}
	}
	return s, backlog, ok
}

func (h *hub) unsubscribe(s *sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
}

func (h *hub) clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// serveSSE streams the updates of model as Server-Sent Events: `id` is
// the update's sequence number, so a client reconnecting with
// Last-Event-ID (header, or the last_event_id query parameter) gets
// everything it missed. If the missed updates are no longer buffered, it
// first gets a `reset` event and should re-read the figures (reread says
// from where). revenue sends order_revenue_minute's updates in the shape
// of its own stream (event `minute`); otherwise an update is
// {"seq", "model", "row", "final"} (event `row`).
func (h *hub) serveSSE(w http.ResponseWriter, r *http.Request, heartbeat time.Duration, model, reread string, revenue bool) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	lastStr := r.Header.Get("Last-Event-ID")
	if lastStr == "" {
		lastStr = r.URL.Query().Get("last_event_id")
	}
	var (
		last   uint64
		resume bool
	)
	if lastStr != "" {
		v, err := strconv.ParseUint(lastStr, 10, 64)
		if err != nil {
			http.Error(w, fmt.Sprintf(`{"error":"Last-Event-ID %q is not an update sequence number","code":"bad_request"}`, lastStr), http.StatusBadRequest)
			return
		}
		last, resume = v, true
	}
	s, backlog, complete := h.subscribe(last, resume)
	defer h.unsubscribe(s)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Connection", "keep-alive")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 1000\n\n")
	if !complete {
		fmt.Fprintf(w, "event: reset\ndata: {\"reason\":\"updates after %d are no longer buffered; re-read %s\"}\n\n", last, reread)
	}
	write := func(u Update) bool {
		if u.Model != model {
			return true
		}
		var (
			b     []byte
			event = "row"
		)
		if revenue {
			b, _ = json.Marshal(revenueUpdate{Seq: u.Seq, Minute: u.Minute, Revenue: u.Revenue, OrderCount: u.OrderCount, Final: u.Final})
			event = "minute"
		} else {
			b, _ = json.Marshal(u)
		}
		_, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", u.Seq, event, b)
		return err == nil
	}
	for _, u := range backlog {
		if !write(u) {
			return
		}
	}
	fl.Flush()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.gone:
			return
		case u := <-s.ch:
			if !write(u) {
				return
			}
			// Coalesce what is already queued into one flush.
			for more := true; more; {
				select {
				case u := <-s.ch:
					if !write(u) {
						return
					}
				default:
					more = false
				}
			}
			fl.Flush()
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
