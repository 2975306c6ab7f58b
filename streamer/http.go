package streamer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/eventtime"
	"github.com/eventlake/eventlake/internal/route"
	"github.com/eventlake/eventlake/lake"
)

// MaxRevenueRange is the longest range one revenue request may ask for.
const MaxRevenueRange = 31 * 24 * time.Hour

// RevenueRow is one minute of GET /v1/metrics/order_revenue_minute.
type RevenueRow struct {
	Minute     string `json:"minute"`
	Revenue    string `json:"revenue"`
	OrderCount int64  `json:"order_count"`
}

// RevenueResponse is the answer of GET /v1/metrics/order_revenue_minute:
// the committed read model at SnapshotID (which covers every order below
// Offsets) plus every order read after those offsets, up to Watermark
// (exclusive) per partition. Nothing is counted twice and nothing between
// Offsets and Watermark is missing.
type RevenueResponse struct {
	From       string                      `json:"from"`
	To         string                      `json:"to"`
	Table      string                      `json:"table"`
	SnapshotID *int64                      `json:"snapshot_id"`
	Offsets    map[string]map[string]int64 `json:"offsets"`
	Watermark  map[string]map[string]int64 `json:"watermark"`
	Rows       []RevenueRow                `json:"rows"`
	ElapsedMs  float64                     `json:"elapsed_ms"`
}

// Handler serves the hot tier's endpoints (Routes):
//
//	GET /v1/metrics/order_revenue_minute?from=&to=   exact per-minute revenue
//	GET /v1/stream/order_revenue_minute              live updates (SSE)
//	GET /v1/windows?spec=1m|5m|5m_every_1m           event-time windows
//	GET /v1/products                                 the enrichment table
func (s *Streamer) Handler() http.Handler {
	mux := http.NewServeMux()
	route.Mux(mux, s.Routes())
	return mux
}

// Routes are the hot tier's endpoints, with what each reads.
func (s *Streamer) Routes() []route.Route { return routes(s.cfg, s.in, s) }

// Routes describes the endpoints a hot tier with cfg and in serves,
// without handlers: the lineage of a configuration, from a process that
// does not run the hot tier.
func Routes(cfg Config, in lake.ModelInputs) []route.Route { return routes(cfg, in, nil) }

// routes is the one list of the hot tier's endpoints (handlers only with
// s).
func routes(cfg Config, in lake.ModelInputs, s *Streamer) []route.Route {
	h := func(f func(*Streamer, http.ResponseWriter, *http.Request)) http.Handler {
		if s == nil {
			return nil
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f(s, w, r) })
	}
	orders := route.Read{Kind: route.Topic, Name: in.Orders.Topic, Filter: "type = " + in.Orders.Type}
	revenue := route.Read{Kind: route.Table, Name: lake.TableOrderRevenueMinute}
	return []route.Route{
		{Pattern: "GET /v1/metrics/order_revenue_minute", About: "exact revenue per event-time minute: the read model and the orders read after its snapshot",
			Reads: []route.Read{revenue, orders}, Handler: h((*Streamer).handleRevenue)},
		{Pattern: "GET /v1/stream/order_revenue_minute", About: "a minute's latest revenue when it changes, at most once per stream.coalesce (Server-Sent Events)",
			Reads: []route.Read{revenue, orders}, Handler: h((*Streamer).handleStream)},
		{Pattern: "GET /v1/windows", About: "open and recently closed event-time windows of orders",
			Reads: []route.Read{orders}, Handler: h((*Streamer).handleWindows)},
		{Pattern: "GET /v1/products", About: "the product catalog orders are enriched with",
			Reads: []route.Read{{Kind: route.Topic, Name: cfg.ProductsTopic}}, Handler: h((*Streamer).handleProducts)},
	}
}

// writeJSON encodes v before writing the status, so that a value that
// cannot be encoded is a 500 with a message, never a 200 with an empty
// body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": "encode the answer: " + err.Error(), "code": "internal"})
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	auth.WriteError(w, status, code, msg)
}

