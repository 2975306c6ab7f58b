package main

// The lookups benchmark: a month of order events laid out as the
// compactor leaves it (one file per hour partition, bloom filters on the
// identifier columns), and the time `eventlake query` takes to find one
// event, one order and one user's orders in it, next to the 24 h revenue
// query over one day of the month. Each layout of rows inside the hourly
// files (-lookup-layouts) is written from the same events and timed the
// same way, so that the sort order the compactor should use can be
// chosen by measurement.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/eventlake/eventlake/demo"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// lookupLayout is one layout of the rows inside each hourly file.
type lookupLayout struct {
	byUser   bool  // rows sorted by (user_id, ts); else by ts
	rowGroup int64 // rows per row group
}

func (l lookupLayout) String() string {
	s := "ts"
	if l.byUser {
		s = "user_id+ts"
	}
	return s + "@" + strconv.FormatInt(l.rowGroup, 10)
}

func (l lookupLayout) describe() string {
	s := "sorted by ts (as the compactor writes today)"
	if l.byUser {
		s = "sorted by (user_id, ts)"
	}
	return fmt.Sprintf("%s, row groups of %d rows", s, l.rowGroup)
}

// parseLayouts reads -lookup-layouts: SORT@ROWS, comma separated, where
// SORT is ts or user_id+ts.
func parseLayouts(s string) ([]lookupLayout, error) {
	var out []lookupLayout
	for _, f := range strings.Split(s, ",") {
		sortBy, rows, ok := strings.Cut(strings.TrimSpace(f), "@")
		n, err := strconv.ParseInt(rows, 10, 64)
		if !ok || err != nil || n <= 0 || (sortBy != "ts" && sortBy != "user_id+ts") {
			return nil, fmt.Errorf("-lookup-layouts: %q is not SORT@ROWS (SORT: ts or user_id+ts)", f)
		}
		out = append(out, lookupLayout{byUser: sortBy == "user_id+ts", rowGroup: n})
	}
	return out, nil
}

// lookupStart is the month's first day: the revenue query's day
// (benchDay) is its last.
func lookupStart(days int) time.Time {
	end, _ := time.Parse(time.RFC3339, benchDay)
	return end.AddDate(0, 0, -(days - 1))
}

// lookupSeed is the generator seed of day d: ids embed the seed, so every
// day's event and order ids differ.
func lookupSeed(d int) uint64 { return 1000 + uint64(d) }

