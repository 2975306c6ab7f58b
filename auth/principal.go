// Package auth decides who calls eventlake's query service and what they
// may read: bearer tokens stored hashed in the catalog database (Store),
// checked by an Authenticator that every front end shares (HTTP, the
// Postgres wire protocol), and roles granted per table, view and read
// model with column masks and row filters (Policy).
package auth

import "context"

// Built-in roles.
const (
	// RoleAdmin reads everything, including raw files under the warehouse
	// (read_parquet, glob) and the audit log, and manages schemas.
	RoleAdmin = "admin"
	// RoleAnalyst reads every table, view and read model but the audit log.
	RoleAnalyst = "analyst"
	// RoleDashboard reads every table, view and read model but the audit
	// log and the dead letters; masks and filters are usually set here.
	RoleDashboard = "dashboard"
	// RoleCompliance reads everything an analyst reads, and the audit log.
	RoleCompliance = "compliance"
)

// Principal is an authenticated caller.
type Principal struct {
	// Name is the token's name (the Postgres user name).
	Name string
	// Role names the role the token was created with.
	Role string
	// Client is the caller's network address (host:port).
	Client string
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// From returns the principal of ctx; ok is false for a request that was
// not authenticated.
func From(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok
}
