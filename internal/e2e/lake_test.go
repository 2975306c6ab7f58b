package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/lake"
)

// openLake opens the catalog a test's eventlake process writes, to read its
// tables directly with iceberg-go (an independent reader).
func openLake(t *testing.T, dataDir string) *lake.Catalog {
	t.Helper()
	cfg := lake.Config{}
	cfg.Defaults(dataDir)
	cat, err := lake.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat
}

// tableStrings reads one string column of every row of a table.
func tableStrings(t *testing.T, cat *lake.Catalog, name, col string) []string {
	t.Helper()
	tbl, err := cat.LoadTable(context.Background(), name)
	if errors.Is(err, icecat.ErrNoSuchTable) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if tbl.CurrentSnapshot() == nil {
		return nil
	}
	at, err := tbl.Scan(table.WithSelectedFields(col)).ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	var out []string
	for _, ch := range at.Column(0).Data().Chunks() {
		s := ch.(*array.String)
		for i := 0; i < s.Len(); i++ {
			out = append(out, s.Value(i))
		}
	}
	return out
}

// storedOffsets reads the offsets stored in a table's snapshot summary.
func storedOffsets(t *testing.T, cat *lake.Catalog, name string) lake.Offsets {
	t.Helper()
	tbl, err := cat.LoadTable(context.Background(), name)
	if errors.Is(err, icecat.ErrNoSuchTable) {
		return lake.Offsets{}
	}
	if err != nil {
		t.Fatal(err)
	}
	o, err := lake.StoredOffsets(tbl)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func tableRowCount(t *testing.T, cat *lake.Catalog, name string) int64 {
	t.Helper()
	tbl, err := cat.LoadTable(context.Background(), name)
	if errors.Is(err, icecat.ErrNoSuchTable) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, tk := range tasks {
		n += tk.File.Count()
	}
	return n
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	th.Authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
