package compactor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/lake/objstore"
)

// Config configures table maintenance. Every duration is wall-clock time
// on the compactor's clock; partition ages are measured against event time
// (raw tables) or ingest time (dead letters), per the table's partition
// spec.
type Config struct {
	// Disabled keeps `eventlake dev` from running the maintenance daemon
	// in-process (`eventlake compact` runs it regardless).
	Disabled bool `yaml:"disabled"`
	// Interval is the pause between two maintenance cycles of the daemon.
	Interval time.Duration `yaml:"interval"`

	// TargetFileSize is the size compacted files aim at. Files at or above
	// 3/4 of it are left alone.
	TargetFileSize int64 `yaml:"target_file_size"`
	// MinInputFiles is the least number of small files of one partition
	// worth rewriting together.
	MinInputFiles int `yaml:"min_input_files"`
	// AllowedLateness is how long after a partition's end late events are
	// still expected: a partition is compacted once its end plus this lies
	// in the past (it is "closed").
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// MaxFilesPerPartition compacts a partition that is still open once it
	// holds this many small files (a backfill, or a far too late stream).
	MaxFilesPerPartition int `yaml:"max_files_per_partition"`
	// OpenMergeFiles merges the small files of a partition that is still
	// open (the current hour, under 1-second commits) while ingest writes
	// to it: files are grouped in size tiers this many times apart, and a
	// tier is merged once it holds this many files. SQL over today then
	// reads a few dozen files per open hour, not thousands, at a write
	// cost of about one rewrite per tier.
	OpenMergeFiles int `yaml:"open_merge_files"`

	// SnapshotMinAge is the contract with readers: a snapshot is never
	// expired (and the files only it references never deleted) until it has
	// stopped being the current snapshot at least this long ago. The query
	// service refreshes every query.refresh_interval (500 ms) and a query
	// runs at most query.query_timeout (30 s); the hot tier's boundary
	// snapshot is refreshed as often. Keep it several minutes above the sum.
	SnapshotMinAge time.Duration `yaml:"snapshot_min_age"`
	// SnapshotRetainLast keeps at least this many snapshots per table for
	// time travel, however old.
	SnapshotRetainLast int `yaml:"snapshot_retain_last"`
	// SnapshotMaxAge keeps every snapshot that was current within this
	// window for time travel; 0 (the default) keeps just the reader
	// contract, SnapshotMinAge. With 1-second commits every minute of
	// window keeps 60 snapshots in the table's metadata.
	SnapshotMaxAge time.Duration `yaml:"snapshot_max_age"`
	// OrphanMinAge is the safety margin of orphan cleanup: only files older
	// than this that no retained snapshot or metadata file references are
	// deleted. It must exceed the longest time between a writer creating a
	// file and committing it (ingest: one batch plus commit retries).
	OrphanMinAge time.Duration `yaml:"orphan_min_age"`
	// OrphanInterval is how often the daemon looks for orphans: it lists
	// every file under each table's location, which is costly on large
	// lakes and pointless every minute.
	OrphanInterval time.Duration `yaml:"orphan_interval"`

	// ColdLocation is where tiered data goes: a file:// URI or local path
	// (made absolute; the query service is allowed to read it), or, with
	// an S3 warehouse, s3://<the warehouse's bucket>/<prefix> (iceberg-go's
	// S3 FileIO serves one bucket per table, so another bucket could not
	// be compacted, erased or expired). Files land under
	// <cold_location>/<namespace>/<table>/data/. Empty disables tiering.
	ColdLocation string `yaml:"cold_location"`
	// ColdStorageClass is the S3 storage class of tiered objects
	// (STANDARD_IA, INTELLIGENT_TIERING, GLACIER_IR, ...: classes that
	// serve reads at once); empty keeps the bucket's default. S3 cold
	// locations only.
	ColdStorageClass string `yaml:"cold_storage_class"`

	// Tables holds per-table policies by table name.
	Tables map[string]TablePolicy `yaml:"tables"`

	// ErasureLogTable is the audit table GDPR erasures are recorded in.
	ErasureLogTable string `yaml:"erasure_log_table"`

	// MemoryLimit bounds the compactor's DuckDB (which reads, sorts and
	// writes Parquet; larger sorts spill to TempDir).
	MemoryLimit string `yaml:"memory_limit"`
	// Threads is DuckDB's thread count; 0 is one per core.
	Threads int `yaml:"threads"`
	// TempDir is where DuckDB spills sorts larger than MemoryLimit.
	TempDir string `yaml:"temp_dir"`

	// UnsafeShortAges lifts the floors on snapshot_min_age, orphan_min_age
	// and interval. Only for tests that must run in seconds: with it, a
	// running query can lose its files.
	UnsafeShortAges bool `yaml:"unsafe_short_ages"`
}

