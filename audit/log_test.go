package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAppendReopen: concurrent appends all land, once each, in sequence;
// the sequence continues after the log is opened again.
func TestAppendReopen(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	node := l.Node()
	const workers, each = 40, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := l.Append(context.Background(), rec(fmt.Sprintf("w%d-%d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := l.Durable(); got != workers*each {
		t.Fatalf("durable = %d, want %d", got, workers*each)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), rec("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}

	l = openLog(t, dir, Options{})
	if l.Node() != node {
		t.Fatalf("node id changed across opens: %s -> %s", node, l.Node())
	}
	if got := l.Durable(); got != workers*each {
		t.Fatalf("durable after reopen = %d, want %d", got, workers*each)
	}
	if err := l.Append(context.Background(), rec("after")); err != nil {
		t.Fatal(err)
	}
	es, err := l.read(0, 1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != workers*each+1 {
		t.Fatalf("read %d records, want %d", len(es), workers*each+1)
	}
	seen := map[string]bool{}
	for i, e := range es {
		if e.seq != uint64(i) {
			t.Fatalf("record %d has seq %d", i, e.seq)
		}
		if seen[e.rec.RequestID] {
			t.Fatalf("record %s twice", e.rec.RequestID)
		}
		seen[e.rec.RequestID] = true
		if e.rec.Time.IsZero() || e.rec.Time.Location() != time.UTC {
			t.Fatalf("record %d time %v: want stamped, in UTC", i, e.rec.Time)
		}
	}
	if es[len(es)-1].rec.RequestID != "after" {
		t.Fatalf("last record %q, want the one appended after reopening", es[len(es)-1].rec.RequestID)
	}
}

// TestTornTail: whatever a crash leaves after the last fsynced frame is
// cut when the log is opened; appends continue from the last whole
// record and nothing damaged is ever read as a record.
func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
		keep   int // whole records left of 10
	}{
		{"last frame cut by a few bytes", func(b []byte) []byte { return b[:len(b)-3] }, 9},
		{"only part of the last header", func(b []byte) []byte { return b[:len(b)-lastFrameLen(b)+10] }, 9},
		{"last frame's payload flipped", func(b []byte) []byte { b[len(b)-5] ^= 0xff; return b }, 9},
		{"zeros after the last frame (a file extended, not written)", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, 10},
		{"garbage after the last frame", func(b []byte) []byte { return append(b, []byte("\x07\x00\x00\x00garbage that is not a frame")...) }, 10},
		{"a header announcing a huge frame", func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12) }, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if err := l.Append(context.Background(), rec(fmt.Sprint("r", i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			seg := segPath(dir, 0)
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(seg, tc.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}

			l = openLog(t, dir, Options{})
			if got := l.Durable(); got != uint64(tc.keep) {
				t.Fatalf("durable after the damage = %d, want %d", got, tc.keep)
			}
			if err := l.Append(context.Background(), rec("new")); err != nil {
				t.Fatal(err)
			}
			es, err := l.read(0, 100, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != tc.keep+1 {
				t.Fatalf("read %d records, want %d", len(es), tc.keep+1)
			}
			for i, e := range es[:tc.keep] {
				if e.seq != uint64(i) || e.rec.RequestID != fmt.Sprint("r", i) {
					t.Fatalf("record %d: seq %d id %q", i, e.seq, e.rec.RequestID)
				}
			}
			if last := es[tc.keep]; last.seq != uint64(tc.keep) || last.rec.RequestID != "new" {
				t.Fatalf("the record appended after the cut: seq %d id %q", last.seq, last.rec.RequestID)
			}
			// The file holds exactly the whole frames: opening again cuts
			// nothing more.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := openLog(t, dir, Options{})
			if got := l2.Durable(); got != uint64(tc.keep+1) {
				t.Fatalf("durable after a clean reopen = %d, want %d", got, tc.keep+1)
			}
		})
	}
}

// lastFrameLen is the length of the last frame of a segment.
func lastFrameLen(b []byte) int {
	fr := newFrameReader(strings.NewReader(string(b)), 0)
	var prev int64
	for {
		if _, _, err := fr.next(); err != nil {
			return int(fr.off - prev)
		}
		if fr.off == int64(len(b)) {
			return int(fr.off - prev)
		}
		prev = fr.off
	}
}

// TestDamageBeforeTheLastSegment: a damaged frame in a full segment is not
// a torn tail (it was fsynced before the next segment began): reading it
// is an error, never a skip.
func TestDamageBeforeTheLastSegment(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentBytes: 4 << 10, MaxBatchRecords: 1})
	for i := range 100 {
		if err := l.Append(context.Background(), rec(fmt.Sprint("r", i))); err != nil {
			t.Fatal(err)
		}
	}
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 3 {
		t.Fatalf("%d segments; the test needs several", len(segs))
	}
	seg := segPath(dir, segs[0])
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.read(0, 1000, 1<<30); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read over a damaged full segment: %v, want ErrCorrupt", err)
	}
	// A missing segment in the middle is an error too.
	if err := os.Remove(segPath(dir, segs[1])); err != nil {
		t.Fatal(err)
	}
	if _, err := l.read(segs[1]-1, 1000, 1<<30); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read across a missing segment: %v, want ErrCorrupt", err)
	}
}

