package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Anonymous is the principal of every request when authentication is
// disabled.
var Anonymous = Principal{Name: "anonymous", Role: RoleAdmin}

// Gate authenticates HTTP requests and applies the per-token limits.
type Gate struct {
	// Authn checks tokens; nil when authentication is disabled (every
	// request is Anonymous).
	Authn  *Authenticator
	Policy *Policy
	Limits *Limiter
	// Public reports paths served without a token (health, metrics).
	Public func(r *http.Request) bool
	// Uncounted reports long-lived requests (streams) that take no
	// concurrency slot.
	Uncounted func(r *http.Request) bool
	// Refused, if set, is told of every request refused here (audit).
	Refused func(r *http.Request, p Principal, status int, msg string)

	// Sessions, if set, let a browser log in once (GET <page>?token=...)
	// and then send a session cookie instead of the bearer header, on
	// the GET requests SessionPaths accepts (the live page's endpoints).
	// Only reads take the cookie: a write (POST /v1/sql) still needs the
	// header, so another site cannot make a logged-in browser act; the
	// cookie is also SameSite=Strict, and CORS answers (httpmw.CORS)
	// never allow credentials, so another origin cannot read what a
	// request with the cookie returns.
	Sessions     *Sessions
	SessionPaths func(r *http.Request) bool
	// Page reports the paths of the live page: served without
	// credentials too (it then shows how to log in), with the principal
	// in the context when the request has one, and where ?token= logs in.
	Page func(r *http.Request) bool
}

// LoginFailed is the query parameter the page is redirected with after a
// ?token= that is not a live token.
const LoginFailed = "login_failed"

// Wrap serves next behind the gate: the principal is in the request's
// context (From).
func (g *Gate) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.Public != nil && g.Public(r) {
			next.ServeHTTP(w, r)
			return
		}
		page := g.Page != nil && g.Page(r)
		if page && r.Method == http.MethodGet && r.URL.Query().Has("token") {
			g.login(w, r)
			return
		}
		p := Anonymous
		if g.Authn != nil {
			var err error
			p, err = g.authenticate(r)
			if page && errors.Is(err, ErrUnauthenticated) {
				next.ServeHTTP(w, r)
				return
			}
			if err != nil {
				status, msg := http.StatusUnauthorized, "a valid token is required: send \"Authorization: Bearer <token>\" (create one with `eventlake token create`)"
				if errors.Is(err, ErrUnavailable) {
					status, msg = http.StatusServiceUnavailable, "the token store is unavailable: "+err.Error()
					w.Header().Set("Retry-After", "1")
				} else {
					w.Header().Set("WWW-Authenticate", `Bearer realm="eventlake"`)
				}
				p.Client = r.RemoteAddr
				g.refuse(w, r, p, status, "unauthenticated", msg)
				return
			}
		}
		p.Client = r.RemoteAddr
		counted := g.Uncounted == nil || !g.Uncounted(r)
		release, err := g.Limits.Acquire(p.Name, counted)
		if err != nil {
			var le *LimitError
			if errors.As(err, &le) {
				w.Header().Set("Retry-After", strconv.Itoa(int((le.RetryAfter+time.Second-1)/time.Second)))
			}
			g.refuse(w, r, p, http.StatusTooManyRequests, "rate_limited", err.Error())
			return
		}
		defer release()
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// authenticate reads a bearer token, or HTTP basic credentials whose user
// is the token's name and password the token (what Confluent clients and
// Grafana send).
func (g *Gate) authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return g.Authn.Check(r.Context(), strings.TrimSpace(tok))
	}
	if user, pass, ok := r.BasicAuth(); ok {
		return g.Authn.CheckUser(r.Context(), user, pass)
	}
	if h == "" && g.Sessions != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		g.SessionPaths != nil && g.SessionPaths(r) {
		if c, err := r.Cookie(SessionCookie); err == nil {
			if th, ok := g.Sessions.lookup(c.Value); ok {
				return g.Authn.checkHash(r.Context(), th)
			}
		}
	}
	return Principal{}, ErrUnauthenticated
}

// login answers GET <page>?token=...: a live token opens a session (its
// cookie is HttpOnly, SameSite=Strict, and Secure over TLS), and the
// browser is sent back to the page without the token in its address bar
// or history. A token that is not live leads back to the page with
// ?login_failed, which says so.
func (g *Gate) login(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tok := strings.TrimSpace(q.Get("token"))
	q.Del("token")
	q.Del(LoginFailed)
	if g.Authn != nil && g.Sessions != nil {
		_, err := g.Authn.Check(r.Context(), tok)
		switch {
		case errors.Is(err, ErrUnavailable):
			w.Header().Set("Retry-After", "1")
			g.refuse(w, r, Principal{Client: r.RemoteAddr}, http.StatusServiceUnavailable, "unauthenticated", "the token store is unavailable: "+err.Error())
			return
		case err != nil:
			if g.Refused != nil {
				g.Refused(r, Principal{Client: r.RemoteAddr}, http.StatusUnauthorized, "page login with a token that is not live")
			}
			q.Set(LoginFailed, "1")
		default:
			id, expires := g.Sessions.create(Hash(tok))
			http.SetCookie(w, &http.Cookie{
				Name: SessionCookie, Value: id, Path: "/", Expires: expires,
				HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
			})
		}
	}
	u := *r.URL
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
}

func (g *Gate) refuse(w http.ResponseWriter, r *http.Request, p Principal, status int, code, msg string) {
	if g.Refused != nil {
		g.Refused(r, p, status, msg)
	}
	WriteError(w, status, code, msg)
}

// WriteError writes the JSON error body every eventlake API answers with.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}{msg, code})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Require serves next only to principals whose role passes ok; others get
// 403 naming what is missing.
func (g *Gate) Require(ok func(*Role) bool, missing string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := From(r.Context())
		role, found := g.Policy.Role(p.Role)
		if !found || !ok(role) {
			g.refuse(w, r, p, http.StatusForbidden, "forbidden",
				"role "+strconv.Quote(p.Role)+" of token "+strconv.Quote(p.Name)+" lacks "+missing)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// IsAdmin is the Require check of admin-only endpoints.
func IsAdmin(r *Role) bool { return r.Admin }

// CanManageSchemas is the Require check of schema registry writes.
func CanManageSchemas(r *Role) bool { return r.Admin || r.ManageSchemas }
