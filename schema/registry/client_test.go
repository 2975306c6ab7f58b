package registry_test

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/eventlake/eventlake/schema/registry"
)

// authOnly lets through requests with the basic-auth credentials or the
// bearer token, and answers others 401 as registries do.
func authOnly(user, pass, token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, basic := r.BasicAuth()
		okBasic := basic && subtle.ConstantTimeCompare([]byte(u), []byte(user)) == 1 && subtle.ConstantTimeCompare([]byte(p), []byte(pass)) == 1
		okToken := token != "" && r.Header.Get("Authorization") == "Bearer "+token
		if !okBasic && !okToken {
			w.Header().Set("Content-Type", registry.ContentType)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error_code":401,"message":"Unauthorized"}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withoutListAll answers GET /schemas 404, as registries before Confluent
// 7 do.
func withoutListAll(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/schemas" {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// TestClientReadsLikeTheStore: the external Client, against the handler
// behind authentication, returns the same Versions and ByID as the Store
// it serves, with basic auth and with a bearer token, and with or without
// GET /schemas; wrong credentials fail.
func TestClientReadsLikeTheStore(t *testing.T) {
	ctx := context.Background()
	store := sqliteStore(t)
	fill(t, store)
	want := must[[]registry.Version](t)(store.Versions(ctx))
	all := must[[]registry.Version](t)(store.ListVersions(ctx, true))
	if len(want) == 0 || len(all) == len(want) {
		t.Fatalf("the fixture needs live and soft-deleted versions: %d live of %d", len(want), len(all))
	}
	handler := registry.NewHandler(store, testLogger(t))

	for _, tc := range []struct {
		name    string
		handler http.Handler
		cfg     registry.Config
	}{
		{"basic auth", authOnly("reader", "s3cret", "", handler), registry.Config{Username: "reader", Password: "s3cret"}},
		{"bearer token", authOnly("", "", "tok-123", handler), registry.Config{BearerToken: "tok-123"}},
		{"without GET /schemas", authOnly("reader", "s3cret", "", withoutListAll(handler)), registry.Config{Username: "reader", Password: "s3cret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			cfg := tc.cfg
			cfg.URL = srv.URL
			cl, err := registry.NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var src registry.Source = cl
			got := must[[]registry.Version](t)(src.Versions(ctx))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("client Versions\n%+v\nstore Versions\n%+v", got, want)
			}
			for _, v := range all {
				g, err := src.ByID(ctx, v.ID)
				if err != nil {
					t.Fatal(err)
				}
				s := must[registry.Version](t)(store.ByID(ctx, v.ID))
				if g != s {
					t.Fatalf("ByID(%d): client %+v, store %+v", v.ID, g, s)
				}
			}
			if _, err := src.ByID(ctx, 999); !errors.Is(err, registry.ErrSchemaNotFound) {
				t.Fatalf("ByID of an unknown id: %v", err)
			}

			bad := cfg
			if bad.BearerToken != "" {
				bad.BearerToken = "wrong"
			} else {
				bad.Password = "wrong"
			}
			badCl, err := registry.NewClient(bad)
			if err != nil {
				t.Fatal(err)
			}
			var re *sr.ResponseError
			if _, err := badCl.Versions(ctx); !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong credentials: %v", err)
			}
		})
	}
	// Soft-deleted everywhere: ByID still answers, marked deleted.
	gone := all[0]
	for _, v := range all {
		if v.Subject == "gone" {
			gone = v
		}
	}
	if got := must[registry.Version](t)(store.ByID(ctx, gone.ID)); !got.Deleted || got.Subject != "gone" {
		t.Fatalf("ByID of a soft-deleted schema = %+v", got)
	}
}

// TestClientTimeout: a registry that does not answer fails a request after
// Timeout instead of hanging.
func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	cl, err := registry.NewClient(registry.Config{URL: srv.URL, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := cl.Versions(context.Background()); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a registry that does not answer gave no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request was not bounded by Timeout")
	}
}

// TestConfig checks defaults, validation and that secrets stay out of logs.
func TestConfig(t *testing.T) {
	var c registry.Config
	c.Defaults()
	if c.PollInterval != time.Second || c.Timeout != 10*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the built-in registry: %v", err)
	}
	for _, tc := range []struct {
		cfg  registry.Config
		want string
	}{
		{registry.Config{URL: "ftp://x"}, "schema_registry.url"},
		{registry.Config{URL: "http://u:hunter2@x"}, "carries credentials"},
		{registry.Config{URL: "http://x", Password: "p"}, "without schema_registry.username"},
		{registry.Config{URL: "http://x", Username: "u", BearerToken: "t"}, "not both"},
		{registry.Config{Username: "u"}, "url is empty"},
		{registry.Config{URL: "http://x", Timeout: -1}, "schema_registry.timeout"},
	} {
		cfg := tc.cfg
		cfg.Defaults()
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: want an error about %q, got %v", tc.cfg, tc.want, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the password: %v", err)
		}
	}

	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	secret := registry.Config{URL: "https://registry:8081", Username: "reader", Password: "hunter2", BearerToken: "tok-hunter3"}
	log.Info("config", "schema_registry", secret)
	out := buf.String() + secret.String()
	if strings.Contains(out, "hunter") || !strings.Contains(out, "basic_auth=true") {
		t.Fatalf("log output %q", out)
	}
	if _, err := registry.NewClient(registry.Config{}); err == nil {
		t.Fatal("a client without url")
	}
}
