// Package objstore is eventlake's access to S3-compatible object storage:
// the connection settings of an s3:// warehouse (shared by every stage
// through the catalog), an S3 client built once per process with bounded
// timeouts, and a bounded local cache of immutable data files for readers
// that can only read local files (the query service's DuckDB has no
// httpfs).
//
// Credentials come from the configuration or, when it names none, from
// the AWS default chain (environment, shared config files, instance
// roles). They are never logged: Config implements slog.LogValuer and
// String with the secrets redacted.
package objstore

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	iceio "github.com/apache/iceberg-go/io"
)

// Path-style settings.
const (
	PathStyleAuto    = "auto"  // path-style with a custom endpoint, virtual-hosted on AWS
	PathStyleAlways  = "true"  // http://endpoint/bucket/key
	PathStyleVirtual = "false" // http://bucket.endpoint/key
	defaultRegion    = "us-east-1"
)

// Config is how to reach the object store of an s3:// warehouse.
type Config struct {
	// Endpoint is the S3 API endpoint of an S3-compatible server
	// (http://127.0.0.1:7070); empty means AWS.
	Endpoint string `yaml:"endpoint"`
	// Region is the bucket's region; us-east-1 when a custom endpoint is
	// set and nothing else names one.
	Region string `yaml:"region"`
	// PathStyle is auto (default), true or false.
	PathStyle string `yaml:"path_style"`
	// AccessKeyID, SecretAccessKey and SessionToken are static
	// credentials; when empty, the AWS default chain is used. Never logged.
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`
	// ConnectTimeout bounds establishing a connection.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ResponseTimeout bounds the wait for the response headers of one
	// request, so that a stalled server turns into a retryable error
	// instead of a hang.
	ResponseTimeout time.Duration `yaml:"response_timeout"`
	// MaxAttempts is how often the SDK tries one request (5xx, throttling,
	// connection errors) before the error reaches eventlake, which then
	// backs off on its own.
	MaxAttempts int `yaml:"max_attempts"`
	// SSE is the server-side encryption every write asks for: "" (the
	// bucket's default), SSEAES256 (SSE-S3) or SSEKMS (SSE-KMS, with
	// SSEKMSKeyID or the account's default key).
	SSE         string `yaml:"sse"`
	SSEKMSKeyID string `yaml:"sse_kms_key_id"`
}

// Server-side encryption settings.
const (
	SSEAES256 = "AES256"
	SSEKMS    = "aws:kms"
)

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.PathStyle == "" {
		c.PathStyle = PathStyleAuto
	}
	if c.Region == "" && c.Endpoint != "" {
		c.Region = defaultRegion
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.ResponseTimeout == 0 {
		c.ResponseTimeout = 30 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
}

// Validate checks the settings.
func (c *Config) Validate() error {
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("catalog.s3.endpoint: %q is not an http(s)://host[:port] URL", c.Endpoint)
		}
	}
	switch c.PathStyle {
	case PathStyleAuto, PathStyleAlways, PathStyleVirtual:
	default:
		return fmt.Errorf("catalog.s3.path_style: %q is not auto, true or false", c.PathStyle)
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return errors.New("catalog.s3: access_key_id and secret_access_key are set together (or neither, for the AWS default chain)")
	}
	if c.SessionToken != "" && c.AccessKeyID == "" {
		return errors.New("catalog.s3.session_token needs access_key_id and secret_access_key")
	}
	switch c.SSE {
	case "", SSEAES256, SSEKMS:
	default:
		return fmt.Errorf("catalog.s3.sse: %q is not %s (SSE-S3) or %s (SSE-KMS)", c.SSE, SSEAES256, SSEKMS)
	}
	if c.SSEKMSKeyID != "" && c.SSE != SSEKMS {
		return fmt.Errorf("catalog.s3.sse_kms_key_id needs sse: %s", SSEKMS)
	}
	switch {
	case c.ConnectTimeout < 0, c.ResponseTimeout < 0:
		return errors.New("catalog.s3: timeouts must not be negative")
	case c.MaxAttempts < 1:
		return errors.New("catalog.s3.max_attempts must be at least 1")
	}
	return nil
}

// usePathStyle resolves PathStyle.
func (c *Config) usePathStyle() bool {
	switch c.PathStyle {
	case PathStyleAlways:
		return true
	case PathStyleVirtual:
		return false
	}
	return c.Endpoint != ""
}

// IcebergProperties are the same settings as iceberg-go FileIO properties
// (s3.*), for the code paths of iceberg-go that build their own client.
// They contain the credentials: never log them.
func (c *Config) IcebergProperties() map[string]string {
	p := map[string]string{}
	if c.Endpoint != "" {
		p[iceio.S3EndpointURL] = c.Endpoint
	}
	if c.Region != "" {
		p[iceio.S3Region] = c.Region
	}
	if c.AccessKeyID != "" {
		p[iceio.S3AccessKeyID] = c.AccessKeyID
		p[iceio.S3SecretAccessKey] = c.SecretAccessKey
	}
	if c.SessionToken != "" {
		p[iceio.S3SessionToken] = c.SessionToken
	}
	p[iceio.S3ForceVirtualAddressing] = strconv.FormatBool(!c.usePathStyle())
	if c.ConnectTimeout > 0 {
		p[iceio.S3ConnectTimeout] = c.ConnectTimeout.String()
	}
	return p
}

// String describes the settings with the secrets redacted.
func (c Config) String() string {
	creds := "default chain"
	if c.AccessKeyID != "" {
		creds = "static key " + Redact(c.AccessKeyID)
	}
	return fmt.Sprintf("endpoint=%q region=%q path_style=%s credentials=%s", c.Endpoint, c.Region, c.PathStyle, creds)
}

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value {
	creds := "default_chain"
	if c.AccessKeyID != "" {
		creds = "static"
	}
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("region", c.Region),
		slog.String("path_style", c.PathStyle),
		slog.String("credentials", creds),
	)
}

// Redact keeps the first four characters of a key id, enough to tell keys
// apart in a support conversation, and hides the rest.
func Redact(s string) string {
	if len(s) <= 4 {
		return "****"
	}
	return s[:4] + strings.Repeat("*", 4)
}

// IsS3 reports whether location is on an S3-compatible store.
func IsS3(location string) bool {
	for _, p := range []string{"s3://", "s3a://", "s3n://"} {
		if strings.HasPrefix(location, p) {
			return true
		}
	}
	return false
}

// SplitURI returns the bucket and key of an s3:// location.
func SplitURI(location string) (bucket, key string, err error) {
	if !IsS3(location) {
		return "", "", fmt.Errorf("%q is not an s3:// location", location)
	}
	u, err := url.Parse(location)
	if err != nil {
		return "", "", fmt.Errorf("parse %q: %w", location, err)
	}
	key = strings.TrimPrefix(u.Path, "/")
	if u.Host == "" {
		return "", "", fmt.Errorf("%q names no bucket", location)
	}
	return u.Host, key, nil
}
