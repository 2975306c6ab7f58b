package route

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestMerge(t *testing.T) {
	h := func(s string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, s) })
	}
	base := []Route{{Pattern: "GET /a", Handler: h("base a")}, {Pattern: "GET /b", Handler: h("base b")}}
	got := Merge(base, Route{Pattern: "GET /b", Handler: h("more b")}, Route{Pattern: "postgres"}, Route{Pattern: "GET /c", Handler: h("more c")})
	var patterns []string
	for _, r := range got {
		patterns = append(patterns, r.Pattern)
	}
	if fmt.Sprint(patterns) != "[GET /a GET /b postgres GET /c]" {
		t.Fatalf("patterns %v", patterns)
	}
	mux := http.NewServeMux()
	Mux(mux, got) // the route without a handler is not registered
	for path, want := range map[string]string{"/a": "base a", "/b": "more b", "/c": "more c"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Body.String() != want {
			t.Errorf("GET %s: %q, want %q", path, rec.Body.String(), want)
		}
	}
}
