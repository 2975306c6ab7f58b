// Package httpmw holds the HTTP middleware every eventlake listener shares:
// a request id on every answer and cross-origin (CORS) rules.
package httpmw

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
)

// RequestIDHeader carries a request's id, in the request (a caller's own
// id, kept when it is well-formed) and in every answer.
const RequestIDHeader = "X-Request-Id"

type ctxKey struct{}

// RequestID gives every request an id: the caller's X-Request-Id when it
// is 1-128 characters of [A-Za-z0-9._:-], else a new random one. The id is
// set on the answer before the handler runs and is in the request's
// context (IDFrom) for its log lines.
func RequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validID(id) {
			id = newID()
		}
		w.Header().Set(RequestIDHeader, id)
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

// IDFrom returns the request id in ctx ("" outside a request).
func IDFrom(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:-", c) >= 0) {
			return false
		}
	}
	return true
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CORS lets browser pages of the allowed origins (scheme://host[:port], or
// "*" for any) call the API. With no origins (the default) no answer
// carries CORS headers, so a browser shows a cross-site page nothing, and
// a preflight request is refused with 403.
func CORS(origins []string, h http.Handler) http.Handler {
	allowed := func(o string) bool { return o != "" && (slices.Contains(origins, "*") || slices.Contains(origins, o)) }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if origin == "" {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		if !allowed(origin) {
			if preflight {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"error":"cross-origin requests from this origin are not allowed (http.cors_origins)","code":"origin_not_allowed"}` + "\n"))
				return
			}
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Expose-Headers", RequestIDHeader+", Retry-After")
		if preflight {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, "+RequestIDHeader)
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// StatusWriter remembers the status code a handler answered with (200
// when it wrote without one); it flushes (server-sent events) and unwraps
// like the writer it wraps. The one place metrics and spans learn an
// answer's outcome.
type StatusWriter struct {
	http.ResponseWriter
	status int
}

// NewStatusWriter wraps w.
func NewStatusWriter(w http.ResponseWriter) *StatusWriter { return &StatusWriter{ResponseWriter: w} }

// Status is the status code answered: 200 when the handler wrote
// nothing or wrote without one.
func (w *StatusWriter) Status() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (w *StatusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *StatusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
