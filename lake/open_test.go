package lake_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/lake"
)

// TestOpenExisting: OpenExisting refuses a catalog that holds no lake
// (ErrNoLake) and creates nothing, on SQLite (no database file) and on
// PostgreSQL (an empty database: no catalog tables); once Open has
// created the lake, OpenExisting opens it.
func TestOpenExisting(t *testing.T) {
	ctx := context.Background()
	pg := th.StartPostgres(t)
	dir := t.TempDir()
	for name, cfg := range map[string]lake.Config{
		"sqlite":   {Type: lake.TypeSQLite, URI: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")},
		"postgres": {Type: lake.TypePostgres, URI: pg.URIWithDB("openexisting"), Warehouse: t.TempDir()},
	} {
		cfg.Defaults("")
		if _, err := lake.OpenExisting(ctx, cfg); !errors.Is(err, lake.ErrNoLake) {
			t.Fatalf("%s: OpenExisting on an empty catalog: %v, want ErrNoLake", name, err)
		}
		if name == "sqlite" {
			if _, err := os.Stat(cfg.URI); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("sqlite: OpenExisting created %s", cfg.URI)
			}
		}
		if _, err := lake.OpenExisting(ctx, cfg); !errors.Is(err, lake.ErrNoLake) {
			t.Fatalf("%s: a second OpenExisting: %v, want ErrNoLake (the first created nothing)", name, err)
		}
		c, err := lake.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		c, err = lake.OpenExisting(ctx, cfg)
		if err != nil {
			t.Fatalf("%s: OpenExisting after Open: %v", name, err)
		}
		c.Close()
	}
}
