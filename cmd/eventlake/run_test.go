package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
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
	if err := config.LoadFile(filepath.Join("..", "..", "infra", "config", "eventlake.example.yaml"), &cfg, nil); err != nil {
		t.Fatal(err)
	}
	cfg.Kafka.Defaults()
	cfg.Catalog.Defaults(cfg.DataDir)
	cfg.Ingest.Defaults()
	cfg.Query.Defaults()
	cfg.Broker.Defaults()
	cfg.Streamer.Defaults()
	cfg.Stream.Defaults()
	cfg.Compactor.Defaults()
	cfg.Tracing.Defaults()
	if err := validateAll(cfg.Kafka.Validate(), cfg.Catalog.Validate(), cfg.Ingest.Validate(), cfg.Query.Validate(),
		cfg.Broker.Validate(), cfg.Streamer.Validate(), cfg.Stream.Validate(), cfg.Compactor.Validate(), cfg.Tracing.Validate()); err != nil {
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
		{[]string{"query", "--data-dir", t.TempDir()}, []string{"EVENTLAKE_STREAM_COALESCE=-1s"}, "stream.coalesce -1s is negative"},
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

// TestHelp: every subcommand answers --help (and `help CMD`, the same
// text) on stdout with its synopsis, a description and its flags; those
// with a help text show examples; --version works like version.
func TestHelp(t *testing.T) {
	for _, c := range commands() {
		var out, errb bytes.Buffer
		if err := Run(context.Background(), []string{c.name, "--help"}, &out, &errb, nil); err != nil {
			t.Fatalf("%s --help: %v", c.name, err)
		}
		if errb.Len() > 0 || !strings.Contains(out.String(), "usage: eventlake "+c.name) || !strings.Contains(out.String(), "flags:") {
			t.Errorf("%s --help printed stdout %q, stderr %q", c.name, out.String(), errb.String())
		}
		if _, ok := helpTexts[c.name]; ok && !strings.Contains(out.String(), "examples:\n  eventlake "+c.name) {
			t.Errorf("%s --help has no examples: %q", c.name, out.String())
		}
		var viaHelp bytes.Buffer
		if err := Run(context.Background(), []string{"help", c.name}, &viaHelp, &errb, nil); err != nil || viaHelp.String() != out.String() {
			t.Errorf("help %s: %v, printed %q, want what %s --help prints", c.name, err, viaHelp.String(), c.name)
		}
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"dev", "--help"}, &out, &out, nil); err != nil ||
		!strings.Contains(out.String(), "-kafka-listen") || !strings.Contains(out.String(), "embedded Kafka-protocol broker") {
		t.Errorf("dev --help: %v %q", err, out.String())
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out.Reset()
		if err := Run(context.Background(), args, &out, &out, nil); err != nil || !strings.HasPrefix(out.String(), "eventlake ") {
			t.Errorf("%v: %v %q", args, err, out.String())
		}
	}
}

// TestWrongFlagOneError: a wrong flag is one error (nothing printed by the
// flag package) with a hint naming the subcommand's help.
func TestWrongFlagOneError(t *testing.T) {
	for _, args := range [][]string{{"dev", "--nope"}, {"compact", "once", "--bogus"}, {"token", "list", "-x"}, {"topic", "create", "t", "--nope"}} {
		var out, errb bytes.Buffer
		err := Run(context.Background(), args, &out, &errb, nil)
		var h hinted
		var ue usageError
		if !errors.As(err, &h) || !errors.As(err, &ue) || h.hint != "run 'eventlake "+args[0]+" --help' for its flags and examples" {
			t.Errorf("%v: %v (%#v), want a usage error with a hint", args, err, err)
		}
		if !strings.Contains(err.Error(), "flag provided but not defined") || out.Len()+errb.Len() > 0 {
			t.Errorf("%v: error %q; printed %q %q besides", args, err, out.String(), errb.String())
		}
	}
}

// TestPortTakenNamesItsFlag: each listener's "address in use" error names
// the flag that moves it.
func TestPortTakenNamesItsFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	free := "127.0.0.1:0"
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"broker", "--listen", taken}, "--listen"},
		{[]string{"dev", "--no-demo", "--kafka-listen", taken, "--http", free, "--pg-listen", free}, "--kafka-listen"},
		{[]string{"dev", "--no-demo", "--kafka-listen", free, "--http", taken, "--pg-listen", free}, "--http"},
		{[]string{"dev", "--no-demo", "--kafka-listen", free, "--http", free, "--pg-listen", taken}, "--pg-listen"},
	} {
		args := append(c.args, "--data-dir", t.TempDir(), "--log-level", "error")
		var out bytes.Buffer
		err := Run(context.Background(), args, &out, &out, nil)
		if err == nil || !strings.Contains(err.Error(), "choose another address with "+c.flag+";") {
			t.Errorf("%v: %v, want the error to name %s", c.args, err, c.flag)
		}
	}
}

// TestNoLakeRefused: the commands that read or maintain a lake refuse a
// data directory that holds none, say so, and create nothing there.
func TestNoLakeRefused(t *testing.T) {
	for _, args := range [][]string{
		{"backfill", "--from", "2026-11-26T00:00:00Z", "--to", "2026-11-27T00:00:00Z"},
		{"compact", "once", "--dry-run"},
		{"compact", "--http", "off"},
		{"erase", "--user-id", "u-1", "--requested-by", "dpo"},
		{"query", "--no-hot", "--http", "127.0.0.1:0"},
		{"token", "list"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		var out bytes.Buffer
		err := Run(context.Background(), append(args, "--data-dir", dir), &out, &out, nil)
		if !errors.Is(err, lake.ErrNoLake) || !strings.Contains(err.Error(), "eventlake dev") {
			t.Errorf("%v on an empty directory: %v, want lake.ErrNoLake and what to do", args, err)
		}
		if _, serr := os.Stat(filepath.Join(dir, "catalog.db")); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%v created a catalog in %s", args, dir)
		}
	}
	// Told to, token creates the lake it keeps its tokens in.
	dir := t.TempDir()
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"token", "create", "--name", "a", "--role", "admin", "--create-lake", "--data-dir", dir}, &out, &out, nil); err != nil {
		t.Fatalf("token create --create-lake: %v", err)
	}
	if err := Run(context.Background(), []string{"token", "list", "--data-dir", dir}, &out, &out, nil); err != nil {
		t.Fatalf("token list after --create-lake: %v", err)
	}
}
