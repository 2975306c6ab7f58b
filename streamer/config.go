package streamer

import (
	"errors"
	"fmt"
	"time"
)

// Config configures the hot tier.
type Config struct {
	// Disabled turns the hot tier off (queries then serve the lake only).
	Disabled bool `yaml:"disabled"`
	// ProductsTopic is the product catalog's compacted changelog;
	// EnrichedTopic receives enriched orders. (The orders and inventory
	// topics are the read models' inputs: read_models.)
	ProductsTopic string `yaml:"products_topic"`
	EnrichedTopic string `yaml:"enriched_topic"`
	// TopicRefresh is how often new topics the layout takes by pattern
	// are looked for, so that their fresh rows are served.
	TopicRefresh time.Duration `yaml:"topic_refresh"`
	// Commit makes this process the one that commits the read models and
	// publishes enriched orders. Run it on one process per deployment; a
	// second committer is harmless (the offset fence refuses its
	// duplicate commits) but wasteful.
	Commit bool `yaml:"commit"`
	// CommitInterval is how often read models are committed; the hot tier
	// covers the time in between, so it bounds hot memory, not freshness.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// AllowedLateness is subtracted from the largest event time to form the
	// watermark that closes windows.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// IdleTimeout lets the watermark follow processing time when no events
	// arrive, so that the last windows of an idle stream close.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// RefreshInterval is how often read-model tables are polled for commits
	// made by others (another committer, a backfill).
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// MaxHotEvents bounds the events held in memory; when reached (read
	// models not being committed), fetching pauses.
	MaxHotEvents int `yaml:"max_hot_events"`
	// SSEBuffer is how many recent updates a reconnecting client can resume.
	SSEBuffer int `yaml:"sse_buffer"`
	// ReaggregateEvery, on the committer, recomputes the read-model rows of
	// the last ReaggregateLookback of event time from the raw events (see
	// Backfill): it folds the per-commit deltas into one row per minute.
	// A negative value disables it.
	ReaggregateEvery    time.Duration `yaml:"reaggregate_every"`
	ReaggregateLookback time.Duration `yaml:"reaggregate_lookback"`
	// Stream configures the live push. It is not written under streamer:
	// but as the configuration file's own stream: section (the API's
	// /v1/stream), which cmd/eventlake hands in here.
	Stream StreamConfig `yaml:"-"`
}

// DefaultCoalesce is stream.coalesce when unset.
const DefaultCoalesce = 250 * time.Millisecond

// StreamConfig configures the live push (GET /v1/stream/...): the
// configuration file's stream: section.
type StreamConfig struct {
	// Coalesce holds the updates of this long and sends, per key (a
	// minute), only the latest of them when it ends: a burst of orders
	// into one minute becomes one message per interval instead of one per
	// poll of the topics, at the price of up to this much delay. 0 sends
	// every update at once. nil: DefaultCoalesce.
	Coalesce *time.Duration `yaml:"coalesce"`
}

// Defaults fills unset fields.
func (c *StreamConfig) Defaults() {
	if c.Coalesce == nil {
		d := DefaultCoalesce
		c.Coalesce = &d
	}
}

// Validate checks the configuration; call Defaults first.
func (c *StreamConfig) Validate() error {
	switch d := c.coalesce(); {
	case d < 0:
		return fmt.Errorf("stream.coalesce %v is negative; 0 turns coalescing off", d)
	case d > 0 && d < 10*time.Millisecond:
		return fmt.Errorf("stream.coalesce %v is below 10ms; 0 turns coalescing off", d)
	}
	return nil
}

func (c *StreamConfig) coalesce() time.Duration {
	if c.Coalesce == nil {
		return DefaultCoalesce
	}
	return *c.Coalesce
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.TopicRefresh == 0 {
		c.TopicRefresh = 5 * time.Second
	}
	if c.ProductsTopic == "" {
		c.ProductsTopic = "products.changelog"
	}
	if c.EnrichedTopic == "" {
		c.EnrichedTopic = "orders.enriched"
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = 5 * time.Second
	}
	if c.AllowedLateness == 0 {
		c.AllowedLateness = 2 * time.Minute
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 10 * time.Second
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 500 * time.Millisecond
	}
	if c.MaxHotEvents == 0 {
		c.MaxHotEvents = 5_000_000
	}
	if c.SSEBuffer == 0 {
		c.SSEBuffer = 10_000
	}
	if c.ReaggregateEvery == 0 {
		c.ReaggregateEvery = 15 * time.Minute
	}
	if c.ReaggregateLookback == 0 {
		c.ReaggregateLookback = 3 * time.Hour
	}
	c.Stream.Defaults()
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.ProductsTopic == "" || c.EnrichedTopic == "":
		return errors.New("streamer: topics must not be empty")
	case c.CommitInterval < 10*time.Millisecond:
		return fmt.Errorf("streamer.commit_interval %v is below 10ms", c.CommitInterval)
	case c.AllowedLateness < 0:
		return errors.New("streamer.allowed_lateness must not be negative")
	case c.IdleTimeout < time.Millisecond:
		return errors.New("streamer.idle_timeout must be positive")
	case c.RefreshInterval < 10*time.Millisecond:
		return fmt.Errorf("streamer.refresh_interval %v is below 10ms", c.RefreshInterval)
	case c.MaxHotEvents < 1000:
		return errors.New("streamer.max_hot_events must be at least 1000")
	case c.ReaggregateLookback < 0:
		return errors.New("streamer.reaggregate_lookback must not be negative")
	case c.TopicRefresh < 100*time.Millisecond:
		return errors.New("streamer.topic_refresh must be at least 100ms")
	case c.SSEBuffer < 1:
		return errors.New("streamer.sse_buffer must be positive")
	}
	return c.Stream.Validate()
}
