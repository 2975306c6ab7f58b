package auth

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/eventlake/eventlake/internal/sqldb"
)

func openTestStore(t *testing.T) *Store {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "tokens.db")+"?_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := OpenStore(context.Background(), db, sqldb.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	tok, err := s.Create(ctx, "ana", RoleAnalyst)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) < 40 || tok[:len(TokenPrefix)] != TokenPrefix {
		t.Fatalf("token %q", tok)
	}
	if _, err := s.Create(ctx, "ana", RoleAdmin); !errors.Is(err, ErrExists) {
		t.Fatalf("second live token of one name: %v", err)
	}
	if _, err := s.Create(ctx, "bad name", RoleAdmin); err == nil {
		t.Fatal("a name with a space was accepted")
	}
	// Only the hash is stored.
	var stored string
	if err := s.db.QueryRow(`SELECT hash FROM eventlake_tokens WHERE name = 'ana'`).Scan(&stored); err != nil || stored != Hash(tok) {
		t.Fatalf("stored %q, %v", stored, err)
	}
	a := NewAuthenticator(s, time.Hour, nil)
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if p, err := a.Check(ctx, tok); err != nil || p.Name != "ana" || p.Role != RoleAnalyst {
		t.Fatalf("check: %+v %v", p, err)
	}
	if _, err := a.CheckUser(ctx, "someone-else", tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("another user name with the token: %v", err)
	}
	if _, err := a.Check(ctx, tok+"x"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("wrong token: %v", err)
	}
	if err := s.Revoke(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, "ana"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
	// Cached until the next refresh, refused after it.
	if _, err := a.Check(ctx, tok); err != nil {
		t.Fatalf("before the refresh: %v", err)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Check(ctx, tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked token after a refresh: %v", err)
	}
	// The name is free again; the revoked token stays listed with --all.
	if _, err := s.Create(ctx, "ana", RoleDashboard); err != nil {
		t.Fatal(err)
	}
	live, _ := s.List(ctx, false)
	all, _ := s.List(ctx, true)
	if len(live) != 1 || len(all) != 2 || all[1].RevokedAt == nil {
		t.Fatalf("live %+v all %+v", live, all)
	}
}

func TestGrantPatterns(t *testing.T) {
	p, err := NewPolicy(Config{Roles: map[string]RoleConfig{
		"ops": {Grants: []Grant{{Objects: []string{"order_*"}, RowFilter: "region = 'eu'"}, {Objects: []string{"*"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ops, _ := p.Role("ops")
	if g := ops.Grant("order_created"); g == nil || g.RowFilter == "" {
		t.Fatalf("first matching grant: %+v", g)
	}
	if g := ops.Grant("events"); g == nil || g.Restricted() {
		t.Fatalf("wildcard: %+v", g)
	}
	for _, role := range []string{"ops", RoleAnalyst, RoleDashboard} {
		r, _ := p.Role(role)
		if r.Grant(AuditLog) != nil {
			t.Fatalf("%s reads the audit log through a wildcard", role)
		}
	}
	for _, role := range []string{RoleCompliance, RoleAdmin} {
		r, _ := p.Role(role)
		if r.Grant(AuditLog) == nil {
			t.Fatalf("%s cannot read the audit log", role)
		}
	}
	if _, err := NewPolicy(Config{Roles: map[string]RoleConfig{RoleAdmin: {}}}); err == nil {
		t.Fatal("admin's grants were configurable")
	}
	if _, err := NewPolicy(Config{Roles: map[string]RoleConfig{"x": {Grants: []Grant{{Objects: []string{"["}}}}}}); err == nil {
		t.Fatal("a bad pattern was accepted")
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := NewLimiter(Limits{RequestsPerSecond: 2, Burst: 2, MaxConcurrent: 1})
	l.now = func() time.Time { return now }
	rel, err := l.Acquire("a", true)
	if err != nil {
		t.Fatal(err)
	}
	var le *LimitError
	if _, err := l.Acquire("a", true); !errors.As(err, &le) {
		t.Fatalf("second concurrent request: %v", err)
	}
	if r, err := l.Acquire("b", true); err != nil {
		t.Fatalf("another token: %v", err)
	} else {
		r()
	}
	rel()
	rel() // releasing twice frees one slot only
	// The burst is spent (a's first request and its refused second do
	// not both count: a refusal costs nothing) ...
	if r, err := l.Acquire("a", false); err != nil {
		t.Fatalf("within the burst: %v", err)
	} else {
		r()
	}
	if _, err := l.Acquire("a", false); !errors.As(err, &le) || le.RetryAfter <= 0 {
		t.Fatalf("past the rate: %v", err)
	}
	now = now.Add(time.Second)
	if _, err := l.Acquire("a", false); err != nil {
		t.Fatalf("a second later: %v", err)
	}
}

func TestGateBasicAuth(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	tok, err := s.Create(ctx, "grafana", RoleDashboard)
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := NewPolicy(Config{})
	g := &Gate{Authn: NewAuthenticator(s, time.Hour, nil), Policy: policy}
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := From(r.Context())
		w.Write([]byte(p.Name + "/" + p.Role))
	}))
	for _, c := range []struct {
		user, pass string
		want       int
	}{{"grafana", tok, 200}, {"other", tok, 401}, {"grafana", "nope", 401}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/v1/windows", nil)
		req.SetBasicAuth(c.user, c.pass)
		h.ServeHTTP(rec, req)
		if rec.Code != c.want || (c.want == 200 && rec.Body.String() != "grafana/dashboard") {
			t.Fatalf("%s: %d %s", c.user, rec.Code, rec.Body)
		}
	}
}

// TestGateLimits: past a token's rate the gate answers 429 with
// Retry-After, and other tokens are not held back.
func TestGateLimits(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	a, err := s.Create(ctx, "a", RoleAnalyst)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Create(ctx, "b", RoleAnalyst)
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := NewPolicy(Config{})
	g := &Gate{Authn: NewAuthenticator(s, time.Hour, nil), Policy: policy, Limits: NewLimiter(Limits{RequestsPerSecond: 1, Burst: 2})}
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	call := func(tok string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/v1/sql", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(rec, req)
		return rec
	}
	for i := 0; i < 2; i++ {
		if rec := call(a); rec.Code != 200 {
			t.Fatalf("request %d within the burst: %d", i, rec.Code)
		}
	}
	rec := call(a)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("past the rate: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := call(b); rec.Code != 200 {
		t.Fatalf("another token: %d", rec.Code)
	}
}