// TablePolicy is the maintenance policy of one table.
type TablePolicy struct {
	// Retention drops whole partitions that ended longer ago than this
	// (0 keeps data forever). Examples: raw events 2160h (90 days), read
	// models 17520h (2 years), dead letters 720h (30 days).
	Retention time.Duration `yaml:"retention"`
	// TierAfter moves partitions that ended longer ago than this to
	// ColdLocation (0: never).
	TierAfter time.Duration `yaml:"tier_after"`
	// NoCompaction leaves the table's files as they are.
	NoCompaction bool `yaml:"no_compaction"`
	// SortOrder is the order compacted files hold their rows in, e.g.
	// ["user_id", "ts"] ("column [asc|desc] [nulls first|nulls last]"
	// each). The compactor makes it the table's Iceberg sort order, which
	// other engines see too. Empty: the table's own sort order if it has
	// one (set by another engine), else event time.
	SortOrder []lake.SortKey `yaml:"sort_order"`
}

// Defaults fills unset fields with safe settings: compaction on, expiry
// with a 10-minute reader contract, no retention and no tiering unless a
// table policy asks for them.
func (c *Config) Defaults() {
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.TargetFileSize == 0 {
		c.TargetFileSize = 128 << 20
	}
	if c.MinInputFiles == 0 {
		c.MinInputFiles = 2
	}
	if c.AllowedLateness == 0 {
		c.AllowedLateness = 10 * time.Minute
	}
	if c.MaxFilesPerPartition == 0 {
		c.MaxFilesPerPartition = 200
	}
	if c.OpenMergeFiles == 0 {
		c.OpenMergeFiles = 8
	}
	if c.SnapshotMinAge == 0 {
		c.SnapshotMinAge = 10 * time.Minute
	}
	if c.SnapshotRetainLast == 0 {
		c.SnapshotRetainLast = 10
	}
	if c.OrphanMinAge == 0 {
		c.OrphanMinAge = 24 * time.Hour
	}
	if c.OrphanInterval == 0 {
		c.OrphanInterval = time.Hour
	}
	if c.ErasureLogTable == "" {
		c.ErasureLogTable = "erasure_log"
	}
	if c.MemoryLimit == "" {
		c.MemoryLimit = "2GB"
	}
}

// Minimum values that keep the reader contract; Validate refuses less.
const (
	// MinSnapshotMinAge is the floor of snapshot_min_age: above the query
	// service's 30 s query timeout plus its refresh interval.
	MinSnapshotMinAge = 31 * time.Second
	// MinOrphanMinAge is the floor of orphan_min_age: above any commit
	// retry window of ingest.
	MinOrphanMinAge = time.Minute
)

