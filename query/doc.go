// Package query is the last stage of eventlake's data flow: it serves SQL
// over the lake tables.
//
//	ingest -> streamer -> (lake tables) -> compactor -> [query]
//	   \__________ all on top of catalog __________/
//
// A refresher polls the Iceberg catalog, and whenever a table's current
// snapshot changes it plans the table's files with iceberg-go and publishes
// a new view generation: the SQL of DuckDB views (events, orders, inventory,
// dlq and one per raw table) that read exactly those Parquet files. Every
// query runs on a pooled DuckDB connection whose temporary views are brought
// to the current generation before the statement is prepared, so a query
// reads one set of snapshots and the response names them.
//
// The lineage (lineage.go: GET /v1/lineage, and ReadLineage for the
// command) is computed from the same generation, the layout, the schema
// registry and the routes the process serves: where each topic's events
// come from and which tables, read models, views and endpoints they reach.
//
// DuckDB runs sandboxed: external access is off except for the lake's
// directories, the configuration is locked, and the service itself refuses
// every statement that is not a SELECT or an EXPLAIN of one.
package query
