package query

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/lake"
)

// TestRevenuePruningMatchesIcebergScan checks the revenue endpoint's file
// pruning (manifest ts bounds kept from the refresh) against iceberg-go's
// own planning with a row filter on ts.
func TestRevenuePruningMatchesIcebergScan(t *testing.T) {
	l := newLake(t)
	l.orders()
	// Files of several hours, and files spanning an hour boundary.
	var off int64
	for i := range 6 {
		var rows []row
		for j := range 3 {
			ts := t0.Add(time.Duration(i)*50*time.Minute + time.Duration(j)*7*time.Minute)
			rows = append(rows, order("o", ts, "1.00", off))
			off++
		}
		l.appendRows("orders_raw", rows, nil)
	}
	tbl, err := l.cat.LoadTable(context.Background(), "orders_raw")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{}, Deps{Catalog: l.cat, Layout: testLayout(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := svc.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	st, err := svc.plan(context.Background(), svc.specs[0], tbl)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.files) < 6 {
		t.Fatalf("%d files planned", len(st.files))
	}
	ranges := [][2]time.Time{
		{t0, t0.Add(time.Minute)},
		{t0.Add(-time.Hour), t0},
		{t0.Add(55 * time.Minute), t0.Add(65 * time.Minute)},
		{t0.Add(2 * time.Hour), t0.Add(2*time.Hour + time.Microsecond)},
		{t0.Add(-24 * time.Hour), t0.Add(24 * time.Hour)},
		{t0.Add(10 * time.Hour), t0.Add(11 * time.Hour)},
	}
	for _, r := range ranges {
		lo, hi := r[0].UnixMicro(), r[1].UnixMicro()
		got := overlapping(st.files, lo, hi)
		filter := iceberg.NewAnd(
			iceberg.GreaterThanEqual(iceberg.Reference(lake.ColTs), iceberg.Timestamp(lo)),
			iceberg.LessThan(iceberg.Reference(lake.ColTs), iceberg.Timestamp(hi)))
		tasks, err := tbl.Scan(table.WithRowFilter(filter)).PlanFiles(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, task := range tasks {
			p, _ := lake.LocalPath(task.File.FilePath())
			want = append(want, p)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("[%s, %s): pruned to %d files, iceberg-go plans %d", r[0], r[1], len(got), len(want))
		}
	}
}

func TestCeilMicros(t *testing.T) {
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   time.Time
		want int64
	}{
		{base, base.UnixMicro()},
		{base.Add(time.Nanosecond), base.UnixMicro() + 1},
		{base.Add(999 * time.Nanosecond), base.UnixMicro() + 1},
		{base.Add(time.Microsecond), base.UnixMicro() + 1},
		{time.Unix(0, -1500), -1},
	} {
		if got := ceilMicros(c.in); got != c.want {
			t.Errorf("ceilMicros(%v) = %d, want %d", c.in, got, c.want)
		}
	}
}
