package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventlake/eventlake/auth"
)

// authHarness serves the query service behind the real auth gate, with
// tokens in the catalog's database.
type authHarness struct {
	*harness
	store  *auth.Store
	authn  *auth.Authenticator
	tokens map[string]string // role -> token
}

func startAuth(t *testing.T, l *testLake, cfg auth.Config) *authHarness {
	t.Helper()
	db, dialect := l.cat.DB()
	store, err := auth.OpenStore(context.Background(), db, dialect)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := auth.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	authn := auth.NewAuthenticator(store, time.Hour, nil)
	ah := &authHarness{store: store, authn: authn, tokens: map[string]string{}}
	for _, role := range policy.Names() {
		tok, err := store.Create(context.Background(), role+"-token", role)
		if err != nil {
			t.Fatal(err)
		}
		ah.tokens[role] = tok
	}
	ah.harness = startWith(t, l, nil, func(d *Deps) func(http.Handler) http.Handler {
		d.Policy = policy
		gate := &auth.Gate{Authn: authn, Policy: policy, Public: func(r *http.Request) bool { return r.URL.Path == "/healthz" || r.URL.Path == "/readyz" }}
		return gate.Wrap
	})
	return ah
}

// as runs query with role's token.
func (h *authHarness) as(role, query string) sqlResult {
	h.t.Helper()
	h.token = h.tokens[role]
	defer func() { h.token = "" }()
	return h.sql(query)
}

func TestAuthentication(t *testing.T) {
	l := newLake(t)
	l.orders()
	h := startAuth(t, l, auth.Config{})
	if r := h.sql("SELECT 1"); r.status != http.StatusUnauthorized || r.code() != "unauthenticated" || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %s", r.status, r.raw)
	}
	h.token = "elk_wrong"
	if r := h.sql("SELECT 1"); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d %s", r.status, r.raw)
	}
	h.token = ""
	if r := h.as(auth.RoleAnalyst, "SELECT 1"); r.status != http.StatusOK {
		t.Fatalf("analyst: %d %s", r.status, r.raw)
	}
	// A token created after the last refresh works at once; a revoked
	// one stops at the next refresh.
	tok, err := h.store.Create(context.Background(), "late", auth.RoleAnalyst)
	if err != nil {
		t.Fatal(err)
	}
	h.token = tok
	if r := h.sql("SELECT 1"); r.status != http.StatusOK {
		t.Fatalf("new token: %d %s", r.status, r.raw)
	}
	if err := h.store.Revoke(context.Background(), "late"); err != nil {
		t.Fatal(err)
	}
	if err := h.authn.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := h.sql("SELECT 1"); r.status != http.StatusUnauthorized {
		t.Fatalf("revoked token after a refresh: %d %s", r.status, r.raw)
	}
	// Health stays open.
	if code, _ := h.get("/healthz"); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
}

