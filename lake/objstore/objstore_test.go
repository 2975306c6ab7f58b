package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/lake/objstore"
)

func newStore(t *testing.T, s3 *th.S3Server) *objstore.Store {
	t.Helper()
	st, err := objstore.New(context.Background(), objstore.Config{Endpoint: s3.Endpoint, AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// fakeParquet is a byte string that passes the magic check.
func fakeParquet(n int) []byte {
	b := bytes.Repeat([]byte{'x'}, n)
	copy(b, "PAR1")
	copy(b[n-4:], "PAR1")
	return b
}

func TestStoreAndCacheAgainstVersitygw(t *testing.T) {
	s3 := th.StartS3(t)
	st := newStore(t, s3)
	ctx := context.Background()
	if err := st.EnsureBucket(ctx, s3.Bucket); err != nil {
		t.Fatal(err)
	}
	loc := func(i int) string { return fmt.Sprintf("s3://%s/t/data/f-%d.parquet", s3.Bucket, i) }
	for i := range 4 {
		if err := st.Put(ctx, loc(i), bytes.NewReader(fakeParquet(400_000))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Put(ctx, loc(9), bytes.NewReader([]byte("PAR1 truncated"))); err != nil {
		t.Fatal(err)
	}
	info, err := st.Head(ctx, loc(0))
	if err != nil || info.Size != 400_000 {
		t.Fatalf("head: %+v %v", info, err)
	}
	if _, err := st.Head(ctx, loc(7)); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("head of a missing object: %v, want ErrNotFound", err)
	}

	dir := t.TempDir()
	cfg := objstore.CacheConfig{Dir: dir, MaxBytes: 1 << 20, Grace: time.Hour}
	c, err := objstore.NewCache(cfg, st, "test", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	paths, err := c.Retain(ctx, "t", []objstore.Want{{loc(0), 400_000}, {loc(1), 400_000}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(paths[loc(0)])
	if err != nil || !bytes.Equal(got, fakeParquet(400_000)) {
		t.Fatalf("cached copy differs: %v", err)
	}
	// A third needed file does not fit: refused, not grown past the bound.
	if _, err := c.Fetch(ctx, loc(2), 400_000); !errors.Is(err, objstore.ErrCacheFull) {
		t.Fatalf("fetch beyond the bound: %v, want ErrCacheFull", err)
	}
	// Integrity: wrong size or no Parquet magic is refused.
	if _, err := c.Fetch(ctx, loc(9), 12345); !errors.Is(err, objstore.ErrCorrupt) {
		t.Fatalf("size mismatch: %v, want ErrCorrupt", err)
	}
	if _, err := c.Fetch(ctx, loc(9), 0); !errors.Is(err, objstore.ErrCorrupt) {
		t.Fatalf("truncated parquet: %v, want ErrCorrupt", err)
	}
	if s := c.Stats(); s.Files != 2 || s.Bytes != 800_000 {
		t.Fatalf("stats %+v", s)
	}

	// A restart keeps intact files and drops damaged ones.
	if err := os.WriteFile(paths[loc(1)], []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".part-leftover"), []byte("x"), 0o644)
	c2, err := objstore.NewCache(objstore.CacheConfig{Dir: dir, MaxBytes: 1 << 20, Grace: time.Nanosecond}, st, "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := c2.Stats(); s.Files != 1 || s.Bytes != 400_000 {
		t.Fatalf("after restart: %+v, want the one intact file", s)
	}
	// With (almost) no grace, files nobody pins are evicted least recently used first.
	for _, i := range []int{1, 2, 3} {
		if _, err := c2.Fetch(ctx, loc(i), 400_000); err != nil {
			t.Fatal(err)
		}
		if s := c2.Stats(); s.Bytes > 1<<20 {
			t.Fatalf("cache holds %d bytes, bound %d", s.Bytes, 1<<20)
		}
	}
	des, _ := os.ReadDir(dir)
	var parquet int
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".parquet") {
			parquet++
		}
	}
	if parquet != 2 {
		t.Fatalf("%d parquet files on disk, want 2", parquet)
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	c := objstore.Config{Endpoint: "http://127.0.0.1:1", AccessKeyID: "AKIASECRETKEYID", SecretAccessKey: "very-secret", SessionToken: "tok-secret"}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "s3", c)
	out := buf.String() + c.String() + fmt.Sprint(c) + fmt.Sprintf("%v %+v", c, c)
	for _, secret := range []string{"very-secret", "tok-secret", "SECRETKEYID"} {
		if strings.Contains(out, secret) {
			t.Fatalf("output contains %q: %s", secret, out)
		}
	}
	for _, bad := range []objstore.Config{
		{Endpoint: "127.0.0.1:9000"},
		{AccessKeyID: "a"},
		{PathStyle: "maybe"},
	} {
		bad.Defaults()
		if bad.Validate() == nil {
			t.Fatalf("%+v validated", bad)
		}
	}
}

// TestCachePinsServedFiles checks that files an owner pins survive any
// pressure, and that files it stops pinning become evictable only after
// the grace period.
func TestCachePinsServedFiles(t *testing.T) {
	s3 := th.StartS3(t)
	st := newStore(t, s3)
	ctx := context.Background()
	loc := func(i int) string { return fmt.Sprintf("s3://%s/p/f-%d.parquet", s3.Bucket, i) }
	for i := range 3 {
		if err := st.Put(ctx, loc(i), bytes.NewReader(fakeParquet(600_000))); err != nil {
			t.Fatal(err)
		}
	}
	c, err := objstore.NewCache(objstore.CacheConfig{Dir: t.TempDir(), MaxBytes: 1_400_000, Grace: time.Minute}, st, "pin", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	c.SetClock(func() time.Time { return now })
	if _, err := c.Retain(ctx, "a", []objstore.Want{{loc(0), 600_000}, {loc(1), 600_000}}); err != nil {
		t.Fatal(err)
	}
	// Both pinned: a third file does not fit.
	if _, err := c.Fetch(ctx, loc(2), 600_000); !errors.Is(err, objstore.ErrCacheFull) {
		t.Fatalf("got %v, want ErrCacheFull", err)
	}
	// The owner moves on (compaction replaced file 0): still protected
	// during the grace period, evictable after it.
	if _, err := c.Retain(ctx, "a", []objstore.Want{{loc(1), 600_000}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(ctx, loc(2), 600_000); !errors.Is(err, objstore.ErrCacheFull) {
		t.Fatalf("within grace: got %v, want ErrCacheFull", err)
	}
	now = now.Add(59 * time.Second)
	if _, err := c.Fetch(ctx, loc(2), 600_000); !errors.Is(err, objstore.ErrCacheFull) {
		t.Fatalf("a second before the grace ends: got %v, want ErrCacheFull", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := c.Fetch(ctx, loc(2), 600_000); err != nil {
		t.Fatalf("after grace: %v", err)
	}
	if s := c.Stats(); s.Files != 2 || s.Bytes != 1_200_000 {
		t.Fatalf("stats %+v, want files 1 and 2", s)
	}
}

// TestServerSideEncryption: with catalog.s3.sse set, every request that
// writes an object asks for it (seen by a proxy in front of versitygw),
// and requests that do not write carry nothing.
func TestServerSideEncryption(t *testing.T) {
	s3 := th.StartS3(t)
	px := th.StartHTTPFaultProxy(t, s3.Endpoint)
	px.RecordHeader("X-Amz-Server-Side-Encryption")
	ctx := context.Background()
	plain := newStore(t, s3)
	if err := plain.EnsureBucket(ctx, s3.Bucket); err != nil {
		t.Fatal(err)
	}
	st, err := objstore.New(ctx, objstore.Config{Endpoint: px.URL, AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey, SSE: objstore.SSEAES256})
	if err != nil {
		t.Fatal(err)
	}
	put, copied, file := "s3://"+s3.Bucket+"/sse/put", "s3://"+s3.Bucket+"/sse/copy", "s3://"+s3.Bucket+"/sse/file"
	if err := st.Put(ctx, put, bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	if err := st.Copy(ctx, put, copied, ""); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(local, []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.PutFile(ctx, file, local, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Head(ctx, put); err != nil {
		t.Fatal(err)
	}
	rec := px.Recorded()
	for _, loc := range []string{put, copied, file} {
		if got := rec["PUT /"+strings.TrimPrefix(loc, "s3://")]; got != objstore.SSEAES256 {
			t.Errorf("PUT %s asked for server-side encryption %q, want %s (recorded: %v)", loc, got, objstore.SSEAES256, rec)
		}
	}
	if len(rec) != 3 {
		t.Errorf("recorded %v: only the three writes should carry the header", rec)
	}
	for _, bad := range []objstore.Config{{SSE: "aes"}, {SSEKMSKeyID: "k"}, {SSE: objstore.SSEAES256, SSEKMSKeyID: "k"}} {
		bad.Defaults()
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", bad)
		}
	}
}