func benchLookups(bin, dir string, perDay, days, users, runs int, layouts []lookupLayout) ([]result, error) {
	dirs := make([]string, len(layouts))
	for i, l := range layouts {
		dirs[i] = filepath.Join(dir, strings.NewReplacer("+", "_", "@", "_").Replace(l.String()))
	}
	fmt.Fprintf(os.Stderr, "lookups: writing %d days of %d order events in hourly files, layouts %v...\n", days, perDay, layouts)
	t0 := time.Now()
	sizes, err := writeHourFiles(dirs, layouts, perDay, days, users)
	if err != nil {
		return nil, err
	}
	gen := time.Since(t0)
	fmt.Fprintf(os.Stderr, "lookups: %d files per layout in %.0f s\n", days*24, gen.Seconds())

	if users <= 0 {
		users = 10_000 // demo.Config's default
	}
	how := fmt.Sprintf("%d days x %d order.created events a day (demo generator, %d users) in orders_raw, laid out as the compactor leaves it: one file per hour partition (%d files), written with lake.FileWriter and lake.EventFileOptions, bloom filters on lake.BloomFilterColumns (event_id, order_id, user_id, product_id); written directly (%.0f s with two workers) and committed in one snapshot",
		days, perDay, users, days*24, gen.Seconds())
	var rs []result
	for i, l := range layouts {
		m, err := lookupLatency(bin, dirs[i], perDay, days, users, runs)
		if err != nil {
			return nil, fmt.Errorf("layout %s: %w", l, err)
		}
		tag := " [" + l.String() + "]"
		method := fmt.Sprintf("POST /v1/sql `SELECT * FROM orders WHERE %%s = '<id>'`, a different id of the month each run (%d timed runs after 3 warm-up), %s", runs, l.describe())
		rs = append(rs,
			result{"lookup by event_id, p50 / p99" + tag, m.event.String(), "<= 50 ms", verdict(m.event.p50 <= 50*time.Millisecond), fmt.Sprintf(method, "event_id") + "; the demo's ids are sequential within a day (ev-<seed>-<n>, a seed per day here), so each file's min/max in the manifests narrow an id to one day's files, which the query service picks before DuckDB runs, and bloom filters to one file; " + how},
			result{"lookup by absent event_id, p50 / p99" + tag, m.absent.String(), "", "", fmt.Sprintf(method, "event_id") + "; ids of a seed no day has (0 rows): the manifests' bounds rule out every file, so DuckDB reads none (before the service pruned files, this was the cost of visiting all 720)"},
			result{"lookup by order_id, p50 / p99" + tag, m.order.String(), "<= 50 ms", verdict(m.order.p50 <= 50*time.Millisecond), fmt.Sprintf(method, "order_id")},
			result{"lookup by user_id, p50 / p99" + tag, m.user.String(), "<= 50 ms", verdict(m.user.p50 <= 50*time.Millisecond),
				fmt.Sprintf(method, "user_id") + fmt.Sprintf("; a user has about %d orders in the month", perDay*days/users)},
			result{"24 h revenue of one day of the month via POST /v1/sql, p50 / p99" + tag, m.revenue.String(), "", "", "compact.go's per-minute revenue SQL over `orders`, the last day of the month (the service reads that day's 24 files: the manifests' ts bounds rule out the others)"},
			result{"1 h window via POST /v1/sql, p50 / p99" + tag, m.hour.String(), "", "", "`SELECT count(*), sum(amount) FROM orders WHERE ts >= T AND ts < T + 1 h`, T a random half hour of the month (two files, picked by the service from the manifests' ts bounds)"},
			result{"lookup lake size" + tag, fmt.Sprintf("%.0f MiB (%.1f bytes/event)", float64(sizes[i])/(1<<20), float64(sizes[i])/float64(perDay*days)), "", "", "the data files' bytes"},
		)
	}
	return rs, nil
}

// pct is a latency distribution's median and 99th percentile.
type pct struct{ p50, p99 time.Duration }

func (p pct) String() string { return msOrTimeout(p.p50) + " / " + msOrTimeout(p.p99) }

// pcts are the percentiles of ds; a query that timed out once is not
// run again (ds is then that one timedOut).
func pcts(ds []time.Duration) pct {
	slices.Sort(ds)
	return pct{ds[len(ds)/2], ds[min(len(ds)-1, len(ds)*99/100)]}
}

type lookupTimes struct{ event, absent, order, user, revenue, hour pct }

