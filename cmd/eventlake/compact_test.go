package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/eventlake/eventlake/compactor"
)

func TestCompactUsageErrors(t *testing.T) {
	dir := t.TempDir()
	// A lake to refuse the last case's tables in (the others are refused
	// before the lake is opened).
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"token", "list", "--create-lake", "--data-dir", dir}, &out, &out, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"compact", "frobnicate"}, nil, `unknown task "frobnicate"`},
		{[]string{"erase", "--data-dir", dir}, nil, "--user-id and --requested-by are required"},
		{[]string{"erase", "--user-id", "u-1", "--data-dir", dir}, nil, "--user-id and --requested-by are required"},
		{[]string{"compact", "once", "--data-dir", dir}, []string{"EVENTLAKE_COMPACTOR_SNAPSHOT_MIN_AGE=5s"}, "snapshot_min_age"},
		{[]string{"compact", "once", "--data-dir", dir}, []string{"EVENTLAKE_COMPACTOR_ORPHAN_MIN_AGE=1s"}, "orphan_min_age"},
		{[]string{"compact", "once", "--data-dir", dir, "--tables", "nope"}, nil, `table "nope" is not maintained`},
	} {
		var out, errb bytes.Buffer
		err := Run(context.Background(), tc.args, &out, &errb, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%v, env %v) = %v, want an error containing %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestCompactorTables(t *testing.T) {
	cfg := &Config{}
	cfg.Ingest.Defaults()
	cfg.ReadModels.Defaults()
	cfg.ReadModels.Sessions.Defaults(cfg.ReadModels.ModelInputs)
	cfg.Compactor.Tables = map[string]compactor.TablePolicy{"order_revenue_minute": {}, "orders_raw": {}, "x_model": {}}
	got := compactorTables(cfg)
	var names []string
	for _, tb := range got {
		names = append(names, tb.Name+":"+tb.Role)
	}
	if want := "orders_raw:raw inventory_raw:raw dlq:dlq audit_log:other inventory_health:other order_metrics:other order_revenue_minute:other product_revenue_hour:other user_session_summary:other user_sessions:other x_model:other"; strings.Join(names, " ") != want {
		t.Fatalf("compactorTables = %v, want %s", names, want)
	}
}
