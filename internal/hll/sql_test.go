package hll

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/apache/arrow-go/v18/parquet"
)

// loadSketches creates table name (id INTEGER, grp INTEGER, regs
// INTEGER[]) holding the sketches' registers, grp = id % groups.
func loadSketches(t *testing.T, db *sql.DB, name string, sketches []*Sketch, groups int) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "CREATE TABLE "+name+" (id INTEGER, grp INTEGER, regs INTEGER[])"); err != nil {
		t.Fatal(err)
	}
	err = conn.Raw(func(dc any) error {
		a, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", name)
		if err != nil {
			return err
		}
		for i, s := range sketches {
			if err := a.AppendRow(int32(i), int32(i%groups), s.Registers()); err != nil {
				return errors.Join(err, a.Close())
			}
		}
		return a.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// queryInts runs q, whose rows are (key, value), into a map.
func queryInts(t *testing.T, db *sql.DB, q string, args ...any) map[int64]int64 {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var k, v int64
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMacroConstant checks that the float64 literal in hll_estimate is
// alphaMM, as Go parses it and as DuckDB casts it.
func TestMacroConstant(t *testing.T) {
	lit := regexp.MustCompile(`CAST\('([0-9.e+-]+)' AS DOUBLE\)`).FindStringSubmatch(macroEstimate())
	if lit == nil {
		t.Fatal("no constant in hll_estimate")
	}
	if f, err := strconv.ParseFloat(lit[1], 64); err != nil || f != alphaMM {
		t.Fatalf("constant %s parses to %v (%v), want alphaMM %v", lit[1], f, err, float64(alphaMM))
	}
	var f float64
	if err := openDuck(t).QueryRow("SELECT CAST('" + lit[1] + "' AS DOUBLE)").Scan(&f); err != nil {
		t.Fatal(err)
	}
	if f != alphaMM {
		t.Fatalf("DuckDB casts %s to %v, want %v", lit[1], f, float64(alphaMM))
	}
}

// TestSQLEstimateAgreesWithGo compares hll_estimate, hll_merge and
// hll_count with Go's Estimate and Merge, integer for integer, over
// sketches of many sizes, densely around the switch from linear counting
// (raw estimate 2.5m = 10240).
func TestSQLEstimateAgreesWithGo(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	var sketches []*Sketch
	add := func(n int) {
		s := New()
		for range n {
			s.Add(r.Uint64())
		}
		sketches = append(sketches, s)
	}
	for n := range 40 {
		add(n)
	}
	for range 400 {
		add(int(math.Exp(r.Float64() * math.Log(300_000))))
	}
	for range 400 {
		add(9_000 + r.IntN(3_000))
	}
	db := openDuck(t)
	loadSketches(t, db, "s", sketches, 37)

	got := queryInts(t, db, "SELECT id, hll_estimate(regs) FROM s")
	for i, s := range sketches {
		if want := s.Estimate(); got[int64(i)] != int64(want) {
			t.Errorf("sketch %d: SQL estimate %d, Go %d", i, got[int64(i)], want)
		}
	}

	merged := make([]*Sketch, 37)
	for i, s := range sketches {
		if merged[i%37] == nil {
			merged[i%37] = New()
		}
		merged[i%37].Merge(s)
	}
	got = queryInts(t, db, "SELECT grp, hll_count(regs) FROM s GROUP BY grp")
	for g, m := range merged {
		if want := m.Estimate(); got[int64(g)] != int64(want) {
			t.Errorf("group %d: SQL count %d, Go %d", g, got[int64(g)], want)
		}
	}
	// Columns named like the macros' own (p, reg, bad ...) are the
	// caller's.
	got = queryInts(t, db, "SELECT grp, hll_count(p) FROM (SELECT grp, regs AS p, regs AS reg, 1 AS bad, 0 AS zeros, 1 AS raw FROM s) GROUP BY grp")
	for g, m := range merged {
		if want := m.Estimate(); got[int64(g)] != int64(want) {
			t.Errorf("group %d, column p: SQL count %d, Go %d", g, got[int64(g)], want)
		}
	}
	// The union of two sketches.
	got = queryInts(t, db, "SELECT a.id, hll_estimate(a.regs || b.regs) FROM s AS a JOIN s AS b ON b.id = a.id + 1")
	for i := range len(sketches) - 1 {
		u := sketches[i].Clone()
		u.Merge(sketches[i+1])
		if want := u.Estimate(); got[int64(i)] != int64(want) {
			t.Errorf("sketches %d and %d: SQL %d, Go %d", i, i+1, got[int64(i)], want)
		}
	}
	rows, err := db.Query("SELECT grp, hll_merge(regs) FROM s GROUP BY grp")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var g int
		var regs []any
		if err := rows.Scan(&g, &regs); err != nil {
			t.Fatal(err)
		}
		want := merged[g].Registers()
		if len(regs) != len(want) {
			t.Fatalf("group %d: hll_merge has %d registers, Go %d", g, len(regs), len(want))
		}
		for i, v := range regs {
			if v.(int32) != want[i] {
				t.Fatalf("group %d: hll_merge register %d is %v, Go %d", g, i, v, want[i])
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestSQLLinearCountingAllZeros covers the linear-counting branch
// exhaustively: there its estimate depends only on the number of zero
// registers, and a sketch whose other registers hold rank 1 is always in
// it (raw <= alpha*m*m/(m/2) < 2.5m), for every count from 0 to 4096
// (every 61st with -short).
func TestSQLLinearCountingAllZeros(t *testing.T) {
	sketches := make([]*Sketch, m+1)
	for zeros := range sketches {
		if testing.Short() && zeros%61 != 0 && zeros != m { // 8 s on a shared machine
			sketches[zeros] = New()
			continue
		}
		s := New()
		for i := range m - zeros {
			s.reg[i] = 1
		}
		sketches[zeros] = s
	}
	db := openDuck(t)
	loadSketches(t, db, "s", sketches, 1)
	got := queryInts(t, db, "SELECT id, hll_estimate(regs) FROM s")
	for zeros, s := range sketches {
		if want := s.Estimate(); got[int64(zeros)] != int64(want) {
			t.Errorf("%d zero registers: SQL estimate %d, Go %d", zeros, got[int64(zeros)], want)
		}
	}
}

// TestSQLEmpty: no sketch, an empty one and a NULL one count 0.
func TestSQLEmpty(t *testing.T) {
	db := openDuck(t)
	for _, q := range []string{
		"SELECT hll_estimate(CAST([] AS INTEGER[]))",
		"SELECT hll_estimate(CAST(NULL AS INTEGER[]))",
		"SELECT hll_count(x) FROM (SELECT CAST([] AS INTEGER[]) AS x) WHERE false",
		"SELECT hll_count(x) FROM (VALUES (CAST(NULL AS INTEGER[])), ([])) AS v(x)",
		"SELECT len(hll_merge(x)) FROM (SELECT CAST([1] AS INTEGER[]) AS x) WHERE false",
	} {
		var n int64
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if n != 0 {
			t.Errorf("%s = %d, want 0", q, n)
		}
	}
}

// TestParquetBucketsMergeInSQL stores the minute sketches of a day of
// overlapping users (minute t sees users 200t .. 200t+4999) in Parquet,
// as the lake writes list<int> columns, and merges 1, 60 and 1440 of them
// in Go (read back through FromArrow) and in SQL: the estimates are
// equal, and within 3 standard errors (1.04/sqrt(4096) = 1.625%, so
// ±4.9%) of the true number of distinct users.
func TestParquetBucketsMergeInSQL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "minutes.parquet")
	writeParquet(t, path, daySketches(), columnRegisters,
		parquet.WithDictionaryFor("users_hll.list.element", false),
		parquet.WithEncodingFor("users_hll.list.element", parquet.Encodings.DeltaBinaryPacked))
	stored := readParquetSketches(t, path)
	if len(stored) != dayMinutes {
		t.Fatalf("read %d sketches back, want %d", len(stored), dayMinutes)
	}
	db := openDuck(t)
	if _, err := db.Exec("CREATE VIEW minutes AS SELECT * FROM read_parquet('" + path + "')"); err != nil {
		t.Fatal(err)
	}
	goMerge := func(first, last int) *Sketch {
		s := New()
		for t := first; t <= last; t++ {
			s.Merge(stored[int32(t)])
		}
		return s
	}
	within := func(what string, est uint64, truth int) {
		if rel := math.Abs(float64(est)-float64(truth)) / float64(truth); rel > 3*StdError {
			t.Errorf("%s: estimate %d is %.2f%% off the true %d, beyond 3 sigma (%.2f%%)", what, est, 100*rel, truth, 300*StdError)
		}
	}
	for _, span := range []struct{ first, last int }{{700, 700}, {600, 659}, {0, 1439}} {
		what := fmt.Sprintf("minutes %d..%d", span.first, span.last)
		want := goMerge(span.first, span.last).Estimate()
		within(what, want, dayDistinct(span.first, span.last))
		for _, q := range []string{
			"SELECT hll_count(users_hll) FROM minutes WHERE minute BETWEEN $1 AND $2",
			"SELECT hll_estimate(hll_merge(users_hll)) FROM minutes WHERE minute BETWEEN $1 AND $2",
			// The recipe for many buckets in docs/HOT_TIER.md.
			`SELECT hll_estimate(list(reg)) FROM (
				SELECT max(p) AS reg FROM (SELECT unnest(users_hll) AS p FROM minutes WHERE minute BETWEEN $1 AND $2)
				GROUP BY p >> 6)`,
		} {
			var got int64
			if err := db.QueryRow(q, span.first, span.last).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != int64(want) {
				t.Errorf("%s: SQL %d, Go %d\n%s", what, got, want, q)
			}
		}
	}
	got := queryInts(t, db, "SELECT minute // 60 AS hour, hll_count(users_hll) FROM minutes GROUP BY hour")
	for h := range 24 {
		want := goMerge(60*h, 60*h+59).Estimate()
		if got[int64(h)] != int64(want) {
			t.Errorf("hour %d: SQL %d, Go %d", h, got[int64(h)], want)
		}
		within(fmt.Sprintf("hour %d", h), want, dayDistinct(60*h, 60*h+59))
	}
}

func TestFromRegistersRefusesOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		name string
		regs []int32
	}{
		{"negative", []int32{-1}},
		{"rank 0", []int32{5 << RankBits}},
		{"rank 54", []int32{5<<RankBits | 54}},
		{"rank 63", []int32{m<<RankBits - 1}},
		{"index 4096", []int32{m<<RankBits | 1}},
		{"huge", []int32{math.MaxInt32}},
		{"after valid ones", []int32{1, 2<<RankBits | 3, -7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := FromRegisters(tc.regs)
			if !errors.Is(err, ErrRegister) || s != nil {
				t.Fatalf("FromRegisters(%v) = %v, %v; want ErrRegister", tc.regs, s, err)
			}
		})
	}
	s, err := FromRegisters([]int32{m<<RankBits - 64 | MaxRank, 3<<RankBits | 2, 3<<RankBits | 1, 0<<RankBits | 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{1, 3<<RankBits | 2, (m-1)<<RankBits | MaxRank}; !slices.Equal(s.Registers(), want) {
		t.Fatalf("registers %v, want %v", s.Registers(), want)
	}
}

// TestSQLRefusesOutOfRange: what FromRegisters refuses fails the
// statement.
func TestSQLRefusesOutOfRange(t *testing.T) {
	db := openDuck(t)
	for _, bad := range []string{"[-1]", "[320]", "[374]", "[262145]", "[1, NULL]"} {
		for _, q := range []string{
			"SELECT hll_estimate(CAST(%s AS INTEGER[]))",
			"SELECT hll_count(x) FROM (SELECT CAST(%s AS INTEGER[]) AS x)",
			"SELECT len(hll_merge(x)) FROM (SELECT CAST(%s AS INTEGER[]) AS x)",
		} {
			q = fmt.Sprintf(q, bad)
			var n int64
			err := db.QueryRow(q).Scan(&n)
			if err == nil || !strings.Contains(err.Error(), "out of range") {
				t.Errorf("%s: %v, %v; want an error saying out of range", q, n, err)
			}
		}
	}
}
