package query

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/health"
	"github.com/eventlake/eventlake/internal/httpmw"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/route"
	"github.com/eventlake/eventlake/lake"
)

// maxBodyBytes bounds a /v1/sql request body.
const maxBodyBytes = 1 << 20

// apiError is an error answer of the JSON API.
type apiError struct {
	status     int
	code       string
	msg        string
	retryAfter time.Duration // sets Retry-After when positive
}

func (e *apiError) Error() string { return e.msg }

// Status is the HTTP status of the error's answer.
func (e *apiError) Status() int { return e.status }

// Code is the error's code in the answer ("forbidden", "bad_sql" ...).
func (e *apiError) Code() string { return e.code }

// RetryAfter is how long the caller should wait before retrying; 0: no
// advice.
func (e *apiError) RetryAfter() time.Duration { return e.retryAfter }

// asAPIError returns err as an answer.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return &apiError{status: http.StatusInternalServerError, code: codeInternal, msg: err.Error()}
}

// Handler serves the HTTP API: the routes that answer from data
// (Routes), with the routes of more in place of those of the same
// pattern and after them (the hot tier's, when it runs in the process;
// a route without a handler, such as the Postgres listener's, is only
// listed in the lineage), and those that answer about the process:
//
//	POST /v1/sql                           run one read-only statement
//	GET  /v1/metrics/order_revenue_minute  revenue per event-time minute
//	GET  /v1/models                        the declared read models
//	GET  /v1/models/{name}                 a declared read model's rows
//	GET  /v1/status                        tables, ingest lag, freshness, dead letters, readiness
//	GET  /v1/lineage                       sources -> topics -> tables -> read models -> views -> endpoints
//	GET  /healthz                          200 while the process serves HTTP (liveness)
//	GET  /readyz                           200 when every component of the process is ready, else 503 naming why
//	GET  /metrics                          Prometheus metrics of deps.Gatherer
func (s *Service) Handler(more ...route.Route) http.Handler {
	served := route.Merge(s.Routes(), more...)
	mux := http.NewServeMux()
	route.Mux(mux, served)
	mux.HandleFunc("GET /healthz", health.ServeAlive)
	mux.HandleFunc("GET /readyz", s.deps.Health.ServeReady)
	mux.Handle("GET /v1/status", s.instrument(endpointStatus, s.handleStatus))
	mux.Handle("GET /v1/lineage", s.instrument(endpointLineage, s.handleLineage(served)))
	if s.deps.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.deps.Gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

// Routes are the service's endpoints that answer from data, with what
// each reads.
func (s *Service) Routes() []route.Route { return queryRoutes(s.deps.Layout, s.deps.Inputs, s) }

// queryRoutes is the one list of the service's data endpoints (handlers
// only with s).
func queryRoutes(layout *lake.Layout, in lake.ModelInputs, s *Service) []route.Route {
	h := func(endpoint string, f func(*Service, http.ResponseWriter, *http.Request)) http.Handler {
		if s == nil {
			return nil
		}
		return s.instrument(endpoint, func(w http.ResponseWriter, r *http.Request) { f(s, w, r) })
	}
	var orders []route.Read
	if t, ok := layout.TableFor(in.Orders.Topic); ok {
		orders = append(orders, route.Read{Kind: route.Table, Name: t, Filter: "type = " + in.Orders.Type})
	}
	return []route.Route{
		{Pattern: "POST /v1/sql", About: "one read-only SQL statement", Reads: []route.Read{{Kind: route.Views}},
			Handler: h(endpointSQL, (*Service).handleSQL)},
		{Pattern: "GET /v1/metrics/order_revenue_minute", About: "revenue per event-time minute: the read model order_revenue_minute with the orders read after its snapshot (the hot tier), or summed from the raw orders (no hot tier)",
			Reads: append([]route.Read{{Kind: route.Table, Name: lake.TableOrderRevenueMinute}}, orders...), Handler: h(endpointRevenue, (*Service).handleRevenue)},
		{Pattern: "GET /v1/models", About: "the declared read models: SQL, columns, snapshot and freshness",
			Handler: h(endpointModels, (*Service).handleModels)},
		{Pattern: "GET /v1/models/{name}", About: "a declared read model's rows: ?from=&to= (RFC 3339, epoch ms or now-1h), <key>=, group=, every=",
			Reads: []route.Read{{Kind: route.Table, Name: "{name}"}}, Handler: h(endpointModels, (*Service).handleModel)},
		// Not instrumented: a stream's duration is its client's.
		{Pattern: "GET /v1/models/{name}/stream", About: "a declared read model's changed rows, at most once per row and stream.coalesce (Server-Sent Events)",
			Reads: []route.Read{{Kind: route.Table, Name: "{name}"}}, Handler: stream(s)},
	}
}

// stream is the handler of the model streams (nil without s).
func stream(s *Service) http.Handler {
	if s == nil {
		return nil
	}
	return http.HandlerFunc(s.handleModelStream)
}

func (s *Service) instrument(endpoint string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := httpmw.NewStatusWriter(w)
		h(sw, r)
		s.m.requests.WithLabelValues(endpoint, strconv.Itoa(sw.Status())).Inc()
		s.m.duration.WithLabelValues(endpoint, outcome(sw.Status())).Observe(time.Since(start).Seconds())
	})
}

func (s *Service) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode response", logkey.Err, err)
		s.writeError(w, &apiError{status: http.StatusInternalServerError, code: codeInternal, msg: "encode response: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (s *Service) writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		secs := int((e.retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	auth.WriteError(w, e.status, e.code, e.msg)
}

// outcome is the eventlake_query_duration_seconds label of a status: the
// caller's mistake (4xx) or the service's (5xx, including a full service:
// 503) kept apart from answers, so that a latency alert is not fed by
// fast refusals.
func outcome(status int) string {
	switch {
	case status >= 500:
		return outcomeServerError
	case status >= 400:
		return outcomeClientError
	}
	return outcomeOK
}
