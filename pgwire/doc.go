// Package pgwire serves eventlake's query service over the PostgreSQL
// wire protocol, so that psql, JDBC and pgx clients, DBeaver, Metabase,
// Superset and Grafana's Postgres data source can connect. It is a front
// end of the query stage, beside the HTTP API: it speaks the protocol
// (simple and extended queries, prepared statements with parameters,
// cancel requests, TLS), maps DuckDB's types to Postgres' types, answers
// session statements (SET, SHOW, BEGIN ...) and the catalog queries of
// psql's \d commands and of Grafana itself, and sends every other
// statement to a Backend: the query service, which applies the same
// sandbox, grants, limits and audit as over HTTP. It imports nothing of
// the query service.
//
// Authentication is a cleartext password: the user name is the token's
// name and the password the token. It travels as sent, so outside
// loopback the listener must have TLS, which then is required.
package pgwire
