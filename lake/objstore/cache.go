package objstore

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/internal/logkey"
)

// CacheConfig sizes the local file cache.
type CacheConfig struct {
	// Dir holds the cached files (created if missing). Files in it that the
	// cache did not write are removed at start.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the bytes the cache holds. Files that a reader
	// still needs (pinned by Retain) are never evicted; when they fill the
	// bound, Fetch of a new file fails with ErrCacheFull instead of
	// growing the directory.
	MaxBytes int64 `yaml:"max_bytes"`
	// Concurrency bounds parallel downloads.
	Concurrency int `yaml:"concurrency"`
	// Grace keeps a file that readers stopped pinning this long before it
	// may be evicted (a query that started on an older snapshot may still
	// read it): at least the query timeout.
	Grace time.Duration `yaml:"grace"`
}

// Defaults fills unset fields.
func (c *CacheConfig) Defaults() {
	if c.MaxBytes == 0 {
		c.MaxBytes = 10 << 30
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.Grace == 0 {
		c.Grace = time.Minute
	}
}

// Validate checks the settings.
func (c *CacheConfig) Validate() error {
	switch {
	case c.MaxBytes < 1<<20:
		return errors.New("cache max_bytes must be at least 1MiB")
	case c.Concurrency < 1:
		return errors.New("cache concurrency must be positive")
	case c.Grace < 0:
		return errors.New("cache grace must not be negative")
	}
	return nil
}

// ErrCacheFull means the files readers need do not fit in MaxBytes.
var ErrCacheFull = errors.New("local file cache is full")

// ErrCorrupt means a fetched file failed its integrity check.
var ErrCorrupt = errors.New("file failed its integrity check")

// Fetcher downloads one object; Store implements it.
type Fetcher interface {
	Get(ctx context.Context, location string, w io.Writer) (ObjectInfo, error)
}

// Cache keeps local copies of immutable remote files (Iceberg data files
// are never rewritten in place: a new file gets a new name), bounded in
// bytes, evicting the least recently used file that no reader needs.
//
// Integrity: a file is downloaded to a temporary name, its size is checked
// against the size the table's manifest records, and for Parquet its
// leading and trailing magic bytes are checked; only then is it renamed
// into place. Files found in Dir at start are checked the same way
// (size and magic) before they are served.
type Cache struct {
	cfg   CacheConfig
	fetch Fetcher
	log   *slog.Logger
	m     *cacheMetrics
	now   func() time.Time // the grace period's clock

	mu      sync.Mutex
	entries map[string]*entry          // by location
	lru     *list.List                 // of *entry, most recently used at the front
	owners  map[string]map[string]bool // owner -> locations it pins
	bytes   int64
	// reserved are bytes of downloads in flight.
	reserved int64
	inflight map[string]*call
}

type entry struct {
	location string
	path     string
	size     int64
	released time.Time // when the last owner stopped pinning it
	elem     *list.Element
}

type call struct {
	done chan struct{}
	path string
	err  error
}

type cacheMetrics struct {
	hits, misses, evictions, corrupt, full prometheus.Counter
	downloaded                             prometheus.Counter
	bytes                                  prometheus.Gauge
	files                                  prometheus.Gauge
	download                               prometheus.Histogram
}

// SetClock replaces the clock the grace period is measured on (tests step
// it instead of sleeping). Call it before using the cache.
func (c *Cache) SetClock(now func() time.Time) { c.now = now }

// NewCache opens the cache directory, keeps the intact files found there
// and removes anything else. Metrics are named eventlake_<component>_cache_*.
func NewCache(cfg CacheConfig, fetch Fetcher, component string, reg prometheus.Registerer, log *slog.Logger) (*Cache, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("cache dir is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	p := "eventlake_" + component + "_cache_"
	m := &cacheMetrics{
		hits:       prometheus.NewCounter(prometheus.CounterOpts{Name: p + "hits_total", Help: "Remote data files served from the local cache."}),
		misses:     prometheus.NewCounter(prometheus.CounterOpts{Name: p + "misses_total", Help: "Remote data files downloaded into the local cache."}),
		evictions:  prometheus.NewCounter(prometheus.CounterOpts{Name: p + "evictions_total", Help: "Files evicted from the local cache."}),
		corrupt:    prometheus.NewCounter(prometheus.CounterOpts{Name: p + "integrity_failures_total", Help: "Downloaded or found files that failed the size and magic check."}),
		full:       prometheus.NewCounter(prometheus.CounterOpts{Name: p + "full_total", Help: "Fetches refused because needed files fill the cache (raise its max_bytes)."}),
		downloaded: prometheus.NewCounter(prometheus.CounterOpts{Name: p + "downloaded_bytes_total", Help: "Bytes downloaded from object storage into the cache."}),
		bytes:      prometheus.NewGauge(prometheus.GaugeOpts{Name: p + "bytes", Help: "Bytes held by the local cache."}),
		files:      prometheus.NewGauge(prometheus.GaugeOpts{Name: p + "files", Help: "Files held by the local cache."}),
		download: prometheus.NewHistogram(prometheus.HistogramOpts{Name: p + "download_duration_seconds", Help: "Time to download and check one file.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
	}
	reg.MustRegister(m.hits, m.misses, m.evictions, m.corrupt, m.full, m.downloaded, m.bytes, m.files, m.download)
	c := &Cache{cfg: cfg, fetch: fetch, log: log, m: m, now: time.Now, entries: map[string]*entry{}, lru: list.New(), owners: map[string]map[string]bool{}, inflight: map[string]*call{}}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cache directory: %w", err)
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// Dir is the cache directory.
func (c *Cache) Dir() string { return c.cfg.Dir }

// name is the file name of a location: a hash (locations may be long or
// hold characters DuckDB globs treat specially) plus the original
// extension. A sidecar records the location for a restart.
func name(location string) string {
	h := sha256.Sum256([]byte(location))
	ext := filepath.Ext(location)
	if len(ext) > 16 || strings.ContainsAny(ext, "/?*[]{}'") {
		ext = ""
	}
	return hex.EncodeToString(h[:16]) + ext
}

// load indexes the files a previous run left, after checking them.
func (c *Cache) load() error {
	des, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		return fmt.Errorf("read cache directory: %w", err)
	}
	for _, de := range des {
		p := filepath.Join(c.cfg.Dir, de.Name())
		if strings.HasSuffix(de.Name(), ".loc") {
			continue
		}
		loc, rerr := os.ReadFile(p + ".loc")
		fi, serr := de.Info()
		if rerr != nil || serr != nil || !de.Type().IsRegular() || name(string(loc)) != de.Name() || checkFile(p, fi.Size(), isParquet(de.Name())) != nil {
			_ = os.Remove(p)
			_ = os.Remove(p + ".loc")
			continue
		}
		e := &entry{location: string(loc), path: p, size: fi.Size()}
		e.elem = c.lru.PushBack(e)
		c.entries[e.location] = e
		c.bytes += e.size
	}
	// Sidecars whose file is gone.
	for _, de := range des {
		if base, ok := strings.CutSuffix(de.Name(), ".loc"); ok {
			if _, err := os.Stat(filepath.Join(c.cfg.Dir, base)); err != nil {
				_ = os.Remove(filepath.Join(c.cfg.Dir, de.Name()))
			}
		}
	}
	c.m.bytes.Set(float64(c.bytes))
	c.m.files.Set(float64(len(c.entries)))
	return nil
}

// Want is one remote file a reader needs, with the size its table's
// metadata records (0 if unknown).
type Want struct {
	Location string
	Size     int64
}

// Retain makes wants the set of files owner (for example one table of
// the query service) needs: they are pinned against eviction, fetched if
// absent (concurrently), and returned as local paths by location. Files
// owner pinned before and no longer needs become evictable Grace later.
func (c *Cache) Retain(ctx context.Context, owner string, wants []Want) (map[string]string, error) {
	now := c.now()
	set := make(map[string]bool, len(wants))
	for _, w := range wants {
		set[w.Location] = true
	}
	c.mu.Lock()
	prev := c.owners[owner]
	c.owners[owner] = set
	for loc := range prev {
		if e := c.entries[loc]; e != nil && !set[loc] && !c.pinnedLocked(loc) {
			e.released = now
		}
	}
	c.mu.Unlock()
	out := make(map[string]string, len(wants))
	var omu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Concurrency)
	for _, w := range wants {
		g.Go(func() error {
			p, err := c.Fetch(gctx, w.Location, w.Size)
			if err != nil {
				return err
			}
			omu.Lock()
			out[w.Location] = p
			omu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// pinnedLocked reports whether any owner pins location.
func (c *Cache) pinnedLocked(location string) bool {
	for _, set := range c.owners {
		if set[location] {
			return true
		}
	}
	return false
}

// evictableLocked reports whether e may be evicted now.
func (c *Cache) evictableLocked(e *entry, cutoff time.Time) bool {
	return !c.pinnedLocked(e.location) && e.released.Before(cutoff)
}

// Fetch returns the local path of location, downloading it if needed.
func (c *Cache) Fetch(ctx context.Context, location string, size int64) (string, error) {
	c.mu.Lock()
	if e := c.entries[location]; e != nil {
		if size > 0 && e.size != size {
			// Same name, different size: not the file the table means.
			c.removeLocked(e)
		} else {
			c.lru.MoveToFront(e.elem)
			c.mu.Unlock()
			c.m.hits.Inc()
			return e.path, nil
		}
	}
	if cl := c.inflight[location]; cl != nil {
		c.mu.Unlock()
		select {
		case <-cl.done:
			return cl.path, cl.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if size > 0 {
		if err := c.reserveLocked(size); err != nil {
			c.mu.Unlock()
			return "", err
		}
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[location] = cl
	c.mu.Unlock()

	start := time.Now()
	cl.path, cl.err = c.download(ctx, location, size)
	c.m.download.Observe(time.Since(start).Seconds())

	c.mu.Lock()
	delete(c.inflight, location)
	c.reserved -= max(size, 0)
	if cl.err == nil {
		fi, err := os.Stat(cl.path)
		if err != nil {
			cl.err = fmt.Errorf("stat cached %s: %w", location, err)
		} else {
			e := &entry{location: location, path: cl.path, size: fi.Size(), released: c.now()}
			e.elem = c.lru.PushFront(e)
			c.entries[location] = e
			c.bytes += e.size
			c.m.misses.Inc()
			c.m.downloaded.Add(float64(e.size))
			c.evictLocked()
		}
	}
	c.m.bytes.Set(float64(c.bytes))
	c.m.files.Set(float64(len(c.entries)))
	c.mu.Unlock()
	close(cl.done)
	return cl.path, cl.err
}

// reserveLocked makes room for size more bytes, evicting files nobody
// needs; it fails when the needed files leave no room.
func (c *Cache) reserveLocked(size int64) error {
	if size > c.cfg.MaxBytes {
		c.m.full.Inc()
		return fmt.Errorf("%w: one file of %d bytes exceeds the cache's %d bytes", ErrCacheFull, size, c.cfg.MaxBytes)
	}
	cutoff := c.now().Add(-c.cfg.Grace)
	for e := c.lru.Back(); e != nil && c.bytes+c.reserved+size > c.cfg.MaxBytes; {
		prev := e.Prev()
		ent := e.Value.(*entry)
		if c.evictableLocked(ent, cutoff) {
			c.removeLocked(ent)
			c.m.evictions.Inc()
		}
		e = prev
	}
	if c.bytes+c.reserved+size > c.cfg.MaxBytes {
		c.m.full.Inc()
		return fmt.Errorf("%w: %d bytes held by files still needed, %d in flight, %d more wanted, limit %d; raise the cache's max_bytes",
			ErrCacheFull, c.bytes, c.reserved, size, c.cfg.MaxBytes)
	}
	c.reserved += size
	return nil
}

// evictLocked brings the cache back under MaxBytes after a file of unknown
// size was added.
func (c *Cache) evictLocked() {
	cutoff := c.now().Add(-c.cfg.Grace)
	for e := c.lru.Back(); e != nil && c.bytes+c.reserved > c.cfg.MaxBytes; {
		prev := e.Prev()
		if ent := e.Value.(*entry); c.evictableLocked(ent, cutoff) {
			c.removeLocked(ent)
			c.m.evictions.Inc()
		}
		e = prev
	}
}

func (c *Cache) removeLocked(e *entry) {
	if err := os.Remove(e.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Warn("remove cached file", logkey.Path, e.path, logkey.Err, err)
	}
	_ = os.Remove(e.path + ".loc")
	c.lru.Remove(e.elem)
	delete(c.entries, e.location)
	c.bytes -= e.size
}

// download fetches location into the cache directory and checks it.
func (c *Cache) download(ctx context.Context, location string, size int64) (string, error) {
	final := filepath.Join(c.cfg.Dir, name(location))
	tmp, err := os.CreateTemp(c.cfg.Dir, ".part-*")
	if err != nil {
		return "", fmt.Errorf("create cache file: %w", err)
	}
	fail := func(err error) (string, error) {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return "", err
	}
	info, err := c.fetch.Get(ctx, location, tmp)
	if err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(fmt.Errorf("write cache file for %s: %w", location, err))
	}
	if size > 0 && info.Size != size {
		c.m.corrupt.Inc()
		return fail(fmt.Errorf("%w: %s is %d bytes, its table records %d", ErrCorrupt, location, info.Size, size))
	}
	if err := checkFile(tmp.Name(), info.Size, isParquet(location)); err != nil {
		c.m.corrupt.Inc()
		return fail(fmt.Errorf("%w: %s: %v", ErrCorrupt, location, err))
	}
	if err := os.WriteFile(final+".loc", []byte(location), 0o644); err != nil {
		return fail(fmt.Errorf("write cache sidecar: %w", err))
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fail(fmt.Errorf("move cache file into place: %w", err))
	}
	return final, nil
}

var parquetMagic = []byte("PAR1")

func isParquet(name string) bool { return strings.HasSuffix(name, ".parquet") }

// checkFile verifies the size of a cached file and, for Parquet, the
// magic bytes that open and close every complete Parquet file (a
// truncated download or a partial upload fails here).
func checkFile(path string, size int64, parquet bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != size {
		return fmt.Errorf("size %d, expected %d", fi.Size(), size)
	}
	if !parquet {
		return nil
	}
	if size < 12 {
		return fmt.Errorf("%d bytes is too short for Parquet", size)
	}
	var head, tail [4]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return err
	}
	if _, err := f.ReadAt(tail[:], size-4); err != nil {
		return err
	}
	if !bytes.Equal(head[:], parquetMagic) || !bytes.Equal(tail[:], parquetMagic) {
		return errors.New("not a complete Parquet file (magic bytes missing)")
	}
	return nil
}

// Stats is a snapshot of the cache's occupancy.
type Stats struct {
	Files int
	Bytes int64
}

// Stats returns the cache's occupancy.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Files: len(c.entries), Bytes: c.bytes}
}
