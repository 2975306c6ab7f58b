// Package readmodel declares read models. A read model is SQL of one
// restricted form, written in configuration:
//
//	SELECT time_bucket(INTERVAL '1 minute', ts) AS minute, product_id,
//	       sum(amount) AS revenue, count(*) AS orders,
//	       approx_count_distinct(user_id) AS users
//	FROM orders WHERE source <> 'test'
//	GROUP BY ALL
//
// one source (an event type, by its name or a type view's), an event-time
// bucket of ts (1 minute, 5 minutes, 1 hour or 1 day, UTC), optional
// group-by columns, an optional WHERE of comparisons with constants, and
// decomposable aggregates: count, sum (exact: decimals keep their scale,
// integers widen), min, max, avg (kept as sum and count),
// approx_count_distinct (a HyperLogLog sketch that merges across buckets)
// and arg_max(col, ts) / arg_min(col, ts), the value at the latest
// (earliest) event time, kept with that time.
// Parse checks the form with DuckDB's own parser and refuses anything
// else with a message that names the part and why.
//
// A Model is the one place that says how the model's table looks
// (TableDef), which events count and how (an Evaluator over decoded
// events or over Arrow rows of the lake's raw tables), and how partial
// figures merge (State). The hot tier maintains models with it, backfill
// and re-aggregation rebuild them from the lake with it, and the query
// service serves them with it.
//
// Where it sits: on the foundation (lake, schema), below the stages that
// use it (streamer, query, cmd).
package readmodel
