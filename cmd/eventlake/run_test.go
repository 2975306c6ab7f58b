package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/config"
	"github.com/eventlake/eventlake/internal/health"
	"github.com/eventlake/eventlake/lake"
)

// TestExampleConfig keeps infra/config/eventlake.example.yaml in step with
// the code: it must parse strictly and validate.
func TestExampleConfig(t *testing.T) {
	var cfg Config
	if err := config.LoadFile(filepath.Join("..", "..", "infra", "config", "eventlake.example.yaml"), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Kafka.Defaults()
	cfg.Catalog.Defaults(cfg.DataDir)
	cfg.Ingest.Defaults()
	cfg.Query.Defaults()
	cfg.Broker.Defaults()
	cfg.Streamer.Defaults()
	cfg.Compactor.Defaults()
	cfg.Tracing.Defaults()
	if err := validateAll(cfg.Kafka.Validate(), cfg.Catalog.Validate(), cfg.Ingest.Validate(), cfg.Query.Validate(),
		cfg.Broker.Validate(), cfg.Streamer.Validate(), cfg.Compactor.Validate(), cfg.Tracing.Validate()); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Ingest.Topics) != 2 || cfg.Ingest.FlushBytes != 134217728 {
		t.Fatalf("example not read as written: %+v", cfg.Ingest)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{nil, nil, "a subcommand is required"},
		{[]string{"frobnicate"}, nil, `unknown subcommand "frobnicate"`},
		{[]string{"ingest", "--nope"}, nil, "flag provided but not defined"},
		{[]string{"ingest", "--brokers", "nohostport"}, []string{"EVENTLAKE_DATA_DIR=" + t.TempDir()}, "not host:port"},
		{[]string{"ingest"}, []string{"EVENTLAKE_INGEST_FLUSH_INTERVAL=soon"}, "EVENTLAKE_INGEST_FLUSH_INTERVAL"},
		{[]string{"ingest"}, []string{"EVENTLAKE_TYPO=1"}, "EVENTLAKE_TYPO: no such setting"},
		{[]string{"ingest"}, []string{"EVENTLAKE_TRACING_ENDPOINT=collector:4318"}, "is not an http(s) URL"},
		{[]string{"ingest"}, []string{"EVENTLAKE_TRACING_ENDPOINT=http://127.0.0.1:4318", "EVENTLAKE_TRACING_SAMPLE_RATE=2"}, "between 0 and 1"},
		{[]string{"produce", "--late-fraction", "2"}, nil, "fractions at most 1"},
		{[]string{"dev", "--kafka-listen", "0.0.0.0:9092", "--data-dir", t.TempDir()}, nil, "name a concrete host"},
	} {
		var out, errb bytes.Buffer
		err := Run(context.Background(), tc.args, &out, &errb, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%v, env %v) = %v, want an error containing %q", tc.args, tc.env, err, tc.want)
		}
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"help"}, &out, &out, nil); err != nil || !strings.Contains(out.String(), "ingest") {
		t.Errorf("help: %v %q", err, out.String())
	}
	if err := Run(context.Background(), []string{"ingest", "-h"}, &out, &out, nil); err != nil {
		t.Errorf("ingest -h: %v", err)
	}
	var ue usageError
	if err := Run(context.Background(), []string{"x"}, &out, &out, nil); !errors.As(err, &ue) {
		t.Errorf("unknown subcommand is not a usage error: %v", err)
	}
}

// TestPprofOnlyWhenEnabled: /debug/pprof/ is served only with
// http.pprof, and then to admins only.
func TestPprofOnlyWhenEnabled(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	cfg := &Config{}
	cfg.Catalog.Defaults(t.TempDir())
	cat, err := lake.Open(ctx, cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	acc, err := openAccess(ctx, cfg, cat, slog.New(slog.DiscardHandler), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer acc.close()
	admin, err := acc.store.Create(ctx, "root", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	analyst, err := acc.store.Create(ctx, "ana", auth.RoleAnalyst)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		on    bool
		token string
		want  int
	}{
		{false, admin, http.StatusNotFound},
		{true, "", http.StatusUnauthorized},
		{true, analyst, http.StatusForbidden},
		{true, admin, http.StatusOK},
	} {
		h := opsMux(HTTPConfig{Pprof: c.on}, acc, reg, health.New(nil))
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/debug/pprof/cmdline", nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Fatalf("http.pprof %v, token %.8s: GET /debug/pprof/cmdline answered %d, want %d", c.on, c.token, rec.Code, c.want)
		}
	}
	// Health and metrics stay open.
	h := opsMux(HTTPConfig{}, acc, reg, health.New(nil))
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s without a token: %d", path, rec.Code)
		}
	}
}

// TestAuthDisabledOnlyOnLoopback: auth.disabled refuses to start on a
// listener others can reach, and says why.
func TestAuthDisabledOnlyOnLoopback(t *testing.T) {
	cfg := &Config{Auth: auth.Config{Disabled: true}}
	for addr, ok := range map[string]bool{"127.0.0.1:8080": true, "[::1]:80": true, "localhost:1": true, ":8080": false, "0.0.0.0:8080": false, "10.0.0.1:5433": false} {
		_, err := openAccess(context.Background(), cfg, nil, slog.New(slog.DiscardHandler), addr)
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "loopback")) {
			t.Errorf("%s: %v", addr, err)
		}
	}
}
