package lake

// Data files: Parquet files for Iceberg tables, Arrow record batches in, a
// closed file and its iceberg.DataFile (with column statistics for scan
// pruning) out, for every stage that writes to the lake (ingest, the
// read-model committer, the compactor).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
)

// FileOptions tune the Parquet layout.
type FileOptions struct {
	// RowGroupRows caps rows per row group (DuckDB and Spark parallelize
	// scans by row group).
	RowGroupRows int64
	// CompressionLevel is the zstd level (1 is fastest).
	CompressionLevel int
	// NoDictionary lists columns where a dictionary only costs CPU:
	// values nearly unique (ids, raw JSON), or one or a few values per
	// file that zstd shrinks to nothing in plain pages as well.
	NoDictionary []string
	// NoStats lists columns whose min/max are useless for pruning (raw
	// JSON); skipping them saves CPU and manifest space.
	NoStats []string
	// DeltaColumns are integer or timestamp columns of nearly increasing
	// values (event time, offsets): DELTA_BINARY_PACKED stores them in a
	// few bits per value and readers decode them far faster than
	// dictionary or plain pages.
	DeltaColumns []string
	// BloomFilters lists columns that get a Parquet bloom filter in every
	// row group: identifier columns that lookups filter by equality
	// (BloomFilterColumns). Min/max statistics cannot prune random ids;
	// a filter lets a reader skip a row group that does not hold the id
	// after reading a few hundred bytes of it. Columns the schema lacks
	// are ignored.
	BloomFilters []string
}

// EventFileOptions is the Parquet layout of the raw and dead-letter
// tables' files, written by ingest and rewritten by the compactor (plus
// the table's BloomFilterColumns).
func EventFileOptions(rowGroupRows int64) FileOptions {
	return FileOptions{
		RowGroupRows: rowGroupRows,
		// Ids and verbatim JSON are nearly unique: a dictionary only costs
		// CPU. The envelope's source, type and topic hold one or a few
		// values per file: zstd compresses their plain pages to almost
		// nothing too (orders_raw: 54.03 vs 54.05 B/row of column data),
		// while arrow-go's dictionary encoder hashes (and boxes) every
		// value, which costs more than the plain copy. Typed payload
		// columns keep dictionaries (product ids, enums and small numbers
		// compress well with them).
		NoDictionary: []string{ColEventID, ColPayload, ColMetadata, ColTraceID, ColSpanID, ColRaw, ColDetail,
			ColSource, ColType, ColKafkaTopic},
		NoStats:      []string{ColPayload, ColMetadata, ColRaw, ColDetail},
		DeltaColumns: []string{ColTs, ColKafkaOffset, ColKafkaTimestamp, ColIngestedAt},
	}
}

// bloomFilterFPP is the false-positive rate bloom filters are sized for:
// a lookup over a month of hourly files (720 row groups) reads about 7
// row groups that do not hold the id.
const bloomFilterFPP = 0.01

// dictionaryPageLimit caps a column chunk's dictionary: past it the
// writer falls back to plain pages. A column with more distinct values
// than fit in 64 KiB per row group (ids: orders, users, sessions) gains
// little from a dictionary under zstd, while each value costs a hash
// table insert until the writer gives up; the default (1 MiB) let that go
// on for ~50,000 values per row group of such a column. Columns of few
// values (types, sources, products, warehouses) keep their dictionaries.
const dictionaryPageLimit = 64 << 10