// Validate checks the configuration and makes ColdLocation an absolute
// URI. Settings below the reader contract are refused unless
// UnsafeShortAges is set.
func (c *Config) Validate() error {
	unsafe := c.UnsafeShortAges
	var errs []error
	if c.Interval < time.Second && !unsafe {
		errs = append(errs, fmt.Errorf("compactor.interval %v is below 1s", c.Interval))
	}
	if c.TargetFileSize < 1<<20 {
		errs = append(errs, fmt.Errorf("compactor.target_file_size %d is below 1 MiB", c.TargetFileSize))
	}
	if c.MinInputFiles < 2 {
		errs = append(errs, errors.New("compactor.min_input_files must be at least 2"))
	}
	if c.MaxFilesPerPartition < c.MinInputFiles {
		errs = append(errs, errors.New("compactor.max_files_per_partition must be at least min_input_files"))
	}
	if c.OpenMergeFiles < 2 || c.OpenMergeFiles < c.MinInputFiles {
		errs = append(errs, errors.New("compactor.open_merge_files must be at least 2 and at least min_input_files"))
	}
	if c.AllowedLateness < 0 {
		errs = append(errs, errors.New("compactor.allowed_lateness must not be negative"))
	}
	if c.SnapshotMinAge <= 0 || (!unsafe && c.SnapshotMinAge < MinSnapshotMinAge) {
		errs = append(errs, fmt.Errorf("compactor.snapshot_min_age %v is below %v: a running query (30 s) could lose its files", c.SnapshotMinAge, MinSnapshotMinAge))
	}
	if c.OrphanInterval < 0 {
		errs = append(errs, errors.New("compactor.orphan_interval must not be negative"))
	}
	if c.SnapshotRetainLast < 1 {
		errs = append(errs, errors.New("compactor.snapshot_retain_last must be at least 1"))
	}
	if c.SnapshotMaxAge < 0 {
		errs = append(errs, errors.New("compactor.snapshot_max_age must not be negative"))
	}
	if c.OrphanMinAge <= 0 || (!unsafe && c.OrphanMinAge < MinOrphanMinAge) {
		errs = append(errs, fmt.Errorf("compactor.orphan_min_age %v is below %v: files of a commit in flight could be deleted", c.OrphanMinAge, MinOrphanMinAge))
	}
	if c.Threads < 0 {
		errs = append(errs, errors.New("compactor.threads must not be negative"))
	}
	if strings.ContainsAny(c.MemoryLimit, "'\\;") {
		errs = append(errs, fmt.Errorf("compactor.memory_limit %q is not a size like 512MB", c.MemoryLimit))
	}
	if strings.ContainsAny(c.TempDir, "'") {
		errs = append(errs, fmt.Errorf("compactor.temp_dir %q contains a quote", c.TempDir))
	}
	if c.ErasureLogTable == "" || strings.Contains(c.ErasureLogTable, ".") {
		errs = append(errs, fmt.Errorf("compactor.erasure_log_table %q must be one identifier", c.ErasureLogTable))
	}
	if c.ColdLocation != "" {
		loc, err := lake.NormalizeWarehouse(c.ColdLocation)
		if err != nil {
			errs = append(errs, fmt.Errorf("compactor.cold_location: %w", err))
		} else {
			c.ColdLocation = loc
		}
	}
	if c.ColdStorageClass != "" {
		if !objstore.IsS3(c.ColdLocation) {
			errs = append(errs, fmt.Errorf("compactor.cold_storage_class %q needs an s3:// cold_location", c.ColdStorageClass))
		} else if !readableClass(c.ColdStorageClass) {
			errs = append(errs, fmt.Errorf("compactor.cold_storage_class %q: want one of %v (archive classes such as GLACIER and DEEP_ARCHIVE cannot be read without a restore, so queries would fail)", c.ColdStorageClass, readableClasses))
		}
	}
	for name, p := range c.Tables {
		if p.Retention < 0 || p.TierAfter < 0 {
			errs = append(errs, fmt.Errorf("compactor.tables.%s: durations must not be negative", name))
		}
		if p.TierAfter > 0 && c.ColdLocation == "" {
			errs = append(errs, fmt.Errorf("compactor.tables.%s.tier_after is set but compactor.cold_location is empty", name))
		}
		if p.Retention > 0 && p.TierAfter >= p.Retention {
			errs = append(errs, fmt.Errorf("compactor.tables.%s: tier_after %v is not below retention %v", name, p.TierAfter, p.Retention))
		}
		seen := map[string]bool{}
		for _, k := range p.SortOrder {
			if seen[k.Column] {
				errs = append(errs, fmt.Errorf("compactor.tables.%s.sort_order names %s twice", name, k.Column))
			}
			seen[k.Column] = true
		}
	}
	return errors.Join(errs...)
}

// keepAge is how long expiry keeps snapshots: the larger of the reader
// contract and the time-travel window.
func (c *Config) keepAge() time.Duration {
	return max(c.SnapshotMinAge, c.SnapshotMaxAge)
}

// readableClasses are the S3 storage classes whose objects can be read
// without a restore.
var readableClasses = []string{"STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "REDUCED_REDUNDANCY"}

func readableClass(c string) bool { return slices.Contains(readableClasses, c) }
