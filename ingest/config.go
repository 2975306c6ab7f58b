package ingest

import (
	"errors"
	"fmt"
	"time"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// Config configures the ingester.
type Config struct {
	// Group is the Kafka consumer group. Processes sharing it share the work.
	Group string `yaml:"group"`
	// InstanceID, if set, makes this process a static group member
	// (KIP-345): restarted under the same id after a crash, it takes its
	// partitions back at once instead of waiting out the session timeout.
	// Every process of the group needs its own id (e.g. the pod name).
	InstanceID string `yaml:"instance_id"`
	// SessionTimeout is how long the group waits for a silent member
	// before giving its partitions to others.
	SessionTimeout time.Duration `yaml:"session_timeout"`

	// Topics maps topics to raw tables explicitly.
	Topics []lake.TopicTable `yaml:"topics"`
	// TopicPattern also takes every topic it matches (a Go regexp,
	// anchored), picked up while ingest runs: a new matching topic is
	// consumed within TopicRefresh and its table is created on its first
	// event, named lake.TableName(topic).
	TopicPattern string `yaml:"topic_pattern"`
	// ExcludeTopics are never taken by the pattern.
	ExcludeTopics []string `yaml:"exclude_topics"`
	// TopicRefresh is how often the cluster is asked for new topics (with
	// a pattern).
	TopicRefresh time.Duration `yaml:"topic_refresh"`
	// DLQTable receives every rejected message.
	DLQTable string `yaml:"dlq_table"`
	// DLQTopic, if set, also receives every rejected message (after it is
	// committed to DLQTable), with reason headers.
	DLQTopic string `yaml:"dlq_topic"`

	// Contract is the envelope contract every message is checked against
	// (max_message_bytes, max_future, min_event_time,
	// max_identifier_bytes, unknown_types). The hot tier uses the same.
	Contract schema.Contract `yaml:",inline"`

	// A batch is flushed and committed when any of these is reached.
	FlushInterval time.Duration `yaml:"flush_interval"`
	FlushRows     int           `yaml:"flush_rows"`
	FlushBytes    int64         `yaml:"flush_bytes"`

	// DedupeWindow is how many offsets of a partition are looked back to
	// drop producer retries: an event whose event_id occurred in the same
	// partition within that many offsets is a duplicate (see
	// internal/dedupe). 0 disables deduplication.
	DedupeWindow int `yaml:"dedupe_window"`
	// RowGroupRows caps Parquet row groups.
	RowGroupRows int64 `yaml:"row_group_rows"`
	// MemoryLimit is the memory an ingest process is meant to live in
	// (default 768 MiB). A quarter of it bounds the batch's Arrow
	// builders and Parquet writers, whatever the number of table
	// partitions the batch touches: past it the batch's open files are
	// closed early (a partition then has several files in one commit)
	// and reading waits until their memory is freed. `eventlake ingest`
	// also makes it the Go runtime's soft memory limit (unless GOMEMLIMIT
	// is set).
	MemoryLimit int64 `yaml:"memory_limit"`
	// FetchMaxBytes bounds one fetch response, and with it the memory
	// buffered while a commit is in progress.
	FetchMaxBytes int32 `yaml:"fetch_max_bytes"`
	// CommitRetryMax caps the back-off between commit attempts when the
	// catalog or storage is failing.
	CommitRetryMax time.Duration `yaml:"commit_retry_max"`
	// CommitTimeout bounds one commit attempt: a catalog that does not
	// answer becomes a retry whose outcome is looked up by commit id.
	CommitTimeout time.Duration `yaml:"commit_timeout"`
	// ShutdownTimeout bounds the final flush on exit.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// DefaultTopics are the topics and tables of the canonical event streams.
func DefaultTopics() []lake.TopicTable {
	return []lake.TopicTable{
		{Topic: "orders.created", Table: "orders_raw"},
		{Topic: "inventory.updated", Table: "inventory_raw"},
	}
}

// Defaults fills unset fields. The flush defaults aim at a few seconds of
// freshness: a batch is committed every 2 s, or at 2M records or 128 MiB
// of messages if those come first (at 300k events/s that is ~600k rows,
// one healthy Parquet file per table and hour, and bounded memory).
func (c *Config) Defaults() {
	if c.Group == "" {
		c.Group = "eventlake-ingest"
	}
	if len(c.Topics) == 0 && c.TopicPattern == "" {
		c.Topics = DefaultTopics()
	}
	if c.TopicRefresh == 0 {
		c.TopicRefresh = 5 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 15 * time.Second
	}
	if c.DLQTable == "" {
		c.DLQTable = "dlq"
	}
	c.Contract.Defaults()
	if c.FlushInterval == 0 {
		c.FlushInterval = 2 * time.Second
	}
	if c.FlushRows == 0 {
		c.FlushRows = 2_000_000
	}
	if c.FlushBytes == 0 {
		c.FlushBytes = 128 << 20
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = 100_000
	}
	if c.RowGroupRows == 0 {
		c.RowGroupRows = 256 * 1024
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = 768 << 20
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = 8 << 20
	}
	if c.CommitRetryMax == 0 {
		c.CommitRetryMax = 10 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = defaultCommitTimeout
	}
}

// BatchMemory is the budget of a batch's Arrow builders and Parquet
// writers (see MemoryLimit).
func (c *Config) BatchMemory() int64 { return c.MemoryLimit / 4 }

// Layout is the table layout this configuration describes.
func (c *Config) Layout() (*lake.Layout, error) {
	return lake.NewLayout(lake.LayoutConfig{Topics: c.Topics, Pattern: c.TopicPattern, Exclude: c.ExcludeTopics, DLQ: c.DLQTable})
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Group == "" {
		return errors.New("ingest.group is required")
	}
	if _, err := c.Layout(); err != nil {
		return err
	}
	if err := c.Contract.Validate(); err != nil {
		return fmt.Errorf("ingest.%w", err)
	}
	switch {
	case c.FlushInterval < 10*time.Millisecond:
		return fmt.Errorf("ingest.flush_interval %v is below 10ms", c.FlushInterval)
	case c.FlushRows < 1:
		return errors.New("ingest.flush_rows must be positive")
	case c.FlushBytes < 1<<10:
		return errors.New("ingest.flush_bytes must be at least 1KiB")
	case c.DedupeWindow < 0:
		return errors.New("ingest.dedupe_window must not be negative")
	case c.SessionTimeout < 6*time.Second:
		return errors.New("ingest.session_timeout must be at least 6s (brokers refuse shorter ones)")
	case c.MemoryLimit < 64<<20:
		return errors.New("ingest.memory_limit must be at least 64MiB")
	case c.FetchMaxBytes < 1<<20:
		return errors.New("ingest.fetch_max_bytes must be at least 1MiB")
	case c.TopicRefresh < 100*time.Millisecond:
		return errors.New("ingest.topic_refresh must be at least 100ms")
	}
	return nil
}