// writerProps are the Parquet writer's properties for a file of about
// rows rows (0: unknown).
func (o FileOptions) writerProps(mem memory.Allocator, rows int64) *parquet.WriterProperties {
	rg := o.RowGroupRows
	if rg <= 0 {
		rg = 256 * 1024
	}
	lvl := o.CompressionLevel
	if lvl == 0 {
		lvl = 1
	}
	props := []parquet.WriterProperty{
		parquet.WithAllocator(mem),
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCompressionLevel(lvl),
		parquet.WithMaxRowGroupLength(rg),
		parquet.WithStoreDecimalAsInteger(true),
		parquet.WithDataPageSize(1 << 20),
		parquet.WithDictionaryPageSizeLimit(dictionaryPageLimit),
		parquet.WithCreatedBy("eventlake"),
	}
	for _, c := range o.NoDictionary {
		props = append(props, parquet.WithDictionaryFor(c, false))
	}
	for _, c := range o.NoStats {
		props = append(props, parquet.WithStatsFor(c, false))
	}
	for _, c := range o.DeltaColumns {
		props = append(props, parquet.WithDictionaryFor(c, false),
			parquet.WithEncodingFor(c, parquet.Encodings.DeltaBinaryPacked))
	}
	// A filter is sized for the distinct values of one row group, which
	// for ids is its rows: the file's rows when known (a micro-batch of a
	// few hundred events gets a filter of a few hundred bytes, not one for
	// a full row group), else a full row group. Without a size arrow-go
	// writes 1 MiB per column chunk whatever it holds.
	ndv := rg
	if rows > 0 && rows < rg {
		ndv = rows
	}
	for _, c := range o.BloomFilters {
		props = append(props, parquet.WithBloomFilterEnabledFor(c, true),
			parquet.WithBloomFilterNDVFor(c, ndv), parquet.WithBloomFilterFPPFor(c, bloomFilterFPP))
	}
	return parquet.NewWriterProperties(props...)
}

// Writer writes one Parquet data file of one table partition.
type FileWriter struct {
	location  string
	out       io.WriteCloser
	count     *countingWriter
	schema    *arrow.Schema
	opts      FileOptions
	mem       memory.Allocator
	rows      int64               // ExpectRows
	pw        *pqarrow.FileWriter // opened by the first Write (or Close)
	partition map[int]any
	closed    bool
}

// Create opens a new data file at location (a full URI such as
// file:///lake/t/data/x.parquet or s3://b/t/data/x.parquet). Local files are
// fsynced on Close so that a committed snapshot never points at data lost to
// a power cut.
func CreateFile(ctx context.Context, tbl *table.Table, location string, sc *arrow.Schema, partition map[int]any, opts FileOptions, mem memory.Allocator) (*FileWriter, error) {
	out, err := createObject(ctx, tbl, location)
	if err != nil {
		return nil, err
	}
	// The schema must convert: a writer over it is opened and dropped
	// here, so that a schema Parquet cannot hold fails now rather than at
	// the first Write.
	if _, err := pqarrow.ToParquet(sc, opts.writerProps(mem, 0), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())); err != nil {
		out.Close()
		return nil, fmt.Errorf("open parquet writer for %s: %w", location, err)
	}
	return &FileWriter{location: location, out: out, count: &countingWriter{w: out}, schema: sc, opts: opts, mem: mem, partition: partition}, nil
}

// ExpectRows tells a writer that has not written yet how many rows the
// file will hold, when the caller knows (ingest, for a batch's last
// chunk; the compactor, from its inputs). Bloom filters are sized for
// it; without it they are sized for a full row group. More rows than
// expected only raise the filters' false-positive rate.
func (w *FileWriter) ExpectRows(n int64) {
	if w.pw == nil {
		w.rows = n
	}
}

// open opens the Parquet writer (the file's header is written then).
func (w *FileWriter) open() error {
	if w.pw != nil {
		return nil
	}
	pw, err := pqarrow.NewFileWriter(w.schema, w.count, w.opts.writerProps(w.mem, w.rows),
		pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(w.mem), pqarrow.WithStoreSchema()))
	if err != nil {
		return fmt.Errorf("open parquet writer for %s: %w", w.location, err)
	}
	w.pw = pw
	return nil
}

// Write appends a record batch; rows are buffered into row groups.
func (w *FileWriter) Write(rec arrow.RecordBatch) error {
	if err := w.open(); err != nil {
		return err
	}
	if err := w.pw.WriteBuffered(rec); err != nil {
		return fmt.Errorf("write parquet %s: %w", w.location, err)
	}
	return nil
}

// RowGroupRows is the number of rows of the row group being written: the
// writer holds them, encoded, until the group is full or the file closed.
func (w *FileWriter) RowGroupRows() int64 {
	if w.pw == nil {
		return 0
	}
	n, _ := w.pw.RowGroupNumRows() // an error (columns of unequal lengths) failed the Write
	return int64(n)
}

