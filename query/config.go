package query

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventlake/eventlake/lake/objstore"
	"github.com/eventlake/eventlake/readmodel"
)

// Config configures the query service.
type Config struct {
	// QueryTimeout bounds one query from the moment it has a connection;
	// DuckDB is interrupted when it expires (504).
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// MaxRows caps the rows /v1/sql returns; a request may ask for fewer.
	MaxRows int `yaml:"max_rows"`
	// MaxAnswerBytes caps the rows of one /v1/sql answer, as JSON: the
	// answer stops before the row that would pass it and says so
	// (truncated, truncated_by "bytes"). It bounds what concurrent huge
	// answers hold in memory: about three times this per query slot.
	MaxAnswerBytes int64 `yaml:"max_answer_bytes"`
	// RefreshInterval is how often the catalog is polled for new snapshots:
	// commits become visible within about this long.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// MemoryLimit is DuckDB's memory_limit ("1GB", "512MB").
	MemoryLimit string `yaml:"memory_limit"`
	// Threads is DuckDB's worker thread count; 0 keeps DuckDB's default
	// (one per core).
	Threads int `yaml:"threads"`
	// MaxConcurrentQueries bounds queries running at once; each holds one
	// DuckDB connection.
	MaxConcurrentQueries int `yaml:"max_concurrent_queries"`
	// QueueTimeout is how long a request waits for a free slot before it is
	// answered 503.
	QueueTimeout time.Duration `yaml:"queue_timeout"`
	// HotMaxRows bounds the fresh rows (not yet in the lake) held in
	// memory (about 400 bytes each with the payload, inside MemoryLimit);
	// when reached, the hot tier waits for ingest to commit. Size it for
	// the event rate times ingest's flush interval, twice over.
	HotMaxRows int `yaml:"hot_max_rows"`
	// TempDir is where DuckDB may spill larger-than-memory operators. Empty
	// disables spilling: such queries fail instead of filling a disk.
	TempDir string `yaml:"temp_dir"`
	// LakeDirs are local directories DuckDB may read besides the catalog's
	// warehouse (tables located elsewhere). Nothing outside the warehouse
	// and these directories is readable.
	LakeDirs []string `yaml:"lake_dirs"`
	// S3Cache is the bounded local cache of data files of an s3://
	// warehouse (query/s3cache.go).
	S3Cache objstore.CacheConfig `yaml:"s3_cache"`
	// TypeViews are views of one event type's rows under names of their
	// own (view name -> event type), beside the view every type gets
	// under its own name. Default: orders and inventory, the read models'
	// inputs (read_models.orders.type, read_models.inventory.type).
	TypeViews map[string]string `yaml:"type_views"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.QueryTimeout == 0 {
		c.QueryTimeout = 30 * time.Second
	}
	if c.MaxRows == 0 {
		c.MaxRows = 10_000
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 500 * time.Millisecond
	}
	if c.MaxAnswerBytes == 0 {
		c.MaxAnswerBytes = 64 << 20
	}
	if c.MemoryLimit == "" {
		c.MemoryLimit = "1GB"
	}
	if c.MaxConcurrentQueries == 0 {
		c.MaxConcurrentQueries = 8
	}
	if c.QueueTimeout == 0 {
		c.QueueTimeout = time.Second
	}
	if c.HotMaxRows == 0 {
		c.HotMaxRows = 1_000_000
	}
	c.S3Cache.Defaults()
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.HotMaxRows < 1000:
		return errors.New("query.hot_max_rows must be at least 1000")
	case c.QueryTimeout < time.Millisecond:
		return fmt.Errorf("query.query_timeout %v is below 1ms", c.QueryTimeout)
	case c.MaxRows < 1:
		return errors.New("query.max_rows must be positive")
	case c.RefreshInterval < 10*time.Millisecond:
		return fmt.Errorf("query.refresh_interval %v is below 10ms", c.RefreshInterval)
	case c.Threads < 0:
		return errors.New("query.threads must not be negative")
	case c.MaxAnswerBytes < 1024:
		return fmt.Errorf("query.max_answer_bytes %d is below 1024", c.MaxAnswerBytes)
	case c.MaxConcurrentQueries < 1:
		return errors.New("query.max_concurrent_queries must be positive")
	case c.QueueTimeout < 0:
		return errors.New("query.queue_timeout must not be negative")
	}
	if err := c.S3Cache.Validate(); err != nil {
		return fmt.Errorf("query.s3_cache: %w", err)
	}
	// The value is spliced into a SET statement; DuckDB checks the unit.
	if strings.ContainsAny(c.MemoryLimit, "'\\;") {
		return fmt.Errorf("query.memory_limit %q is not a size like 1GB", c.MemoryLimit)
	}
	return nil
}

// servedModels are the read-model tables served by default: the
// declared models'.
func servedModels(models []*readmodel.Model) []string {
	var out []string
	for _, m := range models {
		if !slices.Contains(out, m.Name) {
			out = append(out, m.Name)
		}
	}
	return out
}

// View names the service defines beside the tables' own names. Besides
// these, every event type a raw table holds has a view named after it
// (lake.TableName: order.created -> order_created), and TypeViews adds
// aliases.
const (
	ViewEvents = "events"
	ViewDLQ    = "dlq"
)
