package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestConcurrentHugeAnswers sends twenty 200 MB answers at once
// (SELECT repeat('x', 10000000) FROM range(20)) to four query slots: each
// is answered with what fits under query.max_answer_bytes and says so,
// and the process's peak resident memory stays under the bound
// docs/SECURITY.md ("Memory") gives: the baseline plus, per slot, the
// widest vector the statement computes (200 MB here: DuckDB computes the
// twenty values in one vector, outside its memory_limit) and five times
// the answer cap.
func TestConcurrentHugeAnswers(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "eventlake.yaml")
	if err := os.WriteFile(cfg, []byte(`query:
  queue_timeout: 2m
  max_concurrent_queries: 4
  query_timeout: 2m
auth:
  limits: {disabled: true}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := th.Start(t, "dev", nil, "dev", "--no-demo", "--config", cfg, "--data-dir", filepath.Join(dir, "data"),
		"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	api := "http://" + dev.Ready["http"]
	th.Eventually(t, 30*time.Second, "the query service ready", func() (bool, string) {
		_, status := th.TrySQL(t, api, "SELECT 1")
		return status == 200, fmt.Sprint(status)
	})
	base := peakRSS(t, dev.Pid())
	const n = 20
	var wg sync.WaitGroup
	type answer struct {
		status int
		rows   int
		by     string
		bytes  int
	}
	answers := make([]answer, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"sql": "SELECT repeat('x', 10000000) AS s FROM range(20)"})
			req, _ := http.NewRequest(http.MethodPost, api+"/v1/sql", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			th.Authorize(req)
			resp, err := (&http.Client{Timeout: 3 * time.Minute}).Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var r struct {
				Rows        [][]string `json:"rows"`
				TruncatedBy string     `json:"truncated_by"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
				t.Error(err)
				return
			}
			answers[i] = answer{status: resp.StatusCode, rows: len(r.Rows), by: r.TruncatedBy}
			for _, row := range r.Rows {
				answers[i].bytes += len(row[0])
			}
		}()
	}
	wg.Wait()
	peak := peakRSS(t, dev.Pid())
	t.Logf("peak RSS %d MiB (before the answers %d MiB)", peak>>20, base>>20)
	for i, a := range answers {
		// 64 MiB of 10 MB strings: 6 rows.
		if a.status != 200 || a.rows != 6 || a.by != "bytes" || a.bytes != 60_000_000 {
			t.Errorf("answer %d: %+v, want 200 with 6 rows cut by bytes", i, a)
		}
	}
	const slots, vector, answerCap = 4, 200 << 20, 64 << 20
	if limit := base + slots*(vector+5*answerCap); peak > limit {
		t.Fatalf("peak RSS %d MiB, over the %d MiB bound", peak>>20, limit>>20)
	}
}

// peakRSS is a process's peak resident set size (VmHWM).
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
