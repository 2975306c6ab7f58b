package sessionwin

import (
	"fmt"
	"math"
	"time"
)

// Config configures an Engine.
type Config struct {
	// Gap is the longest pause in event time within a session: two events
	// of a key at most Gap apart belong to the same session. Event times
	// are microseconds, so Gap is used in whole microseconds.
	Gap time.Duration `yaml:"gap"`
	// Lateness is subtracted from the largest event time seen to form the
	// watermark. Events at or after the watermark are always applied;
	// older ones only when they fall inside an open session or within Gap
	// after its end.
	Lateness time.Duration `yaml:"lateness"`
	// MaxOpen bounds the sessions held in memory. When a new session would
	// exceed it, the open session with the oldest end is closed early
	// (evicted); see the package documentation for what that costs.
	MaxOpen int `yaml:"max_open"`
	// IdleTimeout, when positive, lets the watermark follow processing
	// time once no event has arrived for that long, so that the last
	// sessions of a quiet stream close. Zero keeps the watermark on event
	// time alone.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ExternalTime leaves the event time the watermark follows to the
	// caller (Engine.SetEventTime) instead of the largest event time Add
	// sees: a reader of several partitions sets it to the least of the
	// latest event times of the partitions it has not read to their end,
	// so that one partition read ahead of the others does not make their
	// events late.
	ExternalTime bool `yaml:"-"`
}

// Default values that Defaults fills in.
const (
	DefaultGap      = 30 * time.Minute
	DefaultLateness = 2 * time.Minute
	DefaultMaxOpen  = 1_000_000
)

// maxMaxOpen keeps slot indices within int32.
const maxMaxOpen = math.MaxInt32 - 1

// Defaults fills unset (zero) fields. IdleTimeout stays zero (off) unless
// set. Like every Defaults in eventlake it cannot tell an unset Lateness
// from a zero one: set Lateness after calling it to allow no lateness.
func (c *Config) Defaults() {
	if c.Gap == 0 {
		c.Gap = DefaultGap
	}
	if c.Lateness == 0 {
		c.Lateness = DefaultLateness
	}
	if c.MaxOpen == 0 {
		c.MaxOpen = DefaultMaxOpen
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Gap < time.Microsecond:
		return fmt.Errorf("sessionwin: gap %v must be at least 1µs (events of a key at most gap apart form a session; 30m is usual)", c.Gap)
	case c.Lateness < 0:
		return fmt.Errorf("sessionwin: lateness %v must not be negative (0 allows no out-of-order events)", c.Lateness)
	case c.MaxOpen < 1:
		return fmt.Errorf("sessionwin: max_open %d must be at least 1 (it bounds the sessions held in memory)", c.MaxOpen)
	case c.MaxOpen > maxMaxOpen:
		return fmt.Errorf("sessionwin: max_open %d exceeds the limit of %d open sessions", c.MaxOpen, maxMaxOpen)
	case c.IdleTimeout < 0:
		return fmt.Errorf("sessionwin: idle_timeout %v must not be negative (0 turns idle progress off)", c.IdleTimeout)
	}
	return nil
}