// TestReadFromTheMiddle: reads resume at any record, across segments, and
// stop at the batch bounds.
func TestReadFromTheMiddle(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentBytes: 4 << 10})
	for i := range 300 {
		if err := l.Append(context.Background(), rec(fmt.Sprint("r", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, from := range []uint64{0, 1, 37, 150, 299, 37, 38} {
		es, err := l.read(from, 50, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		want := min(50, 300-int(from))
		if len(es) != want {
			t.Fatalf("read(%d): %d records, want %d", from, len(es), want)
		}
		for i, e := range es {
			if e.seq != from+uint64(i) || e.rec.RequestID != fmt.Sprint("r", from+uint64(i)) {
				t.Fatalf("read(%d)[%d] = seq %d %q", from, i, e.seq, e.rec.RequestID)
			}
		}
	}
	if es, err := l.read(0, 1000, 1); err != nil || len(es) != 1 {
		t.Fatalf("a byte bound below one record still reads one: %d, %v", len(es), err)
	}
	if es, err := l.read(300, 1000, 1<<30); err != nil || len(es) != 0 {
		t.Fatalf("read at the end: %d, %v", len(es), err)
	}
}

// TestLocked: one Log per directory at a time.
func TestLocked(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, Options{})
	if l2.Node() != l.Node() {
		t.Fatal("node id changed")
	}
}

// TestCollect: a group commit takes what waits, within its bounds.
func TestCollect(t *testing.T) {
	req := func(n int) *request { return &request{payload: make([]byte, n)} }
	for _, tc := range []struct {
		name        string
		first       int
		waiting     []int
		maxRecords  int
		maxBytes    int
		wantBatch   int
		wantCarried bool
	}{
		{"nothing waits", 10, nil, 5, 100, 1, false},
		{"everything fits", 10, []int{10, 10}, 5, 100, 3, false},
		{"record bound", 10, []int{10, 10, 10, 10, 10, 10}, 4, 1000, 4, false},
		{"byte bound carries the next", 10, []int{10, 90, 5}, 10, 100, 2, true},
		{"a first record over the byte bound goes alone", 500, []int{1}, 10, 100, 1, true},
	} {
		ch := make(chan *request, len(tc.waiting))
		for _, n := range tc.waiting {
			ch <- req(n)
		}
		batch, next := collect(req(tc.first), ch, tc.maxRecords, tc.maxBytes)
		if len(batch) != tc.wantBatch || (next != nil) != tc.wantCarried {
			t.Errorf("%s: batch of %d, carried %v; want %d, %v", tc.name, len(batch), next != nil, tc.wantBatch, tc.wantCarried)
		}
	}
}

func TestAppendRefusesInvalidRecords(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	for _, r := range []Record{
		{Kind: KindSQL, Outcome: OutcomeOK},
		{Protocol: ProtocolHTTP, Outcome: OutcomeOK},
		{Protocol: ProtocolHTTP, Kind: KindSQL},
		{Protocol: ProtocolHTTP, Kind: KindSQL, Outcome: OutcomeOK, Rows: -1},
	} {
		if err := l.Append(context.Background(), r); !errors.Is(err, ErrInvalid) {
			t.Errorf("Append(%+v) = %v, want ErrInvalid", r, err)
		}
	}
	if l.Durable() != 0 {
		t.Fatal("an invalid record was logged")
	}
}

func TestCutStatement(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	got := cutStatement(long, 51)
	if !strings.HasPrefix(got, strings.Repeat("é", 25)+" /* eventlake: statement cut, 200 bytes in all */") {
		t.Fatalf("cut at a character boundary: %q", got)
	}
	if cutStatement("short", 51) != "short" || cutStatement(long, -1) != long {
		t.Fatal("short statements and a negative bound keep the text")
	}
}

// TestOpenRefusesForeignSegments: segments without the directory's node
// id cannot be told from another log's.
func TestOpenRefusesForeignSegments(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	if err := l.Append(context.Background(), rec("a")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, nodeFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open without a node id: %v, want ErrCorrupt", err)
	}
}
