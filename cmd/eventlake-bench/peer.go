package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/demo"
	"github.com/eventlake/eventlake/internal/duck"
)

// duckdbPeer is the ceiling the ingest figure is compared with: DuckDB
// (the driver eventlake links, in this process) converting the same
// envelopes the ingest benchmark produces (the generator with the same
// seed and settings as `eventlake produce` there) from an NDJSON file to
// zstd Parquet, with DuckDB's own schema inference. It reports events/s
// and the CPU-µs per event of this process while DuckDB runs.
type peerRun struct {
	rate, cpuPerEvent float64
	elapsed           time.Duration
	fileBytes         int64
}

func duckdbPeer(dir string, n int, invFrac float64, start time.Time, step time.Duration) (*peerRun, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	in := filepath.Join(dir, "events.ndjson")
	f, err := os.Create(in)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	g := demo.New(demo.Config{Seed: 1, Start: start, Step: step, LateFraction: 0.05, InventoryFraction: invFrac})
	for range n {
		m := g.Next()
		w.Write(m.Value)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	st, err := os.Stat(in)
	if err != nil {
		return nil, err
	}
	conn, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	out := filepath.Join(dir, "events.parquet")
	q := fmt.Sprintf("COPY (SELECT * FROM read_json(%s, format = 'newline_delimited')) TO %s (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)",
		duck.QuoteString(in), duck.QuoteString(out))
	cpu0 := selfCPU()
	t0 := time.Now()
	if _, err := db.ExecContext(context.Background(), q); err != nil {
		return nil, fmt.Errorf("duckdb NDJSON -> Parquet: %w", err)
	}
	elapsed := time.Since(t0)
	cpu := selfCPU() - cpu0
	_ = os.Remove(in)
	_ = os.Remove(out)
	return &peerRun{rate: float64(n) / elapsed.Seconds(), cpuPerEvent: cpu / float64(n) * 1e6, elapsed: elapsed, fileBytes: st.Size()}, nil
}

// selfCPU is this process's user+system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