// lookupLatency starts `eventlake query` on the lake and times the
// lookups, the revenue query and the 1 h window in turns (one of each per
// round), so that load from elsewhere on the machine hits all alike.
func lookupLatency(bin, lakeDir string, perDay, days, users, runs int) (lookupTimes, error) {
	q, err := start(bin, nil, "query", "--data-dir", lakeDir, "--http", "127.0.0.1:0", "--no-hot")
	if err != nil {
		return lookupTimes{}, err
	}
	defer q.stop()
	base := "http://" + q.ready["http"]
	if err := waitReady(base, 10*time.Minute); err != nil {
		return lookupTimes{}, err
	}
	rng := rand.New(rand.NewPCG(42, 43))
	start := lookupStart(days)
	// The i-th event of day d has ids ev-<seed>-<i> and o-<seed>-<i>.
	pick := func() (day, i int) { return rng.IntN(days), rng.IntN(perDay) }
	queries := []func() (string, int){
		func() (string, int) {
			d, i := pick()
			return fmt.Sprintf("SELECT * FROM orders WHERE event_id = 'ev-%d-%d'", lookupSeed(d), i), 1
		},
		func() (string, int) {
			d, i := pick()
			return fmt.Sprintf("SELECT * FROM orders WHERE event_id = 'ev-%d-%d'", lookupSeed(d)+uint64(days), i), 0
		},
		func() (string, int) {
			d, i := pick()
			return fmt.Sprintf("SELECT * FROM orders WHERE order_id = 'o-%d-%d'", lookupSeed(d), i), 1
		},
		func() (string, int) {
			return fmt.Sprintf("SELECT * FROM orders WHERE user_id = 'u-%d'", rng.IntN(users)), -1
		},
		func() (string, int) { return fmt.Sprintf(revenueSQL, "orders", ""), 1440 },
		func() (string, int) {
			t := start.Add(time.Duration(rng.IntN(days*48-2)) * 30 * time.Minute)
			return fmt.Sprintf("SELECT count(*), sum(amount) FROM orders WHERE ts >= %s AND ts < %s",
				tsLiteral(t), tsLiteral(t.Add(time.Hour))), 1
		},
	}
	lat := make([][]time.Duration, len(queries))
	for r := range runs + 3 {
		for k, q := range queries {
			if slices.Contains(lat[k], timedOut) {
				continue
			}
			text, want := q()
			d, n, err := postSQL(base, text)
			if errors.Is(err, errTimedOut) {
				fmt.Fprintf(os.Stderr, "lookups: %s timed out; not run again\n", text)
				lat[k] = []time.Duration{timedOut}
				continue
			}
			if err != nil {
				return lookupTimes{}, err
			}
			if want >= 0 && n != want || want < 0 && n == 0 {
				return lookupTimes{}, fmt.Errorf("%s: %d rows, want %d", text, n, want)
			}
			if r >= 3 {
				lat[k] = append(lat[k], d)
			}
		}
	}
	return lookupTimes{pcts(lat[0]), pcts(lat[1]), pcts(lat[2]), pcts(lat[3]), pcts(lat[4]), pcts(lat[5])}, nil
}

func tsLiteral(t time.Time) string {
	return "TIMESTAMPTZ '" + t.UTC().Format("2006-01-02 15:04:05") + "+00'"
}