// Rows is the number of rows written so far (0 once closed).
func (w *FileWriter) Rows() int {
	if w.pw == nil {
		return 0
	}
	return w.pw.NumRows()
}

// Location is the file's URI.
func (w *FileWriter) Location() string { return w.location }

// Close writes the footer, syncs and closes the file, and describes it as
// an Iceberg data file of tbl.
func (w *FileWriter) Close(tbl *table.Table) (iceberg.DataFile, error) {
	if w.closed {
		return nil, errors.New("lakefile: writer already closed")
	}
	w.closed = true
	if err := w.open(); err != nil {
		return nil, errors.Join(err, w.out.Close())
	}
	// pqarrow's Close also closes the sink (our countingWriter -> file).
	if err := w.pw.Close(); err != nil {
		return nil, fmt.Errorf("close parquet %s: %w", w.location, err)
	}
	md, err := w.pw.FileMetadata()
	if err != nil {
		return nil, fmt.Errorf("read footer of %s: %w", w.location, err)
	}
	df, err := table.DataFileFromMetadata(table.DataFileArgs{
		Schema:          tbl.Schema(),
		Spec:            tbl.Spec(),
		Format:          iceberg.ParquetFile,
		Metadata:        md,
		FilePath:        w.location,
		FileSize:        w.count.n,
		Content:         iceberg.EntryContentData,
		PartitionValues: w.partition,
		Properties:      tbl.Properties(),
		FormatVersion:   tbl.Metadata().Version(),
	})
	if err != nil {
		return nil, fmt.Errorf("describe data file %s: %w", w.location, err)
	}
	// The writer keeps its schema, row group and column writers and the
	// footer's metadata (48 KiB for a raw table's file of 250 rows) after
	// Close: dropped, as a writer that closes hundreds of files before
	// committing them (ingest) keeps each FileWriter until then.
	w.pw = nil
	return df, nil
}

// Closed reports whether Close or Abort was called.
func (w *FileWriter) Closed() bool { return w.closed }

// Abort closes the file without a valid footer and removes it.
func (w *FileWriter) Abort(ctx context.Context, tbl *table.Table) error {
	if !w.closed {
		w.closed = true
		if w.pw != nil {
			_ = w.pw.Close()
		} else {
			_ = w.out.Close()
		}
	}
	return RemoveFile(ctx, tbl, w.location)
}

// Remove deletes a data file that no snapshot references.
func RemoveFile(ctx context.Context, tbl *table.Table, location string) error {
	if p, ok := LocalPath(location); ok {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", location, err)
		}
		return nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return fmt.Errorf("open table io: %w", err)
	}
	if err := fs.Remove(location); err != nil && !errors.Is(err, os.ErrNotExist) {
		// An object whose upload never completed does not exist: removed.
		return fmt.Errorf("remove %s: %w", location, err)
	}
	return nil
}

func createObject(ctx context.Context, tbl *table.Table, location string) (io.WriteCloser, error) {
	if p, ok := LocalPath(location); ok {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("create directory for %s: %w", location, err)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", location, err)
		}
		return &syncFile{f}, nil
	}
	// The object store writer lives as long as the file, not as long as
	// the caller's context: a shutdown cancels the consume loop's context
	// and then closes the batch's files in the final flush. Abort ends a
	// write that must not complete.
	fs, err := tbl.FS(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("open table io: %w", err)
	}
	wfs, ok := fs.(iceio.WriteFileIO)
	if !ok {
		return nil, fmt.Errorf("table io %T cannot write files", fs)
	}
	w, err := wfs.Create(location)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", location, err)
	}
	return w, nil
}

type syncFile struct{ f *os.File }

func (s *syncFile) Write(p []byte) (int, error) { return s.f.Write(p) }

func (s *syncFile) Close() error {
	serr := s.f.Sync()
	cerr := s.f.Close()
	if serr != nil {
		return fmt.Errorf("fsync %s: %w", s.f.Name(), serr)
	}
	return cerr
}

