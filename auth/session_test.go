package auth

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGateSessions: ?token= on the page opens a session whose cookie is
// an opaque id (HttpOnly, SameSite=Strict, Secure over TLS) and leaves the
// address; the cookie authenticates GETs of the session paths only, ends
// with the token's revocation and with its expiry; a refused token sets
// no cookie.
func TestGateSessions(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	tok, err := s.Create(ctx, "browser", RoleDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	authn := NewAuthenticator(s, time.Hour, nil)
	policy, _ := NewPolicy(Config{})
	g := &Gate{
		Authn: authn, Policy: policy, Sessions: NewSessions(time.Hour, 10, clock),
		SessionPaths: func(r *http.Request) bool { return r.URL.Path == "/" || r.URL.Path == "/v1/status" },
		Page:         func(r *http.Request) bool { return r.URL.Path == "/" },
	}
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := From(r.Context())
		if !ok {
			w.Write([]byte("anonymous page"))
			return
		}
		w.Write([]byte(p.Name))
	}))
	serve := func(method, target string, cookie *http.Cookie, secure bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		if secure {
			req.TLS = &tls.ConnectionState{}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := serve(http.MethodGet, "/?view=compact&token="+tok, nil, false)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/?view=compact" {
		t.Fatalf("login: %d, Location %q", rec.Code, rec.Header().Get("Location"))
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != SessionCookie {
		t.Fatalf("login cookies: %v", cookies)
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || strings.Contains(c.Value, tok) || c.Value == Hash(tok) {
		t.Fatalf("session cookie %+v", c)
	}
	if rec := serve(http.MethodGet, "/?token="+tok, nil, true); !rec.Result().Cookies()[0].Secure {
		t.Fatal("the session cookie of a TLS login is not Secure")
	}

	for _, tc := range []struct {
		method, path string
		cookie       *http.Cookie
		code         int
		body         string
	}{
		{http.MethodGet, "/", c, 200, "browser"},
		{http.MethodGet, "/v1/status", c, 200, "browser"},
		{http.MethodHead, "/v1/status", c, 200, ""},
		{http.MethodPost, "/v1/status", c, 401, ""},                                            // reads only
		{http.MethodGet, "/v1/windows", c, 401, ""},                                            // not a page endpoint
		{http.MethodGet, "/", nil, 200, "anonymous page"},                                      // the login hint
		{http.MethodGet, "/v1/status", &http.Cookie{Name: SessionCookie, Value: tok}, 401, ""}, // the token is not a session
	} {
		rec := serve(tc.method, tc.path, tc.cookie, false)
		if rec.Code != tc.code || (tc.body != "" && rec.Body.String() != tc.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, rec.Code, rec.Body, tc.code, tc.body)
		}
	}

	// A refused token: back to the page saying so, no cookie.
	rec = serve(http.MethodGet, "/?token=elk_wrong", nil, false)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/?"+LoginFailed+"=1" || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("refused login: %d, Location %q, cookies %v", rec.Code, rec.Header().Get("Location"), rec.Result().Cookies())
	}

	// Expiry.
	mu.Lock()
	now = now.Add(time.Hour + time.Second)
	mu.Unlock()
	if rec := serve(http.MethodGet, "/v1/status", c, false); rec.Code != http.StatusUnauthorized {
		t.Fatalf("an expired session: %d", rec.Code)
	}

	// Revocation ends a live session.
	rec = serve(http.MethodGet, "/?token="+tok, nil, false)
	c2 := rec.Result().Cookies()[0]
	if err := s.Revoke(ctx, "browser"); err != nil {
		t.Fatal(err)
	}
	if err := authn.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if rec := serve(http.MethodGet, "/v1/status", c2, false); rec.Code != http.StatusUnauthorized {
		t.Fatalf("the session of a revoked token: %d", rec.Code)
	}
}

// TestSessionsBounded: past max sessions the one that expires first goes.
func TestSessionsBounded(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := NewSessions(time.Hour, 2, func() time.Time { return now })
	first, _ := s.create("h1")
	now = now.Add(time.Minute)
	second, _ := s.create("h2")
	third, _ := s.create("h3")
	if _, ok := s.lookup(first); ok {
		t.Error("the oldest session survived past the bound")
	}
	for _, id := range []string{second, third} {
		if _, ok := s.lookup(id); !ok {
			t.Errorf("session %s was dropped", id)
		}
	}
}
