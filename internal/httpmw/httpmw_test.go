package httpmw

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRequestID(t *testing.T) {
	var seen string
	h := RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = IDFrom(r.Context()) }))
	for _, tc := range []struct {
		given string
		kept  bool
	}{
		{"", false},
		{"abc-123_x.y:z", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"bad id", false},
		{"bad\nid", false},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.given != "" {
			req.Header.Set(RequestIDHeader, tc.given)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get(RequestIDHeader)
		if got == "" || got != seen {
			t.Fatalf("given %q: answer id %q, context id %q", tc.given, got, seen)
		}
		if (got == tc.given) != tc.kept {
			t.Fatalf("given %q: answer id %q, kept=%v", tc.given, got, tc.kept)
		}
	}
	// Fresh ids differ.
	a, b := httptest.NewRecorder(), httptest.NewRecorder()
	h.ServeHTTP(a, httptest.NewRequest(http.MethodGet, "/", nil))
	h.ServeHTTP(b, httptest.NewRequest(http.MethodGet, "/", nil))
	if a.Header().Get(RequestIDHeader) == b.Header().Get(RequestIDHeader) {
		t.Fatal("two requests got the same id")
	}
}

func TestCORS(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	do := func(origins []string, method, origin string, preflight bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/v1/sql", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if preflight {
			req.Header.Set("Access-Control-Request-Method", "POST")
		}
		rec := httptest.NewRecorder()
		CORS(origins, ok).ServeHTTP(rec, req)
		return rec
	}
	// Default: no CORS headers, preflights refused, plain requests pass.
	if r := do(nil, http.MethodPost, "https://evil.example", false); r.Code != http.StatusTeapot || r.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("default, cross-origin POST: %d %v", r.Code, r.Header())
	}
	if r := do(nil, http.MethodOptions, "https://evil.example", true); r.Code != http.StatusForbidden {
		t.Fatalf("default, preflight: %d", r.Code)
	}
	if r := do(nil, http.MethodGet, "", false); r.Code != http.StatusTeapot {
		t.Fatalf("same-origin: %d", r.Code)
	}
	// An allowed origin gets the headers; another does not.
	allowed := []string{"https://dash.example"}
	if r := do(allowed, http.MethodOptions, "https://dash.example", true); r.Code != http.StatusNoContent ||
		r.Header().Get("Access-Control-Allow-Origin") != "https://dash.example" || !strings.Contains(r.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("allowed preflight: %d %v", r.Code, r.Header())
	}
	if r := do(allowed, http.MethodGet, "https://dash.example", false); r.Code != http.StatusTeapot || r.Header().Get("Access-Control-Allow-Origin") != "https://dash.example" {
		t.Fatalf("allowed GET: %d %v", r.Code, r.Header())
	}
	if r := do(allowed, http.MethodOptions, "https://other.example", true); r.Code != http.StatusForbidden || r.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin preflight: %d %v", r.Code, r.Header())
	}
	if r := do([]string{"*"}, http.MethodGet, "https://any.example", false); r.Header().Get("Access-Control-Allow-Origin") != "https://any.example" {
		t.Fatalf("wildcard: %v", r.Header())
	}
}
