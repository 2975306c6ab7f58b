package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/lake"
)

// The crash tests run the log and the shipper in a child process (this
// test binary, running TestCrashChild) and kill it with SIGKILL: from an
// armed failpoint of the commit protocol, the way internal/e2e kills the
// eventlake binary, or from the parent at a random moment. The parent
// then opens the same log directory and catalog, ships, and checks the
// table with DuckDB.

const (
	envChild = "EVENTLAKE_AUDIT_CRASH_CHILD" // the child's mode: "ship" or "stream"
	envDir   = "EVENTLAKE_AUDIT_CRASH_DIR"
	// crashRecords is what the "ship" child appends before it ships.
	crashRecords = 300
	// crashBatch is the shipper's batch in the children: several commits.
	crashBatch = 100
)

// TestCrashChild is the child process; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	mode := os.Getenv(envChild)
	if mode == "" {
		t.Skip("runs only as the child of a crash test")
	}
	dir := os.Getenv(envDir)
	fp, err := failpoint.Parse(os.Getenv(failpoint.EnvVar))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(filepath.Join(dir, "audit"), Options{SegmentBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	cat, com := testLake(t, dir, fp)
	s, err := NewShipper(l, ShipperConfig{MaxBatchRecords: crashBatch, Interval: 20 * time.Millisecond}, ShipperDeps{Catalog: cat, Committer: com})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	switch mode {
	case "ship":
		// Every record is durable before the first commit: a kill at the
		// commit's failpoints falls between the fsync and the commit, or
		// right after the commit, before the segments are deleted.
		for i := range crashRecords {
			if err := l.Append(ctx, rec(fmt.Sprint("r", i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		t.Fatal("the armed failpoint did not fire")
	case "stream":
		// Appends from several goroutines while Run ships; each record is
		// reported on stdout once Append returned (the answer could have
		// been sent), until the parent kills the process.
		go func() { _ = s.Run(ctx) }()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					id := fmt.Sprintf("w%d-%d", w, i)
					if err := l.Append(ctx, rec(id)); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					fmt.Fprintf(os.Stdout, "acked %s %d\n", id, s.committed.Load())
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
}

// startChild runs TestCrashChild in mode with failpoints fp.
func startChild(t *testing.T, dir, mode, fp string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+mode, envDir+"="+dir, failpoint.EnvVar+"="+fp)
	cmd.Stderr = os.Stderr
	return cmd
}

// killedBySIGKILL reports whether err is the exit of a process killed by
// SIGKILL.
func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// recoverAndCount opens the log and the lake the child left, ships what
// is left, and returns the log.
func recoverAndShip(t *testing.T, dir string) *Log {
	t.Helper()
	l := openLog(t, filepath.Join(dir, "audit"), Options{SegmentBytes: 16 << 10})
	s := testShipper(t, l, dir, ShipperConfig{MaxBatchRecords: crashBatch})
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

// storedOffset is how far the table holds the log of node.
func storedOffset(t *testing.T, dir, node string) int64 {
	t.Helper()
	cat, _ := testLake(t, dir, nil)
	tbl, err := cat.LoadTable(context.Background(), lake.TableAuditLog)
	if err != nil {
		return 0
	}
	stored, err := lake.StoredOffsets(tbl)
	if err != nil {
		t.Fatal(err)
	}
	off, _ := stored.Get(TopicPrefix+node, 0)
	return off
}

// TestCrashAtEveryCommitStep kills the shipper with SIGKILL between the
// fsync and the commit (its data files written, nothing committed), right
// after the first commit (before any segment is deleted or the shipper
// learns of it), and after a later commit; a restart then ships, and the
// table holds every record exactly once.
func TestCrashAtEveryCommitStep(t *testing.T) {
	for _, tc := range []struct {
		fp string
		// committed is what the table holds when the child dies.
		committed int64
	}{
		{lake.FailBeforeCommit + "/" + TaskAudit + "=1", 0},
		{lake.FailAfterCommit + "/" + TaskAudit + "=1", crashBatch},
		{lake.FailBeforeCommit + "/" + TaskAudit + "=2", crashBatch},
		{lake.FailAfterCommit + "/" + TaskAudit + "=2", 2 * crashBatch},
	} {
		t.Run(tc.fp, func(t *testing.T) {
			dir := t.TempDir()
			err := startChild(t, dir, "ship", tc.fp).Run()
			if !killedBySIGKILL(err) {
				t.Fatalf("the child was not killed at %s: %v", tc.fp, err)
			}
			node, err := os.ReadFile(filepath.Join(dir, "audit", nodeFile))
			if err != nil {
				t.Fatal(err)
			}
			if got := storedOffset(t, dir, strings.TrimSpace(string(node))); got != tc.committed {
				t.Fatalf("the table holds %d records of the log at the kill, want %d", got, tc.committed)
			}
			segs, err := listSegments(filepath.Join(dir, "audit"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.committed > 0 && segs[0] != 0 {
				t.Fatalf("segments %v: the kill came before any was deleted, yet the first is gone", segs)
			}

			l := recoverAndShip(t, dir)
			if l.Durable() != crashRecords {
				t.Fatalf("the log holds %d records after the restart, want %d", l.Durable(), crashRecords)
			}
			rows, ids, seqs := counts(t, dir)
			if rows != crashRecords || ids != crashRecords || seqs != crashRecords {
				t.Fatalf("rows %d, distinct ids %d, distinct seqs %d; want %d each", rows, ids, seqs, crashRecords)
			}
			r := queryTable(t, dir, "SELECT count(*) FROM audit_log WHERE request_id <> 'r' || log_seq")
			if r[0][0] != int64(0) {
				t.Fatalf("%v rows whose record is not the one appended at their position", r[0][0])
			}
			if got := storedOffset(t, dir, l.Node()); got != crashRecords {
				t.Fatalf("stored offset %d after the restart, want %d", got, crashRecords)
			}
		})
	}
}

// TestCrashWhileAppending kills a process that appends from several
// goroutines while its shipper commits, at a moment the parent picks;
// every record whose Append had returned is in the table after a
// restart, once, and the log's sequence has no gap.
func TestCrashWhileAppending(t *testing.T) {
	dir := t.TempDir()
	cmd := startChild(t, dir, "stream", "")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "acked" {
			continue // the test framework's own lines
		}
		acked[f[1]] = true
		// Kill once some commits happened and more records are arriving.
		if c, _ := strconv.Atoi(f[2]); c >= 500 && !killed {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	if err := cmd.Wait(); !killedBySIGKILL(err) {
		t.Fatalf("the child was not killed: %v (%d records acknowledged)", err, len(acked))
	}

	l := recoverAndShip(t, dir)
	rows, ids, seqs := counts(t, dir)
	if rows != ids || rows != seqs {
		t.Fatalf("rows %d, distinct ids %d, distinct seqs %d: a record is in the table twice", rows, ids, seqs)
	}
	if uint64(rows) != l.Durable() {
		t.Fatalf("the table holds %d records, the log %d", rows, l.Durable())
	}
	r := queryTable(t, dir, "SELECT min(log_seq), max(log_seq) FROM audit_log")
	if r[0][0] != int64(0) || r[0][1] != rows-1 {
		t.Fatalf("log_seq spans %v..%v for %d rows: a gap", r[0][0], r[0][1], rows)
	}
	inTable := map[string]bool{}
	for _, row := range queryTable(t, dir, "SELECT request_id FROM audit_log") {
		inTable[row[0].(string)] = true
	}
	missing := 0
	for id := range acked {
		if !inTable[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged records are not in the table", missing, len(acked))
	}
	t.Logf("%d records acknowledged before the kill, %d in the table (appended but not yet acknowledged when killed: %d)",
		len(acked), rows, rows-int64(len(acked)))
}
