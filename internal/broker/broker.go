// Package broker embeds a Kafka-protocol broker (franz-go's kfake) for the
// embedded default and for tests: it listens on a real TCP address, so any
// Kafka client (kcat, librdkafka, Java) can produce to it, and it persists
// its log in a data directory across restarts, including kill -9.
//
// It is a development broker: one node, no replication. Production runs
// point eventlake at a real Kafka cluster with --brokers.
package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eventlake/eventlake/internal/logkey"
)

// Topic is a topic to create at start.
type Topic struct {
	Name       string            `yaml:"name"`
	Partitions int32             `yaml:"partitions"`
	Configs    map[string]string `yaml:"configs"`
}

// Config configures the embedded broker.
type Config struct {
	// Listen is host:port; port 0 picks a free port. The host is also the
	// address advertised to clients, so it must be reachable by them.
	Listen string `yaml:"listen"`
	// DataDir persists the log; empty keeps everything in memory.
	DataDir string `yaml:"data_dir"`
	// SyncWrites fsyncs every produced batch (survives power loss, slower).
	SyncWrites bool `yaml:"sync_writes"`
	// Topics are created at start if missing (explicitly created topics are
	// the ones kfake persists).
	Topics []Topic `yaml:"topics"`
	// MaxMessageBytes is the broker's message.max.bytes.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// TLS serves Kafka over TLS with this certificate and key (PEM).
	TLS TLSConfig `yaml:"tls"`
	// SASLUsers, when set, are the only clients allowed in: each must
	// authenticate with its mechanism (PLAIN, SCRAM-SHA-256,
	// SCRAM-SHA-512) before any request.
	SASLUsers []SASLUser `yaml:"sasl_users"`
}

// TLSConfig is the broker's certificate.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// SASLUser is a client the broker lets in.
type SASLUser struct {
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// DefaultTopics are the canonical streams with their partition counts:
// the event topics, the product catalog (a compacted changelog) and the
// enriched orders the hot tier publishes.
func DefaultTopics() []Topic {
	return []Topic{
		{Name: "orders.created", Partitions: 6},
		{Name: "inventory.updated", Partitions: 3},
		{Name: "products.changelog", Partitions: 1, Configs: map[string]string{"cleanup.policy": "compact"}},
		{Name: "orders.enriched", Partitions: 6},
	}
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9092"
	}
	if c.Topics == nil {
		c.Topics = DefaultTopics()
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 8 << 20
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("broker listen address %q: %w", c.Listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return fmt.Errorf("broker listen address %q: name a concrete host; it is advertised to clients", c.Listen)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("broker listen address %q: bad port", c.Listen)
	}
	for _, t := range c.Topics {
		if t.Name == "" || t.Partitions < 1 {
			return fmt.Errorf("broker topic %q: a name and at least one partition are required", t.Name)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("broker.tls: cert_file and key_file go together")
	}
	for i, u := range c.SASLUsers {
		u.Mechanism = strings.ToUpper(u.Mechanism)
		c.SASLUsers[i].Mechanism = u.Mechanism
		switch u.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return fmt.Errorf("broker.sasl_users: mechanism %q of %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", u.Mechanism, u.Username)
		}
		if u.Username == "" || u.Password == "" {
			return errors.New("broker.sasl_users: every user needs a username and a password")
		}
	}
	return nil
}

// Broker is a running embedded broker.
type Broker struct {
	c    *kfake.Cluster
	addr string
}

// Start starts the broker and creates missing topics.
func Start(cfg Config, logger *slog.Logger) (*Broker, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, portS, _ := net.SplitHostPort(cfg.Listen)
	port, _ := strconv.Atoi(portS)
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.ClusterID("eventlake-dev"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(cfg.MaxMessageBytes)}),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker.tls: %w", err)
		}
		opts = append(opts, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}
	if len(cfg.SASLUsers) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range cfg.SASLUsers {
			opts = append(opts, kfake.Superuser(u.Mechanism, u.Username, u.Password))
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		// The command that started it adds the flag that moves it
		// (errors.Is(err, syscall.EADDRINUSE)).
		return nil, fmt.Errorf("start embedded broker on %s: %w", cfg.Listen, err)
	}
	b := &Broker{c: c, addr: c.ListenAddrs()[0]}
	for _, t := range cfg.Topics {
		if err := c.CreateTopic(t.Name, t.Partitions, t.Configs); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			c.Close()
			return nil, fmt.Errorf("create topic %s: %w", t.Name, err)
		}
	}
	if logger != nil {
		logger.Info("embedded broker listening", logkey.Component, "broker", logkey.Addr, b.addr, "data_dir", cfg.DataDir,
			"tls", cfg.TLS.CertFile != "", "sasl_users", len(cfg.SASLUsers))
	}
	return b, nil
}

// Addr is the host:port clients connect to.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker, persisting its state.
func (b *Broker) Close() { b.c.Close() }
