package e2e

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// change is the snapshot a table (or the query API) has from at on, time
// counted from the start of a wait.
type change struct {
	at   time.Duration
	snap int64
}

// snapshotAt returns the snapshot of the last change at or before d.
func snapshotAt(changes []change, d time.Duration) int64 {
	var snap int64
	for _, c := range changes {
		if c.at <= d {
			snap = c.snap
		}
	}
	return snap
}

// TestAwaitServed replays the timelines of the wait for the query API to
// serve a table's current snapshot. The first case is the one seen in
// TestCompactionUnderIngest: ingest's last commit (L) is what the test reads
// first, the compactor daemon (another process) commits a compaction (C1) on
// top of it a millisecond later and another (C2) half a second later, and
// the query service, polling every 100 ms, goes from the previous snapshot
// (P) straight to C1, then C2; it never serves L. A wait for the snapshot
// read before polling times out; the wait must follow the catalog. The
// other cases check that the wait still fails when the query service does
// fall behind.
func TestAwaitServed(t *testing.T) {
	const p, l, c1, c2 = 101, 102, 103, 104
	for _, tc := range []struct {
		name            string
		catalog, served []change
		wantErr         string // "" for success
	}{
		{
			name:    "compaction commits on top of the snapshot read first",
			catalog: []change{{0, l}, {time.Millisecond, c1}, {500 * time.Millisecond, c2}},
			served:  []change{{0, p}, {45 * time.Millisecond, c1}, {545 * time.Millisecond, c2}},
		},
		{
			name:    "the query service catches up",
			catalog: []change{{0, l}},
			served:  []change{{0, p}, {250 * time.Millisecond, l}},
		},
		{
			name:    "the query service keeps the previous snapshot",
			catalog: []change{{0, l}, {time.Millisecond, c1}},
			served:  []change{{0, p}},
			wantErr: "still serves snapshot 101 after 1m0s, the catalog's current is 103",
		},
		{
			name:    "the query service keeps a superseded snapshot",
			catalog: []change{{0, l}, {time.Millisecond, c1}, {50 * time.Millisecond, c2}},
			served:  []change{{0, p}, {45 * time.Millisecond, c1}},
			wantErr: "still serves snapshot 103 after 1m0s, the catalog's current is 104",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				current := func() (int64, error) { return snapshotAt(tc.catalog, time.Since(start)), nil }
				served := func() int64 { return snapshotAt(tc.served, time.Since(start)) }
				_, err := awaitServed(time.Minute, 100*time.Millisecond, current, served)
				switch {
				case tc.wantErr == "" && err != nil:
					t.Fatalf("wait failed: %v", err)
				case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
					t.Fatalf("wait returned %v, want an error containing %q", err, tc.wantErr)
				}
			})
		})
	}
}
