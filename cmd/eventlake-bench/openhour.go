package main

// The open-hour benchmark: SQL over the hour ingest is still writing to,
// laid out as 1-second commits leave it, with and without the compactor's
// tiered merging of open partitions, against the same rows compacted.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/eventlake/eventlake/lake"
)

const hourSQL = `SELECT epoch_us(ts) // 60000000 AS minute, sum(amount) AS revenue, count(*) AS orders FROM orders WHERE ts >= TIMESTAMPTZ '%s' AND ts < TIMESTAMPTZ '%s' GROUP BY 1 ORDER BY 1`

func benchOpenHour(bin, dir string, perHour, runs int) ([]result, error) {
	// The current hour: its partition stays open (end plus the allowed
	// lateness ahead) while the benchmark runs.
	h := time.Now().UTC().Truncate(time.Hour)
	perMin := perHour / 60
	unmerged, merged := filepath.Join(dir, "unmerged"), filepath.Join(dir, "merged")
	fmt.Fprintf(os.Stderr, "open hour: writing %d order events as 1-second files, with a compaction cycle after every minute...\n", perMin*60)
	var (
		rewritten int64
		cycles    []float64
	)
	for m := range 60 {
		l := fileLayout{start: h.Add(time.Duration(m) * time.Minute), span: time.Minute, per: time.Second, seed: uint64(100 + m)}
		for _, d := range []string{unmerged, merged} {
			if _, _, err := writeFiles(d, perMin, l); err != nil {
				return nil, err
			}
		}
		if m == 59 {
			break // the last minute waits for the next cycle: what a query meets at worst
		}
		rep, _, err := compactRewrite(bin, merged)
		if err != nil {
			return nil, err
		}
		rewritten += rep.Rows
		cycles = append(cycles, rep.Seconds)
	}
	q := fmt.Sprintf(hourSQL, h.Format("2006-01-02 15:04:05+00"), h.Add(time.Hour).Format("2006-01-02 15:04:05+00"))
	// filesAndP50 counts the files of lakeDir's orders_raw and times q
	// over them.
	filesAndP50 := func(lakeDir string) (int, time.Duration, error) {
		n, err := liveFileCount(lakeDir)
		if err != nil {
			return 0, 0, err
		}
		p, err := serviceP50(bin, lakeDir, q, runs)
		return n, p, err
	}
	fmt.Fprintf(os.Stderr, "open hour: timing SQL over the unmerged and the merged hour...\n")
	_, pUnmerged, err := filesAndP50(unmerged)
	if err != nil {
		return nil, err
	}
	mergedFiles, pMerged, err := filesAndP50(merged)
	if err != nil {
		return nil, err
	}
	// Right after the next cycle: the tiers alone.
	if _, _, err := compactRewrite(bin, merged); err != nil {
		return nil, err
	}
	tierFiles, pTiers, err := filesAndP50(merged)
	if err != nil {
		return nil, err
	}
	// The same rows compacted as a closed hour is: every small file into
	// one (an open partition past max_files_per_partition is).
	if _, _, err := compactRewrite(bin, merged, "EVENTLAKE_COMPACTOR_MAX_FILES_PER_PARTITION=2"); err != nil {
		return nil, err
	}
	compactedFiles, pCompacted, err := filesAndP50(merged)
	if err != nil {
		return nil, err
	}
	slices.Sort(cycles)
	ratio := float64(pMerged) / float64(pCompacted)
	ratioTiers := float64(pTiers) / float64(pCompacted)
	rows := int64(perMin * 60)
	how := fmt.Sprintf("%d order.created events (%d a day's rate) with event times in the current hour, one Parquet file per second of event time, as 1-second ingest commits leave it (written directly, committed minute by minute); the revenue-per-minute SQL over the hour through `eventlake query --no-hot` POST /v1/sql, p50 of %d runs after 3 warm-up", rows, rows*24, runs)
	return []result{
		{"SQL over the open hour, 3600 unmerged 1-second files, p50", ms(pUnmerged), "", "", how + "; no compaction ran"},
		{"SQL over the open hour with tiered merging, just before a cycle, p50", fmt.Sprintf("%s (%d files: the tiers plus the last minute's 60 files)", ms(pMerged), mergedFiles), "", "",
			"the same hour with `eventlake compact rewrite` run after each minute of files (the default 1-minute compactor.interval): the open partition's small files merged by size tier (compactor.open_merge_files 8), timed after the 60th minute's files arrived and before the next cycle: the most files a query meets"},
		{"SQL over the open hour with tiered merging, just after a cycle, p50", fmt.Sprintf("%s (%d files)", ms(pTiers), tierFiles), "", "", "the same after one more cycle: the fewest"},
		{"SQL over the same hour compacted, p50", fmt.Sprintf("%s (%d file)", ms(pCompacted), compactedFiles), "", "", "the merged hour then compacted as a closed hour is (every small file into one)"},
		{"open hour merged vs compacted", fmt.Sprintf("%.2fx before a cycle, %.2fx after", ratio, ratioTiers), "<= 1.5x", verdict(ratio <= 1.5), "the p50s above divided by the compacted one"},
		{"tiered merging of the open hour: cost", fmt.Sprintf("each row rewritten %.2f times; a cycle takes %.2f s (median of %d, max %.2f s)", float64(rewritten)/float64(rows), cycles[len(cycles)/2], len(cycles), cycles[len(cycles)-1]), "", "",
			"rows rewritten by the 59 cycles over the hour's rows; cycle time is the compact report's duration (planning, rewrites and commit)"},
	}, nil
}

// serviceP50 starts `eventlake query` on the lake and returns the p50 of
// runs timed POST /v1/sql of q, after 3 warm-up runs.
func serviceP50(bin, lakeDir, q string, runs int) (time.Duration, error) {
	p, err := start(bin, nil, "query", "--data-dir", lakeDir, "--http", "127.0.0.1:0", "--no-hot")
	if err != nil {
		return 0, err
	}
	defer p.stop()
	base := "http://" + p.ready["http"]
	if err := waitReady(base, 5*time.Minute); err != nil {
		return 0, err
	}
	return p50SQL(base, q, runs)
}

// liveFileCount counts the data files of orders_raw's current snapshot.
func liveFileCount(dataDir string) (int, error) {
	ctx := context.Background()
	cfg := lake.Config{}
	cfg.Defaults(dataDir)
	cat, err := lake.Open(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer cat.Close()
	tbl, err := cat.LoadTable(ctx, "orders_raw")
	if err != nil {
		return 0, err
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, t := range tasks {
		seen[t.File.FilePath()] = true
	}
	return len(seen), nil
}
