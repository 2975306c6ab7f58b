package registry

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// TestClientPages: Versions pages through GET /schemas, also when the
// registry ignores offset and limit.
func TestClientPages(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "c.db")+"?_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := Open(ctx, db, DialectSQLite)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		if _, _, err := store.Register(ctx, "s"+strconv.Itoa(i%3), TypeJSON, `{"type":"object","properties":{"f`+strconv.Itoa(i)+`":{}}}`); err != nil {
			t.Fatal(err)
		}
	}
	want, err := store.Versions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	handler := NewHandler(store, nil)
	var requests int
	for _, tc := range []struct {
		name      string
		h         http.Handler
		wantPages int
	}{
		{"paged", handler, 4}, // three full pages of 2, then one of 1
		{"offset and limit ignored", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.URL.RawQuery = ""
			handler.ServeHTTP(w, r)
		}), 2}, // everything, then nothing new
	} {
		t.Run(tc.name, func(t *testing.T) {
			requests = 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests++
				tc.h.ServeHTTP(w, r)
			}))
			defer srv.Close()
			c, err := NewClient(Config{URL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			c.pageSize = 2
			got, err := c.Versions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got\n%+v\nwant\n%+v", got, want)
			}
			if requests != tc.wantPages {
				t.Fatalf("%d requests, want %d", requests, tc.wantPages)
			}
		})
	}
}