// writeHourFiles creates orders_raw in each of dirs and fills it with a
// month of events, one file per hour, each dirs[i] laid out as
// layouts[i]; it returns the data files' bytes per layout. Days are
// generated by two workers, each day by a generator of its own seed.
func writeHourFiles(dirs []string, layouts []lookupLayout, perDay, days, users int) ([]int64, error) {
	ctx := context.Background()
	set := schema.NewSet(schema.ShippedVersions(), nil)
	sub := set.Subject(demo.TypeOrderCreated)
	if sub == nil {
		return nil, fmt.Errorf("no shipped schema for %s", demo.TypeOrderCreated)
	}
	var typed []iceberg.NestedField
	for _, c := range sub.Columns {
		typed = append(typed, c.NestedField())
	}
	def := lake.RawTableDef("orders_raw", demo.TopicOrders, typed, iceberg.Properties{lake.PropTypePrefix + demo.TypeOrderCreated: "1"})
	type target struct {
		cat   *lake.Catalog
		tbl   *table.Table
		lp    table.LocationProvider
		opts  lake.FileOptions
		mu    sync.Mutex
		files []iceberg.DataFile
		size  int64
	}
	targets := make([]*target, len(dirs))
	for i, d := range dirs {
		cfg := lake.Config{}
		cfg.Defaults(d)
		cat, err := lake.Open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		defer cat.Close()
		tbl, err := cat.EnsureTable(ctx, def)
		if err != nil {
			return nil, err
		}
		lp, err := tbl.LocationProvider()
		if err != nil {
			return nil, err
		}
		opts := lake.EventFileOptions(layouts[i].rowGroup)
		opts.BloomFilters = lake.BloomFilterColumns(tbl.Schema(), tbl.Properties())
		targets[i] = &target{cat: cat, tbl: tbl, lp: lp, opts: opts}
	}
	sc, err := table.SchemaToArrowSchema(targets[0].tbl.Schema(), nil, true, false)
	if err != nil {
		return nil, err
	}
	userCol, tsCol := sc.FieldIndices("user_id"), sc.FieldIndices(lake.ColTs)
	if len(userCol) != 1 || len(tsCol) != 1 {
		return nil, fmt.Errorf("orders_raw has no user_id or ts column")
	}
	sortKeys := []compute.SortKey{{ColumnIndex: userCol[0]}, {ColumnIndex: tsCol[0]}}
	start := lookupStart(days)
	hourRows := perDay / 24

	// writeHour writes one hour's rows to every target.
	writeHour := func(rec arrow.RecordBatch, hour int32) error {
		var byUser arrow.RecordBatch
		defer func() {
			if byUser != nil {
				byUser.Release()
			}
		}()
		for i, t := range targets {
			out := rec
			if layouts[i].byUser {
				if byUser == nil {
					sorted, err := sortRecord(ctx, rec, sortKeys)
					if err != nil {
						return err
					}
					byUser = sorted
				}
				out = byUser
			}
			loc := t.lp.NewDataLocation("ts_hour=" + iceberg.HourTransform{}.ToHumanStr(hour) + "/" + uuid.NewString() + ".parquet")
			spec := t.tbl.Spec()
			w, err := lake.CreateFile(ctx, t.tbl, loc, sc, map[int]any{spec.Field(0).FieldID: hour}, t.opts, memory.DefaultAllocator)
			if err != nil {
				return err
			}
			w.ExpectRows(out.NumRows())
			if err := w.Write(out); err != nil {
				return err
			}
			df, err := w.Close(t.tbl)
			if err != nil {
				return err
			}
			t.mu.Lock()
			t.files = append(t.files, df)
			t.size += df.FileSizeBytes()
			t.mu.Unlock()
		}
		return nil
	}
	// day generates and writes day d.
	day := func(d int) error {
		dayStart := start.AddDate(0, 0, d)
		g := demo.New(demo.Config{Seed: lookupSeed(d), Start: dayStart, Step: 24 * time.Hour / time.Duration(perDay), Users: users})
		contract := schema.Contract{}
		contract.Defaults()
		dec := schema.NewDecoder(contract, schema.Fixed{S: set})
		app, err := schema.NewAppender(sc)
		if err != nil {
			return err
		}
		b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		defer b.Release()
		b.Reserve(hourRows + 1)
		var ev schema.Event
		hour := int32(-1)
		flush := func() error {
			rec := b.NewRecordBatch()
			defer rec.Release()
			if rec.NumRows() == 0 {
				return nil
			}
			return writeHour(rec, hour)
		}
		for i := range perDay {
			m := g.Next()
			if derr := dec.Decode(m.Value, m.TsMicros+1000, &ev); derr != nil {
				return fmt.Errorf("generated event does not decode: %v", derr)
			}
			h := int32(ev.TsMicros / 3_600_000_000)
			if h != hour && hour >= 0 {
				if err := flush(); err != nil {
					return err
				}
			}
			hour = h
			off := int64(d*perDay + i)
			app.Append(b, &ev, schema.Coords{Topic: demo.TopicOrders, Partition: int32(off % 6), Offset: off / 6,
				KafkaTs: ev.TsMicros + 1000, Ingested: ev.TsMicros + 500_000})
		}
		return flush()
	}
	next := make(chan int)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range next {
				if err := day(d); err != nil {
					errs <- err
					for range next {
					}
					return
				}
			}
		}()
	}
	for d := range days {
		next <- d
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	sizes := make([]int64, len(targets))
	for i, t := range targets {
		tx := t.tbl.NewTransaction()
		if err := tx.AddDataFiles(ctx, t.files, nil, table.WithoutDuplicateCheck()); err != nil {
			return nil, err
		}
		if _, err := tx.Commit(ctx); err != nil {
			return nil, err
		}
		sizes[i] = t.size
	}
	return sizes, nil
}

// sortRecord returns rec's rows in the order of keys (a stable sort).
func sortRecord(ctx context.Context, rec arrow.RecordBatch, keys []compute.SortKey) (arrow.RecordBatch, error) {
	idx, err := compute.SortIndicesRecordBatch(ctx, rec, keys)
	if err != nil {
		return nil, fmt.Errorf("sort rows: %w", err)
	}
	defer idx.Release()
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, c := range rec.Columns() {
		if cols[i], err = compute.TakeArray(ctx, c, idx); err != nil {
			return nil, fmt.Errorf("sort rows: %w", err)
		}
	}
	return array.NewRecordBatch(rec.Schema(), cols, rec.NumRows()), nil
}
