package streamer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/route"
	"github.com/eventlake/eventlake/lake"
)

// Handler serves the hot tier's endpoints (Routes):
//
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

// ServeModelStream streams the live updates of declared model name
// (GET /v1/models/{name}/stream, served by the query service).
func (s *Streamer) ServeModelStream(w http.ResponseWriter, r *http.Request, name string) {
	s.m.sseClients.Inc()
	defer s.m.sseClients.Dec()
	h := s.hubs[name]
	if h == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("the hot tier does not maintain %q", name))
		return
	}
	h.serveSSE(w, r, 15*time.Second, name, "GET /v1/models/"+name, false)
}

func (s *Streamer) handleStream(w http.ResponseWriter, r *http.Request) {
	s.m.sseClients.Inc()
	defer s.m.sseClients.Dec()
	h := s.hubs[lake.TableOrderRevenueMinute]
	if h == nil {
		writeError(w, http.StatusNotFound, "not_found", "order_revenue_minute is not among the declared read models (read_models.models)")
		return
	}
	h.serveSSE(w, r, 15*time.Second, lake.TableOrderRevenueMinute, "GET /v1/metrics/order_revenue_minute", true)
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
	s.liveMu.Lock()
	resp := map[string]any{"spec": spec, "open": s.win.current(spec), "closed": append([]WindowResult(nil), s.closed[spec]...)}
	if wm, ok := s.win.watermark(); ok {
		resp["watermark"] = time.UnixMicro(wm).UTC().Format(time.RFC3339Nano)
	}
	resp["allowed_lateness"] = s.cfg.AllowedLateness.String()
	resp["late_events"] = s.win.late
	s.liveMu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func (s *Streamer) handleProducts(w http.ResponseWriter, _ *http.Request) {
	s.liveMu.Lock()
	list := make([]product, 0, len(s.products))
	for _, p := range s.products {
		list = append(list, p)
	}
	s.liveMu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	writeJSON(w, http.StatusOK, map[string]any{"products": list})
}
