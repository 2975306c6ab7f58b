package query

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/lake/objstore"
)

// Config configures the query service.
type Config struct {
	// QueryTimeout bounds one query from the moment it has a connection;
	// DuckDB is interrupted when it expires (504).
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// MaxRows caps the rows /v1/sql returns; a request may ask for fewer.
	MaxRows int `yaml:"max_rows"`
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

// RawTable is one raw event table to expose.
type RawTable struct {
	Name  string `yaml:"name"`
	Topic string `yaml:"topic"`
	// Kind is the payload kind: orders, inventory or generic.
	Kind string `yaml:"kind"`
}

// Tables are the lake tables the service exposes.
type Tables struct {
	Raw []RawTable `yaml:"raw"`
	DLQ string     `yaml:"dlq"`
	// ReadModels are served under their own names as committed (the exact
	// merged figures come from the hot tier's endpoints).
	ReadModels []string `yaml:"read_models"`
}

// DefaultTables are the tables ingest writes by default.
func DefaultTables() Tables {
	return Tables{
		Raw: []RawTable{
			{Name: "orders_raw", Topic: "orders.created", Kind: lake.KindOrders},
			{Name: "inventory_raw", Topic: "inventory.updated", Kind: lake.KindInventory},
		},
		DLQ:        "dlq",
		ReadModels: DefaultReadModels(),
	}
}

// DefaultReadModels are the read-model tables the hot tier commits.
func DefaultReadModels() []string {
	return []string{lake.TableOrderRevenueMinute, lake.TableUserActivityMinute, lake.TableInventoryHealth}
}

// View names the service defines beside the tables' own names.
const (
	ViewEvents    = "events"
	ViewOrders    = "orders"
	ViewInventory = "inventory"
	ViewDLQ       = "dlq"
)

// Validate checks that every table has a known layout and that no two
// views would share a name. DuckDB identifiers are case-insensitive, so
// names are compared that way.
func (t Tables) Validate() error {
	if t.DLQ == "" {
		return errors.New("query tables: the dlq table name is required")
	}
	reserved := map[string]string{ViewEvents: "view", ViewOrders: "view", ViewInventory: "view"}
	seen := map[string]bool{}
	kinds := map[string]string{}
	for i, r := range t.Raw {
		if r.Name == "" || r.Topic == "" {
			return fmt.Errorf("query tables: raw[%d]: name and topic are required", i)
		}
		if _, err := lake.RawTableDef(r.Name, r.Topic, r.Kind); err != nil {
			return fmt.Errorf("query tables: raw[%d]: %w", i, err)
		}
		n := strings.ToLower(r.Name)
		if _, ok := reserved[n]; ok || n == ViewDLQ {
			return fmt.Errorf("query tables: raw table %q would hide the %q view; rename it", r.Name, n)
		}
		if seen[n] || n == strings.ToLower(t.DLQ) {
			return fmt.Errorf("query tables: table %q is listed twice", r.Name)
		}
		seen[n] = true
		// The orders and inventory views, and the revenue endpoint, read
		// one table of their kind: two would need a rule to merge their
		// snapshots that nothing defines yet.
		if r.Kind == lake.KindOrders || r.Kind == lake.KindInventory {
			if prev, ok := kinds[r.Kind]; ok {
				return fmt.Errorf("query tables: %q and %q are both of kind %s; the query service reads one table per typed kind", prev, r.Name, r.Kind)
			}
			kinds[r.Kind] = r.Name
		}
	}
	if _, ok := reserved[strings.ToLower(t.DLQ)]; ok {
		return fmt.Errorf("query tables: dlq table %q would hide the %q view; rename it", t.DLQ, strings.ToLower(t.DLQ))
	}
	defs := lake.ReadModelDefs()
	for _, name := range t.ReadModels {
		if _, ok := defs[name]; !ok {
			return fmt.Errorf("query tables: %q is not a read-model table", name)
		}
		n := strings.ToLower(name)
		if seen[n] || n == strings.ToLower(t.DLQ) {
			return fmt.Errorf("query tables: table %q is listed twice", name)
		}
		seen[n] = true
	}
	return nil
}
