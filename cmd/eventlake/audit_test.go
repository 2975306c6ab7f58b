package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// sentWriter fails the test when anything is sent before logged is set.
type sentWriter struct {
	*httptest.ResponseRecorder
	t      *testing.T
	logged *bool
}

func (s sentWriter) WriteHeader(code int) {
	if !*s.logged {
		s.t.Error("status sent before the record was on disk")
	}
	s.ResponseRecorder.WriteHeader(code)
}

func (s sentWriter) Write(b []byte) (int, error) {
	if !*s.logged {
		s.t.Error("body sent before the record was on disk")
	}
	return s.ResponseRecorder.Write(b)
}

// TestHeldUntilLogged: an answer computed while its audit record is
// written goes out only once the record is on disk; when the record
// fails, the refusal goes out instead of it, with the headers set before
// the handler and none of the handler's.
func TestHeldUntilLogged(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"x"`)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"rows":[]}`))
		http.NewResponseController(w).Flush()
	})
	for _, c := range []struct {
		name string
		err  error
		h    http.Handler
	}{
		{"logged", nil, handler},
		{"failed", errors.New("disk full"), handler},
		{"no body", nil, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})},
		{"no body, failed", errors.New("disk full"), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("X-Request-Id", "r1")
			logged, waits := false, 0
			w := sentWriter{ResponseRecorder: rec, t: t, logged: &logged}
			held := &heldUntilLogged{w: w, before: w.Header().Clone(), wait: func() error {
				logged = true
				waits++
				return c.err
			}}
			c.h.ServeHTTP(held, httptest.NewRequest(http.MethodGet, "/v1/models/m", nil))
			held.logged()
			if waits != 1 {
				t.Errorf("waited %d times for the record", waits)
			}
			if rec.Header().Get("X-Request-Id") != "r1" {
				t.Error("a header set before the handler was lost")
			}
			body := rec.Body.String()
			switch {
			case c.err != nil:
				if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, "audit_unavailable") ||
					strings.Contains(body, "rows") || rec.Header().Get("ETag") != "" {
					t.Errorf("refused as %d %v: %s", rec.Code, rec.Header(), body)
				}
			case c.name == "logged":
				if rec.Code != http.StatusOK || body != `{"rows":[]}` || rec.Header().Get("ETag") != `"x"` {
					t.Errorf("answered %d %v: %s", rec.Code, rec.Header(), body)
				}
			}
		})
	}
}
