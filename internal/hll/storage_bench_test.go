package hll

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/parquet"
)

// BenchmarkStorage measures candidate storage forms of a sketch column
// over a day of minute sketches (1440) of users drawn at random from a
// million:
//
//   - size/<form>/users=N: the Parquet file as the lake writes it
//     (pqarrow, zstd level 1), in bytes per sketch (metric bytes/sketch);
//   - merge/<form>/users=N/buckets=B: DuckDB (one thread, for stable
//     numbers on a shared machine) merging and estimating the last B
//     minutes from the file with hll_count, each form first turned into
//     packed registers per row; list_rows is the list form merged by an
//     explicit unnest and GROUP BY instead of the macro. The answers are
//     checked against Go's.
//
// Forms: list (Registers as list<int32>, the writer's default encoding),
// list_delta (the same with DELTA_BINARY_PACKED elements), dense (all
// 4096 ranks as list<int32>), blob (MarshalBinary; SQL can cut only its
// dense encoding into registers, so it is merged at 5,000 users only).
//
//	go test ./internal/hll/ -run '^$' -bench Storage -benchtime 3x
func BenchmarkStorage(b *testing.B) {
	dir := b.TempDir()
	db := openDuck(b)
	for _, q := range []string{
		"SET threads = 1",
		// A dense MarshalBinary blob (format byte 2, then one byte per
		// register, all below 54) as packed registers.
		`CREATE MACRO blob_registers(b) AS list_filter(
			list_transform(str_split(decode(b), '')[2:], (c, i) -> CAST((i - 1) << 6 | ord(c) AS INTEGER)),
			x -> x & 63 > 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	forms := []struct {
		name      string
		col       sketchColumn
		extra     []parquet.WriterProperty
		registers string // the row's packed registers in SQL
	}{
		{"list", columnRegisters, nil, "users_hll"},
		{"list_delta", columnRegisters, []parquet.WriterProperty{
			parquet.WithDictionaryFor("users_hll.list.element", false),
			parquet.WithEncodingFor("users_hll.list.element", parquet.Encodings.DeltaBinaryPacked),
		}, "users_hll"},
		{"dense", columnDense, nil, "list_filter(list_transform(users_dense, (r, i) -> CAST((i - 1) << 6 | r AS INTEGER)), x -> x & 63 > 0)"},
		{"blob", columnBlob, nil, "blob_registers(users_blob)"},
	}
	for _, users := range []int{20, 300, 5000} {
		sketches := randomSketches(dayMinutes, users)
		paths := map[string]string{}
		for _, f := range forms {
			path := filepath.Join(dir, fmt.Sprintf("%s_%d.parquet", f.name, users))
			paths[f.name] = path
			writeParquet(b, path, sketches, f.col, f.extra...) // for merge/ when size/ is filtered out
			b.Run(fmt.Sprintf("size/%s/users=%d", f.name, users), func(b *testing.B) {
				var size int64
				for b.Loop() {
					size = writeParquet(b, path, sketches, f.col, f.extra...)
				}
				b.ReportMetric(float64(size)/float64(len(sketches)), "bytes/sketch")
			})
		}
		merge := func(name, q string) {
			for _, n := range []int{1, 60, 1440} {
				if users != dayUsers && n != dayMinutes {
					continue
				}
				b.Run(fmt.Sprintf("merge/%s/users=%d/buckets=%d", name, users, n), func(b *testing.B) {
					first := dayMinutes - n
					var est int64
					for b.Loop() {
						if err := db.QueryRow(fmt.Sprintf(q, first, dayMinutes-1)).Scan(&est); err != nil {
							b.Fatal(err)
						}
					}
					if want := mergeGo(sketches[first:]).Estimate(); uint64(est) != want {
						b.Fatalf("SQL estimate %d != Go's %d", est, want)
					}
				})
			}
		}
		for _, f := range forms {
			if f.col == columnBlob && users != dayUsers {
				continue
			}
			merge(f.name, fmt.Sprintf(`SELECT hll_count(%s) FROM read_parquet('%s') WHERE minute BETWEEN %%d AND %%d`, f.registers, paths[f.name]))
		}
		merge("list_rows", fmt.Sprintf(`SELECT hll_estimate(list(reg)) FROM (
			SELECT max(p) AS reg FROM (SELECT unnest(users_hll) AS p FROM read_parquet('%s') WHERE minute BETWEEN %%d AND %%d) GROUP BY p >> 6)`, paths["list"]))
		b.Run(fmt.Sprintf("merge/go/users=%d/buckets=1440", users), func(b *testing.B) {
			for b.Loop() {
				mergeGo(sketches).Estimate()
			}
		})
	}
}

func mergeGo(sketches []*Sketch) *Sketch {
	out := New()
	for _, s := range sketches {
		out.Merge(s)
	}
	return out
}
