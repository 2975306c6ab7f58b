package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventlake/eventlake/internal/config"
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
	if err := validateAll(cfg.Kafka.Validate(), cfg.Catalog.Validate(), cfg.Ingest.Validate(), cfg.Query.Validate(),
		cfg.Broker.Validate(), cfg.Streamer.Validate(), cfg.Compactor.Validate()); err != nil {
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

// TestPprofOnlyWhenEnabled: /debug/pprof/ is served only with http.pprof.
func TestPprofOnlyWhenEnabled(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, on := range []bool{false, true} {
		h := opsMux(HTTPConfig{Pprof: on}, reg, func() error { return nil })
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/cmdline", nil))
		if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; rec.Code != want {
			t.Fatalf("http.pprof %v: GET /debug/pprof/cmdline answered %d, want %d", on, rec.Code, want)
		}
	}
}
