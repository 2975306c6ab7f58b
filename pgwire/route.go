package pgwire

import "github.com/eventlake/eventlake/internal/route"

// Route describes the listener beside the HTTP routes, for the lineage:
// it reads every view the caller's grants allow, as POST /v1/sql does.
func Route() route.Route {
	return route.Route{Pattern: "postgres", About: "SQL over the PostgreSQL wire protocol (psql, BI tools)",
		Reads: []route.Read{{Kind: route.Views}}}
}
