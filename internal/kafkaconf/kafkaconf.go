// Package kafkaconf turns eventlake's Kafka connection settings into
// franz-go client options, shared by ingest, produce and the dev broker.
package kafkaconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config is how to reach a Kafka cluster.
type Config struct {
	// Brokers are seed broker host:port addresses.
	Brokers []string `yaml:"brokers"`
	// ClientID identifies this process to the brokers.
	ClientID string `yaml:"client_id"`
	// DialTimeout bounds connecting to a broker.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// TLS encrypts the connections (and authenticates the brokers).
	TLS TLSConfig `yaml:"tls"`
	// SASL authenticates this process to the brokers.
	SASL SASLConfig `yaml:"sasl"`
}

// TLSConfig is TLS to the brokers.
type TLSConfig struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the brokers'
	// certificates; empty: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate and its key (PEM),
	// for brokers that require one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the brokers'
	// certificates (default: the host of the address dialed).
	ServerName string `yaml:"server_name"`
}

// SASLConfig is SASL authentication to the brokers.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password, or PasswordFile: a file holding it (trailing newline
	// ignored), to keep it out of the config.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
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

// Validate checks that the brokers look like host:port and that the TLS
// and SASL settings can be used (files read, mechanism known).
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka.brokers: at least one broker host:port is required")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(strings.TrimSpace(b)); err != nil {
			return fmt.Errorf("kafka.brokers: %q is not host:port: %w", b, err)
		}
	}
	_, err := c.Opts(nil)
	return err
}

// Opts returns the franz-go options for connecting.
func (c *Config) Opts(logger *slog.Logger) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.DialTimeout(c.DialTimeout),
	}
	if logger != nil {
		opts = append(opts, kgo.WithLogger(slogAdapter{logger}))
	}
	if c.TLS.Enabled {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	} else if c.TLS != (TLSConfig{}) {
		return nil, errors.New("kafka.tls: files are set but kafka.tls.enabled is false")
	}
	if c.SASL.Mechanism != "" || c.SASL.Username != "" {
		m, err := c.SASL.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (t TLSConfig) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file %s holds no PEM certificate", t.CAFile)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("kafka.tls: cert_file and key_file go together")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (s SASLConfig) mechanism() (sasl.Mechanism, error) {
	pass := s.Password
	if s.PasswordFile != "" {
		if pass != "" {
			return nil, errors.New("kafka.sasl: set password or password_file, not both")
		}
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.sasl.password_file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	if s.Username == "" || pass == "" {
		return nil, fmt.Errorf("kafka.sasl: mechanism %s needs a username and a password", s.Mechanism)
	}
	switch strings.ToUpper(s.Mechanism) {
	case "PLAIN":
		return plain.Auth{User: s.Username, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: s.Username, Pass: pass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: s.Username, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka.sasl.mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
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

// CheckAccess connects to the brokers once and returns an error when they
// refuse this process: a certificate that does not verify, or SASL
// credentials they do not accept. Retrying cannot mend those, so a process
// should stop with the error rather than retry forever. Brokers that
// cannot be reached at all are not an error here: clients retry until
// they are back. Without TLS and SASL there is nothing to check.
func (c *Config) CheckAccess(ctx context.Context) error {
	if !c.TLS.Enabled && c.SASL.Mechanism == "" {
		return nil // plaintext: nothing to refuse (a broker that wants SASL says so in the client's log)
	}
	ping := func(cfg Config) error {
		opts, err := cfg.Opts(nil)
		if err != nil {
			return err
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return err
		}
		defer cl.Close()
		pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout+5*time.Second)
		defer cancel()
		return cl.Ping(pctx)
	}
	err := ping(*c)
	if err == nil {
		return nil
	}
	brokers := strings.Join(c.Brokers, ",")
	var (
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		ke      *kerr.Error
		first   *kgo.ErrFirstReadEOF
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &host):
		return fmt.Errorf("kafka: TLS to %s failed: %w (check kafka.tls.ca_file and kafka.tls.server_name)", brokers, err)
	case errors.As(err, &ke) && (ke == kerr.SaslAuthenticationFailed || ke == kerr.UnsupportedSaslMechanism || ke == kerr.IllegalSaslState):
		return fmt.Errorf("kafka: %s refused SASL %s authentication as %q: %w (check kafka.sasl)", brokers, c.SASL.Mechanism, c.SASL.Username, err)
	case errors.As(err, &first) && strings.Contains(first.Error(), "SASL"):
		return fmt.Errorf("kafka: %s: %w (set kafka.sasl)", brokers, err)
	case errors.As(err, &first):
		return fmt.Errorf("kafka: %s: %w (check kafka.tls.enabled)", brokers, err)
	case c.SASL.Mechanism == "":
		return nil
	}
	// Brokers close the connection on bad credentials, some without an
	// answer: if they want SASL from a client without it, they are up,
	// and SASL is what they refused.
	bare := *c
	bare.SASL = SASLConfig{}
	if berr := ping(bare); berr == nil || errors.As(berr, &first) {
		return fmt.Errorf("kafka: %s closed the connection when authenticating with SASL %s as %q (%v): wrong username, password or mechanism (check kafka.sasl)",
			brokers, c.SASL.Mechanism, c.SASL.Username, err)
	}
	return nil
}
