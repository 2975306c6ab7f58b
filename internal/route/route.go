// Package route describes the endpoints a process serves as data: the
// pattern a handler is registered under, what it is for and what it
// reads. A component lists its routes once; the HTTP mux is built from
// the list, and the lineage (query.Lineage) reads the same list to say
// which endpoint reads which table, view or topic. Plumbing only: names
// are plain strings.
package route

import "net/http"

// Route is one endpoint.
type Route struct {
	// Pattern is what http.ServeMux registers the handler under
	// ("GET /v1/sql"); for a listener that is not HTTP, its protocol
	// ("postgres").
	Pattern string
	// About says what the endpoint answers, in a few words.
	About string
	// Reads are the data the endpoint answers from; none for endpoints
	// that answer about the process (status, health).
	Reads []Read
	// Handler serves the route; nil for a route that is described only
	// (a listener that is not HTTP, or a component this process does not
	// run).
	Handler http.Handler
}

// Kind is what a Read names.
type Kind string

// Kinds of reads.
const (
	// Table is a lake table, by name.
	Table Kind = "table"
	// Topic is a Kafka topic read directly (the hot tier).
	Topic Kind = "topic"
	// Views are every view the caller's grants allow (SQL endpoints).
	Views Kind = "views"
)

// Read is one thing an endpoint reads.
type Read struct {
	Kind Kind
	Name string // empty for Views
	// Filter narrows what is read, for people ("type = order.created").
	Filter string
}

// Merge returns base with the routes of more in place of the routes of
// base with the same pattern, and the other routes of more after them.
func Merge(base []Route, more ...Route) []Route {
	out := make([]Route, 0, len(base)+len(more))
	replaced := map[string]bool{}
	for _, b := range base {
		r := b
		for _, m := range more {
			if m.Pattern == b.Pattern {
				r, replaced[m.Pattern] = m, true
			}
		}
		out = append(out, r)
	}
	for _, m := range more {
		if !replaced[m.Pattern] {
			out = append(out, m)
		}
	}
	return out
}

// Mux registers every route with a handler on mux.
func Mux(mux *http.ServeMux, routes []Route) {
	for _, r := range routes {
		if r.Handler != nil {
			mux.Handle(r.Pattern, r.Handler)
		}
	}
}
