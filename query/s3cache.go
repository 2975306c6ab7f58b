package query

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/lake/objstore"
)

// remoteFiles serves data files of an s3:// warehouse to DuckDB, which
// here reads local files only (no httpfs): every data file of the
// snapshot in service is kept in a bounded local cache (objstore.Cache)
// and the views name the cached copies. docs/S3_READS.md has the
// measurements that chose this over streaming Arrow batches to DuckDB.
//
// Files are fetched when a table's new snapshot is planned, before the
// generation that reads them is published, so a query never waits for a
// download: a cold start pays once, later commits fetch only their new
// files. Each table pins its snapshot's files; files a table stops
// pinning (compaction, expiry) stay Grace (at least the query timeout)
// before they may be evicted.
type remoteFiles struct {
	cache *objstore.Cache

	mu sync.Mutex
	// current maps the locations of the table being planned to their
	// cached paths (plan runs on the refresher goroutine, one table at a
	// time).
	current map[string]string
}

// openRemote builds the cache when the warehouse is on object storage.
// Its directory is added to the directories DuckDB may read.
func (s *Service) openRemote(cfg Config, deps Deps) error {
	st := deps.Catalog.Store()
	if st == nil {
		return nil
	}
	cc := cfg.S3Cache
	if cc.Dir == "" {
		cc.Dir = filepath.Join(os.TempDir(), "eventlake-s3cache")
	}
	if cc.Grace < cfg.QueryTimeout {
		cc.Grace = cfg.QueryTimeout + refreshGraceSlack
	}
	c, err := objstore.NewCache(cc, st, "query", deps.Registry, s.log)
	if err != nil {
		return fmt.Errorf("query.s3_cache: %w", err)
	}
	s.remote = &remoteFiles{cache: c}
	return nil
}

// refreshGraceSlack is added to the query timeout for the eviction grace:
// a query holds its generation from acquiring a connection until it ends.
const refreshGraceSlack = 30 * time.Second

// remoteDirs are the local directories of remote files.
func (s *Service) remoteDirs() []string {
	if s.remote == nil {
		return nil
	}
	return []string{s.remote.cache.Dir()}
}

// fetchRemote makes every remote data file of tasks local (pinned for
// table name) before plan lists them; local files are left alone.
func (s *Service) fetchRemote(ctx context.Context, name string, tasks []table.FileScanTask) error {
	if s.remote == nil {
		return nil
	}
	var wants []objstore.Want
	seen := map[string]bool{}
	for _, t := range tasks {
		loc := t.File.FilePath()
		if !objstore.IsS3(loc) || seen[loc] {
			continue
		}
		seen[loc] = true
		wants = append(wants, objstore.Want{Location: loc, Size: t.File.FileSizeBytes()})
	}
	paths, err := s.remote.cache.Retain(ctx, name, wants)
	if errors.Is(err, objstore.ErrCacheFull) {
		return fmt.Errorf("table %s: %w (query.s3_cache.max_bytes must hold every data file of the snapshots in service)", name, err)
	}
	if err != nil {
		return fmt.Errorf("fetch data files of %s: %w", name, err)
	}
	s.remote.mu.Lock()
	s.remote.current = paths
	s.remote.mu.Unlock()
	return nil
}

// localPath is where DuckDB reads location: the file itself when local,
// its cached copy when remote and fetched by fetchRemote.
func (s *Service) localPath(location string) (string, bool) {
	if p, ok := lake.LocalPath(location); ok {
		return p, true
	}
	if s.remote == nil {
		return "", false
	}
	s.remote.mu.Lock()
	defer s.remote.mu.Unlock()
	p, ok := s.remote.current[location]
	return p, ok
}