func (s *Streamer) handleRevenue(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	parse := func(name string) (time.Time, bool) {
		v := r.URL.Query().Get(name)
		if v == "" {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("query parameter %q is required (RFC 3339, e.g. 2026-11-26T10:00:00Z)", name))
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("query parameter %q: %q is not RFC 3339", name, v))
			return time.Time{}, false
		}
		return t, true
	}
	from, ok := parse("from")
	if !ok {
		return
	}
	to, ok := parse("to")
	if !ok {
		return
	}
	if !to.After(from) {
		writeError(w, http.StatusBadRequest, "bad_request", "to must be after from")
		return
	}
	if to.Sub(from) > MaxRevenueRange {
		writeError(w, http.StatusBadRequest, "bad_request", "the range is longer than 31 days; ask for several ranges")
		return
	}
	if !s.Ready() {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "not_ready", "the hot tier is still loading the read models; retry in a moment")
		return
	}
	// Minutes whose start lies in [from, to).
	lo := ceilDiv(from.UnixMicro(), eventtime.MicrosPerMinute)
	hi := ceilDiv(to.UnixMicro(), eventtime.MicrosPerMinute)
	res := RevenueResponse{From: from.UTC().Format(time.RFC3339Nano), To: to.UTC().Format(time.RFC3339Nano),
		Table: lake.TableOrderRevenueMinute, Rows: []RevenueRow{}}
	s.mu.RLock()
	if s.rev.hasSnap {
		id := s.rev.snapshot
		res.SnapshotID = &id
	}
	res.Offsets = offsetsJSON(s.rev.offsets, s.in.Orders.Topic)
	res.Watermark = map[string]map[string]int64{s.in.Orders.Topic: {}}
	for p, o := range s.high[s.in.Orders.Topic] {
		res.Watermark[s.in.Orders.Topic][strconv.Itoa(int(p))] = o
	}
	for p, o := range s.rev.offsets[s.in.Orders.Topic] { // not read yet: the snapshot's offsets
		k := strconv.Itoa(int(p))
		if cur, ok := res.Watermark[s.in.Orders.Topic][k]; !ok || cur < o {
			res.Watermark[s.in.Orders.Topic][k] = o
		}
	}
	if hi-lo <= int64(len(s.rev.cold)+len(s.rev.hot)) {
		for m := lo; m < hi; m++ {
			if a := s.total(m); !a.zero() {
				res.Rows = append(res.Rows, revenueRow(m, a))
			}
		}
	} else { // a sparse range: walk the minutes that have data
		seen := map[int64]bool{}
		for _, src := range []map[int64]agg{s.rev.cold, s.rev.hot} {
			for m := range src {
				if m >= lo && m < hi && !seen[m] {
					seen[m] = true
					if a := s.total(m); !a.zero() {
						res.Rows = append(res.Rows, revenueRow(m, a))
					}
				}
			}
		}
		sort.Slice(res.Rows, func(i, j int) bool { return res.Rows[i].Minute < res.Rows[j].Minute })
	}
	s.mu.RUnlock()
	res.ElapsedMs = float64(time.Since(start).Microseconds()) / 1000
	writeJSON(w, http.StatusOK, res)
}

func revenueRow(m int64, a agg) RevenueRow {
	return RevenueRow{Minute: time.UnixMicro(m * eventtime.MicrosPerMinute).UTC().Format(time.RFC3339), Revenue: a.sum.ToString(2), OrderCount: a.count}
}

func ceilDiv(a, b int64) int64 { return -eventtime.FloorDiv(-a, b) }

func offsetsJSON(o lake.Offsets, topic string) map[string]map[string]int64 {
	out := map[string]map[string]int64{topic: {}}
	for p, off := range o[topic] {
		out[topic][strconv.Itoa(int(p))] = off
	}
	return out
}

func (s *Streamer) handleStream(w http.ResponseWriter, r *http.Request) {
	s.m.sseClients.Inc()
	defer s.m.sseClients.Dec()
	s.hub.serveSSE(w, r, 15*time.Second)
}

func (s *Streamer) handleWindows(w http.ResponseWriter, r *http.Request) {
	spec := r.URL.Query().Get("spec")
	if spec == "" {
		spec = "1m"
	}
	known := false
	for _, ws := range DefaultWindows() {
		known = known || ws.Name == spec
	}
	if !known {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("spec %q is not one of 1m, 5m, 5m_every_1m", spec))
		return
	}
	s.mu.RLock()
	resp := map[string]any{"spec": spec, "open": s.win.current(spec), "closed": append([]WindowResult(nil), s.closed[spec]...)}
	if wm, ok := s.win.watermark(); ok {
		resp["watermark"] = time.UnixMicro(wm).UTC().Format(time.RFC3339Nano)
	}
	resp["allowed_lateness"] = s.cfg.AllowedLateness.String()
	resp["late_events"] = s.win.late
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, resp)
}

func (s *Streamer) handleProducts(w http.ResponseWriter, _ *http.Request) {
	s.mu.RLock()
	list := make([]product, 0, len(s.products))
	for _, p := range s.products {
		list = append(list, p)
	}
	s.mu.RUnlock()
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	writeJSON(w, http.StatusOK, map[string]any{"products": list})
}