func TestGrants(t *testing.T) {
	l := newLake(t)
	l.orders()
	l.dlq()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	sid := l.appendRows("orders_raw", []row{order("a", t0, "5.00", 0), order("b", t0, "20.00", 1)}, offsets("orders.created", 0, 2))
	h := startAuth(t, l, auth.Config{Roles: map[string]auth.RoleConfig{
		auth.RoleDashboard: {Grants: []auth.Grant{{Objects: []string{"*"}, Masks: map[string]string{"user_id": "hash", "source": "null"}, RowFilter: "amount >= 10"}}},
		"support":          {Grants: []auth.Grant{{Objects: []string{"orders", "order_*"}}}},
	}})
	h.waitSnapshot("orders_raw", sid)

	for _, c := range []struct {
		role, sql string
		status    int
		want      string // in the error
	}{
		{auth.RoleAnalyst, "SELECT count(*) FROM orders", 200, ""},
		{auth.RoleAnalyst, "SELECT count(*) FROM ORDERS o JOIN events e USING (event_id)", 200, ""},
		{auth.RoleAnalyst, "SELECT table_name FROM information_schema.tables", 200, ""},
		{auth.RoleAnalyst, "WITH dlq AS (SELECT 1 AS a) SELECT * FROM dlq", 200, ""},
		{auth.RoleAnalyst, "SELECT * FROM range(3)", 200, ""},
		{auth.RoleAnalyst, "SELECT * FROM read_parquet('" + l.dir + "/**/*.parquet')", 403, "read_parquet"},
		{auth.RoleAnalyst, "SELECT * FROM glob('" + l.dir + "/*')", 403, "glob"},
		{auth.RoleAnalyst, "SELECT * FROM read_text('" + l.dir + "/x')", 403, "read_text"},
		{auth.RoleAnalyst, "SELECT * FROM '" + l.dir + "/x.parquet'", 403, "x.parquet"},
		{auth.RoleAnalyst, "SELECT * FROM temp.main.orders", 403, "temp.main.orders"},
		{auth.RoleAnalyst, "SELECT * FROM main.orders", 403, "main.orders"},
		{auth.RoleAnalyst, "SELECT * FROM (SELECT 1) x WHERE 1 IN (SELECT 1 FROM query_table('orders'))", 403, "query_table"},
		{auth.RoleAnalyst, "EXPLAIN SELECT 1", 403, "SELECT statements only"},
		{auth.RoleAnalyst, "SELECT * FROM audit_log", 403, "audit_log"},
		{auth.RoleAdmin, "SELECT count(*) FROM read_parquet('" + l.dir + "/warehouse/**/*.parquet')", 200, ""},
		{"support", "SELECT count(*) FROM orders", 200, ""},
		{"support", "SELECT count(*) FROM order_created", 200, ""},
		{"support", "SELECT count(*) FROM dlq", 403, `no grant on "dlq"`},
		{"support", "SELECT count(*) FROM orders WHERE event_id IN (SELECT event_id FROM events)", 403, `no grant on "events"`},
		// A CTE hides a view only within its scope.
		{"support", "SELECT * FROM (WITH dlq AS (SELECT 1 AS a) SELECT * FROM dlq) x, dlq", 403, `no grant on "dlq"`},
		{"support", "WITH a AS (SELECT * FROM dlq), dlq AS (SELECT 1) SELECT * FROM a", 403, `no grant on "dlq"`},
	} {
		r := h.as(c.role, c.sql)
		msg, _ := r.body["error"].(string)
		if r.status != c.status || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %s: %d %s; want %d with %q", c.role, c.sql, r.status, r.raw, c.status, c.want)
		}
	}

	// The dashboard sees only orders of at least 10, with user_id hashed
	// and the source gone, however it reaches them.
	for _, q := range []string{
		"SELECT order_id, user_id, source FROM orders",
		"WITH x AS (SELECT * FROM orders) SELECT order_id, user_id, source FROM x",
		"SELECT order_id, user_id, source FROM (SELECT * FROM order_created) WHERE order_id IN (SELECT order_id FROM orders)",
	} {
		r := h.as(auth.RoleDashboard, q)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", q, r.status, r.raw)
		}
		rows := r.rows()
		if len(rows) != 1 || rows[0][0] != "b" || rows[0][1] != sha256Hex("u-1") || rows[0][2] != nil {
			t.Fatalf("dashboard %s: %v", q, rows)
		}
		if cols := r.body["columns"].([]any); cols[1] != "user_id" {
			t.Fatalf("columns %v", cols)
		}
	}
	// The distinct-count macros (internal/hll) work for any role over the
	// views it may read, under its row filter: one register per order.
	for role, want := range map[string]string{"support": "2", auth.RoleDashboard: "1"} {
		for _, q := range []string{
			"SELECT hll_count(regs) FROM (SELECT [CAST(ascii(order_id) * 64 + 1 AS INTEGER)] AS regs FROM orders)",
			"SELECT hll_estimate(hll_merge([CAST(ascii(order_id) * 64 + 1 AS INTEGER)])) FROM orders",
		} {
			r := h.as(role, q)
			if rows := r.rows(); r.status != http.StatusOK || len(rows) != 1 || fmt.Sprint(rows[0][0]) != want {
				t.Errorf("%s: %s: %d %s; want %s", role, q, r.status, r.raw, want)
			}
		}
	}
	if r := h.as("support", "SELECT hll_count([CAST(1 AS INTEGER)]) FROM dlq"); r.status != http.StatusForbidden {
		t.Errorf("support counted over dlq: %d %s", r.status, r.raw)
	}

	// The analyst sees both, unmasked.
	if r := h.as(auth.RoleAnalyst, "SELECT user_id FROM orders ORDER BY order_id"); len(r.rows()) != 2 || r.rows()[0][0] != "u-1" {
		t.Fatalf("analyst: %s", r.raw)
	}
	// Denied requests named the role and the grant to add.
	r := h.as("support", "SELECT * FROM dlq")
	var body struct{ Error, Code string }
	_ = json.Unmarshal(r.raw, &body)
	if body.Code != "forbidden" || !strings.Contains(body.Error, `role "support"`) || !strings.Contains(body.Error, "auth.roles.support.grants") {
		t.Fatalf("denial: %s", r.raw)
	}
}

func sha256Hex(s string) string { return auth.Hash(s) }
