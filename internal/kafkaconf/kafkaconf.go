// Package kafkaconf turns eventlake's Kafka connection settings into
// franz-go client options, shared by ingest, produce and the dev broker.
package kafkaconf

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is how to reach a Kafka cluster.
type Config struct {
	// Brokers are seed broker host:port addresses.
	Brokers []string `yaml:"brokers"`
	// ClientID identifies this process to the brokers.
	ClientID string `yaml:"client_id"`
	// DialTimeout bounds connecting to a broker.
	DialTimeout time.Duration `yaml:"dial_timeout"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.ClientID == "" {
		c.ClientID = "eventlake"
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
}

// Validate checks that the brokers look like host:port.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka.brokers: at least one broker host:port is required")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(strings.TrimSpace(b)); err != nil {
			return fmt.Errorf("kafka.brokers: %q is not host:port: %w", b, err)
		}
	}
	return nil
}

// Opts returns the franz-go options for connecting.
func (c *Config) Opts(logger *slog.Logger) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.DialTimeout(c.DialTimeout),
	}
	if logger != nil {
		opts = append(opts, kgo.WithLogger(slogAdapter{logger}))
	}
	return opts
}

// slogAdapter forwards franz-go's warnings and errors to slog; its info and
// debug chatter is dropped.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (a slogAdapter) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		a.l.Error("kafka client: "+msg, keyvals...)
	case kgo.LogLevelWarn:
		a.l.Warn("kafka client: "+msg, keyvals...)
	}
}
