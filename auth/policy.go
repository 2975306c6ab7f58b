package auth

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/eventlake/eventlake/lake"
)

// DefaultRefreshInterval is how often tokens are reloaded: the longest a
// revoked token keeps working.
const DefaultRefreshInterval = 5 * time.Second

// AuditLog is the audit log's table: never matched by a wildcard grant.
const AuditLog = lake.TableAuditLog

// Config is the auth: section.
type Config struct {
	// Disabled turns authentication off: every request acts as admin. It
	// is refused unless every listener is on a loopback address.
	Disabled bool `yaml:"disabled"`
	// RefreshInterval is how often tokens are reloaded from the store
	// (the longest a revoked token keeps working). Default 5s.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// ProtectMetrics puts /metrics behind authentication (any role).
	ProtectMetrics bool `yaml:"protect_metrics"`
	// Database holds the tokens when the catalog has no SQL database (a
	// REST catalog): a PostgreSQL URI or a SQLite file.
	Database string `yaml:"database"`
	// Limits bound each token's requests (429 with Retry-After past
	// them).
	Limits Limits `yaml:"limits"`
	// Roles adds roles and replaces the grants of built-in ones (admin's
	// cannot change).
	Roles map[string]RoleConfig `yaml:"roles"`
}

// RoleConfig configures one role.
type RoleConfig struct {
	// Grants are tried in order; the first whose objects match a name
	// applies to it.
	Grants []Grant `yaml:"grants"`
	// ManageSchemas lets the role register and delete schemas in the
	// built-in registry (admin always may).
	ManageSchemas bool `yaml:"manage_schemas"`
}

// Grant gives a role read access to objects.
type Grant struct {
	// Objects are table, view and read-model names or patterns (path.Match:
	// "*", "order_*"). Patterns never match the audit log; name it.
	Objects []string `yaml:"objects"`
	// Masks replace columns' values: column -> "hash" (SHA-256 of the
	// value as text), "null", or a SQL expression over the object's
	// columns (e.g. "left(email, 2) || '***'"). A masked column that an
	// object lacks is ignored.
	Masks map[string]string `yaml:"masks"`
	// RowFilter is a SQL predicate over the object's columns: the role
	// sees only rows for which it is true.
	RowFilter string `yaml:"row_filter"`
}

// Restricted reports whether the grant changes what the object returns.
func (g *Grant) Restricted() bool { return g != nil && (len(g.Masks) > 0 || g.RowFilter != "") }

// Role is a role in force.
type Role struct {
	Name string
	// Admin reads everything, raw files too, and manages the service.
	Admin         bool
	ManageSchemas bool
	Grants        []Grant
}

// full is the grant of an unrestricted read.
var full = &Grant{Objects: []string{"*"}}

// Grant returns the grant that lets r read object, or nil.
func (r *Role) Grant(object string) *Grant {
	if r.Admin {
		return full
	}
	for i := range r.Grants {
		g := &r.Grants[i]
		for _, pat := range g.Objects {
			if pat == object || (object != AuditLog && !strings.EqualFold(object, AuditLog) && match(pat, object)) {
				return g
			}
		}
	}
	return nil
}

func match(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

// Policy is the roles in force.
type Policy struct {
	roles map[string]*Role
}

// builtins are the built-in roles' default grants.
func builtins() map[string]*Role {
	all := []Grant{{Objects: []string{"*"}}}
	return map[string]*Role{
		RoleAdmin:      {Name: RoleAdmin, Admin: true, ManageSchemas: true},
		RoleAnalyst:    {Name: RoleAnalyst, Grants: all},
		RoleDashboard:  {Name: RoleDashboard, Grants: all},
		RoleCompliance: {Name: RoleCompliance, Grants: []Grant{{Objects: []string{"*", AuditLog}}}},
	}
}

// NewPolicy builds the roles of cfg over the built-in ones.
func NewPolicy(cfg Config) (*Policy, error) {
	roles := builtins()
	var errs []error
	for _, name := range sortedKeys(cfg.Roles) {
		rc := cfg.Roles[name]
		if err := CheckName(name); err != nil {
			errs = append(errs, fmt.Errorf("auth.roles: %w", err))
			continue
		}
		if name == RoleAdmin {
			errs = append(errs, errors.New("auth.roles.admin: the admin role reads everything; its grants cannot be configured"))
			continue
		}
		for i, g := range rc.Grants {
			if len(g.Objects) == 0 {
				errs = append(errs, fmt.Errorf("auth.roles.%s.grants[%d]: objects is empty", name, i))
			}
			for _, pat := range g.Objects {
				if _, err := path.Match(pat, ""); err != nil {
					errs = append(errs, fmt.Errorf("auth.roles.%s.grants[%d]: object pattern %q: %v", name, i, pat, err))
				}
			}
			for col, m := range g.Masks {
				if strings.TrimSpace(m) == "" {
					errs = append(errs, fmt.Errorf("auth.roles.%s.grants[%d].masks.%s is empty (use hash, null or a SQL expression)", name, i, col))
				}
			}
		}
		roles[name] = &Role{Name: name, ManageSchemas: rc.ManageSchemas, Grants: slices.Clone(rc.Grants)}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Policy{roles: roles}, nil
}

// Role returns the role named name.
func (p *Policy) Role(name string) (*Role, bool) {
	r, ok := p.roles[name]
	return r, ok
}

// Names lists the roles, sorted.
func (p *Policy) Names() []string { return sortedKeys(p.roles) }

// Fragments returns every SQL fragment of the policy (masks and row
// filters) with where it comes from, for the query service to check once
// at start.
func (p *Policy) Fragments() []Fragment {
	var out []Fragment
	for _, name := range p.Names() {
		for i, g := range p.roles[name].Grants {
			for _, col := range sortedKeys(g.Masks) {
				out = append(out, Fragment{Where: fmt.Sprintf("auth.roles.%s.grants[%d].masks.%s", name, i, col), Expr: g.Masks[col]})
			}
			if g.RowFilter != "" {
				out = append(out, Fragment{Where: fmt.Sprintf("auth.roles.%s.grants[%d].row_filter", name, i), Expr: g.RowFilter})
			}
		}
	}
	return out
}

// Fragment is a SQL expression of the configuration.
type Fragment struct{ Where, Expr string }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