type countingWriter struct {
	w io.WriteCloser
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Close() error { return c.w.Close() }

// Download copies the object at location, read through fs (the table's
// FileIO), to a new file in dir and returns its path; the caller removes
// it. Readers that need a local Parquet file for DuckDB (the compactor's
// rewrite, the dead-letter commands) stage remote data files this way.
func Download(fs iceio.IO, location, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	in, err := fs.Open(location)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", location, err)
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, "stage-*.parquet")
	if err != nil {
		return "", fmt.Errorf("stage %s: %w", location, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(out.Name())
		return "", fmt.Errorf("download %s: %w", location, err)
	}
	if err := out.Close(); err != nil {
		os.Remove(out.Name())
		return "", fmt.Errorf("stage %s: %w", location, err)
	}
	return out.Name(), nil
}

// ReadFile reads a whole data file of tbl (at its location, through the
// table's FileIO) into memory: for files small enough to rewrite or fold
// in one piece (read-model deltas, dead letters).
func ReadFile(ctx context.Context, tbl *table.Table, location string) (arrow.Table, error) {
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, err
	}
	f, err := fs.Open(location)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", location, err)
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", location, err)
	}
	defer pr.Close()
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", location, err)
	}
	t, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", location, err)
	}
	return t, nil
}

// AppendValue appends v (nil, string, int32, int64 or time.Time) to a
// column builder of field f, for writers that build rows by column name
// (the audit log, the replay log); an empty string is null in a nullable
// column.
func AppendValue(b array.Builder, f arrow.Field, v any) error {
	switch x := v.(type) {
	case nil:
	case string:
		if sb, ok := b.(*array.StringBuilder); ok && (x != "" || !f.Nullable) {
			sb.Append(x)
			return nil
		}
		if _, ok := b.(*array.StringBuilder); ok {
			break
		}
		return fmt.Errorf("column type %s cannot hold a string", f.Type)
	case int64:
		if ib, ok := b.(*array.Int64Builder); ok {
			ib.Append(x)
			return nil
		}
		return fmt.Errorf("column type %s cannot hold a long", f.Type)
	case int32:
		if ib, ok := b.(*array.Int32Builder); ok {
			ib.Append(x)
			return nil
		}
		return fmt.Errorf("column type %s cannot hold an int", f.Type)
	case time.Time:
		if tb, ok := b.(*array.TimestampBuilder); ok {
			tb.Append(arrow.Timestamp(x.UnixMicro()))
			return nil
		}
		return fmt.Errorf("column type %s cannot hold a timestamp", f.Type)
	}
	if !f.Nullable {
		return errors.New("a value is required")
	}
	b.AppendNull()
	return nil
}

// Transcode rewrites the local Parquet file src into a new local file dst
// (synced) with opts' layout, keeping its schema, field ids and row
// order: for files another engine wrote (the compactor's DuckDB COPY),
// which cannot give bloom filters to some columns only (DuckDB writes
// them for dictionary-encoded columns, and a dictionary-size limit is one
// setting for every column of a COPY).
func Transcode(ctx context.Context, src, dst string, opts FileOptions, mem memory.Allocator) (err error) {
	r, err := file.OpenParquetFile(src, false, file.WithReadProps(parquet.NewReaderProperties(mem)))
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer r.Close()
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, mem)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	defer rr.Release()
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(dst)
		}
	}()
	pw, err := pqarrow.NewFileWriter(rr.Schema(), &syncFile{f}, opts.writerProps(mem, r.NumRows()),
		pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem), pqarrow.WithStoreSchema()))
	if err != nil {
		f.Close()
		return fmt.Errorf("open parquet writer for %s: %w", dst, err)
	}
	for rr.Next() {
		if err := pw.WriteBuffered(rr.RecordBatch()); err != nil {
			_ = pw.Close()
			return fmt.Errorf("write %s: %w", dst, err)
		}
	}
	if err := rr.Err(); err != nil {
		_ = pw.Close()
		return fmt.Errorf("read %s: %w", src, err)
	}
	// Close writes the footer and closes (syncs) the file.
	if err := pw.Close(); err != nil {
		return fmt.Errorf("close %s: %w", dst, err)
	}
	return nil
}
