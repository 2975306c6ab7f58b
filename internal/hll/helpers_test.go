package hll

import (
	"context"
	"database/sql"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/zeebo/xxh3"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// userHash is the hash of user u of the synthetic streams.
func userHash(u int) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(u))
	return xxh3.Hash(b[:])
}

// A synthetic day: minute t sees the users t*dayStep .. t*dayStep +
// dayUsers - 1, so that consecutive minutes share most of their users.
const (
	dayMinutes = 1440
	dayUsers   = 5000
	dayStep    = 200
)

// daySketches are the minute sketches of the synthetic day.
func daySketches() []*Sketch {
	out := make([]*Sketch, dayMinutes)
	for t := range out {
		s := New()
		for u := t * dayStep; u < t*dayStep+dayUsers; u++ {
			s.Add(userHash(u))
		}
		out[t] = s
	}
	return out
}

// randomSketches are sketches of users drawn at random from a million
// (consecutive sketches share few users).
func randomSketches(n, users int) []*Sketch {
	r := rand.New(rand.NewPCG(uint64(n), uint64(users)))
	out := make([]*Sketch, n)
	for i := range out {
		s := New()
		for range users {
			s.Add(userHash(r.IntN(1_000_000)))
		}
		out[i] = s
	}
	return out
}

// dayDistinct is the true number of distinct users of minutes first..last.
func dayDistinct(first, last int) int { return (last-first)*dayStep + dayUsers }

// openDuck opens an in-memory DuckDB with the macros.
func openDuck(tb testing.TB) *sql.DB {
	tb.Helper()
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		tb.Fatal(err)
	}
	db := sql.OpenDB(c)
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	for _, m := range DuckDBMacros() {
		if _, err := db.Exec(m); err != nil {
			tb.Fatalf("%v\n%s", err, m)
		}
	}
	return db
}

// sketchColumn says how a Parquet file holds the sketches.
type sketchColumn int

const (
	columnRegisters sketchColumn = iota // list<int32> of Registers
	columnBlob                          // binary of MarshalBinary
	columnDense                         // list<int32> of all 4096 ranks
)

// writeParquet writes the sketches, one row per minute (int32 minute,
// and users_hll, users_blob or users_dense), as the lake's writer does (pqarrow, zstd level 1), with
// extra writer properties, and returns the file's size.
func writeParquet(tb testing.TB, path string, sketches []*Sketch, col sketchColumn, extra ...parquet.WriterProperty) int64 {
	tb.Helper()
	var typ arrow.DataType = ArrowType()
	if col == columnBlob {
		typ = arrow.BinaryTypes.Binary
	}
	users := map[sketchColumn]string{columnRegisters: "users_hll", columnBlob: "users_blob", columnDense: "users_dense"}[col]
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "minute", Type: arrow.PrimitiveTypes.Int32},
		{Name: users, Type: typ},
	}, nil)
	bld := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer bld.Release()
	for t, s := range sketches {
		bld.Field(0).(*array.Int32Builder).Append(int32(t))
		switch col {
		case columnRegisters:
			if err := s.AppendArrow(bld.Field(1).(*array.ListBuilder)); err != nil {
				tb.Fatal(err)
			}
		case columnBlob:
			enc, err := s.MarshalBinary()
			if err != nil {
				tb.Fatal(err)
			}
			bld.Field(1).(*array.BinaryBuilder).Append(enc)
		case columnDense:
			lb := bld.Field(1).(*array.ListBuilder)
			lb.Append(true)
			vb := lb.ValueBuilder().(*array.Int32Builder)
			for _, r := range s.reg {
				vb.Append(int32(r))
			}
		}
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	props := append([]parquet.WriterProperty{
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCompressionLevel(1),
		parquet.WithDictionaryPageSizeLimit(64 << 10),
	}, extra...)
	w, err := pqarrow.NewFileWriter(sc, f, parquet.NewWriterProperties(props...), pqarrow.DefaultWriterProps())
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil { // closes f
		tb.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return st.Size()
}

// readParquetSketches reads the sketches of a file writeParquet wrote
// with columnRegisters back, by minute, through FromArrow.
func readParquetSketches(tb testing.TB, path string) map[int32]*Sketch {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		tb.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	defer tbl.Release()
	out := map[int32]*Sketch{}
	minutes, users := tbl.Column(0).Data().Chunks(), tbl.Column(1).Data().Chunks()
	for c := range minutes {
		mc, uc := minutes[c].(*array.Int32), users[c].(*array.List)
		for i := 0; i < mc.Len(); i++ {
			s, err := FromArrow(uc, i)
			if err != nil {
				tb.Fatal(err)
			}
			out[mc.Value(i)] = s
		}
	}
	return out
}
