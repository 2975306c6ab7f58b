package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// Config says where readers (the codec) take schemas from.
type Config struct {
	// URL of an external Confluent-compatible schema registry
	// (http[s]://host:port[/path]). Empty: the built-in registry in the
	// catalog database.
	URL string `yaml:"url"`
	// Username and Password are basic-auth credentials for URL; never
	// logged.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// BearerToken authenticates to URL instead of basic auth; never logged.
	BearerToken string `yaml:"bearer_token"`
	// Database is where the built-in registry keeps its tables when the
	// catalog has no SQL database of its own (a REST catalog): a
	// PostgreSQL URI (postgres://...) shared by every process, or a SQLite
	// file. Empty: the catalog's database.
	Database string `yaml:"database"`
	// PollInterval is how often readers look for new versions.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Timeout bounds one request to URL.
	Timeout time.Duration `yaml:"timeout"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.PollInterval <= 0 {
		return fmt.Errorf("schema_registry.poll_interval: %v must be positive", c.PollInterval)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("schema_registry.timeout: %v must be positive", c.Timeout)
	}
	if c.URL != "" && c.Database != "" {
		return errors.New("schema_registry: set url (an external registry) or database (where the built-in one keeps its tables), not both")
	}
	if c.URL == "" {
		if c.Username != "" || c.Password != "" || c.BearerToken != "" {
			return errors.New("schema_registry: credentials are set but url is empty: set url to use an external registry, or remove the credentials to use the built-in one")
		}
		return nil
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("schema_registry.url: %s is not an http:// or https:// URL", redactURL(c.URL))
	}
	if u.User != nil {
		return fmt.Errorf("schema_registry.url: %s carries credentials: put them in schema_registry.username and password instead (the URL appears in error messages)", redactURL(c.URL))
	}
	if c.Password != "" && c.Username == "" {
		return errors.New("schema_registry.password is set without schema_registry.username")
	}
	if c.BearerToken != "" && c.Username != "" {
		return errors.New("schema_registry: set either username/password or bearer_token, not both")
	}
	return nil
}

// redactURL hides the user information of a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return u.String()
}

// String describes the configuration without secrets.
func (c Config) String() string {
	if c.URL == "" {
		return "built-in"
	}
	return fmt.Sprintf("url=%s basic_auth=%t bearer_token=%t", redactURL(c.URL), c.Username != "", c.BearerToken != "")
}

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", redactURL(c.URL)),
		slog.Bool("basic_auth", c.Username != ""),
		slog.Bool("bearer_token", c.BearerToken != ""),
		slog.Duration("poll_interval", c.PollInterval),
		slog.Duration("timeout", c.Timeout),
	)
}

// Client reads schemas from an external Confluent-compatible registry
// (Source). It does not implement Generationer: readers poll Versions every
// PollInterval.
type Client struct {
	cl  *sr.Client
	url string
	// pageSize is how many versions Versions asks GET /schemas for at
	// once (listPage).
	pageSize int
	// noListAll is set once the registry answered GET /schemas with 404 or
	// 405 (registries before Confluent 7): Versions then walks subjects.
	noListAll atomic.Bool
}

// NewClient returns a Client for cfg.URL, which must be set.
func NewClient(cfg Config) (*Client, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.URL == "" {
		return nil, errors.New("schema registry client: schema_registry.url is empty (the built-in registry is the Store)")
	}
	opts := []sr.ClientOpt{
		sr.URLs(cfg.URL),
		sr.HTTPClient(&http.Client{Timeout: cfg.Timeout}),
		sr.UserAgent("eventlake"),
	}
	if cfg.Username != "" {
		opts = append(opts, sr.BasicAuth(cfg.Username, cfg.Password))
	}
	if cfg.BearerToken != "" {
		opts = append(opts, sr.BearerToken(cfg.BearerToken))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry client for %s: %w", redactURL(cfg.URL), err)
	}
	return &Client{cl: cl, url: redactURL(cfg.URL), pageSize: listPage}, nil
}

func fromSR(s sr.SubjectSchema) Version {
	return Version{Subject: s.Subject, Version: s.Version, ID: s.ID, Type: SchemaType(s.Type.String()), Schema: s.Schema.Schema}
}

// notFound reports an HTTP 404 or 405 answer.
func notFound(err error) (*sr.ResponseError, bool) {
	var re *sr.ResponseError
	if errors.As(err, &re) && (re.StatusCode == http.StatusNotFound || re.StatusCode == http.StatusMethodNotAllowed) {
		return re, true
	}
	return nil, false
}

// listPage is how many versions Versions asks GET /schemas for at once:
// Confluent caps unpaginated answers (schema.search.default.limit).
const listPage = 1000

// Versions returns every version of every subject that is not soft-deleted,
// ordered by subject then version (Source). It pages through GET /schemas,
// or walks the subjects on registries without it. A version registered or
// deleted while it pages may be missed until the next call. Schema types
// other than Avro and JSON (Protobuf) are returned with their own type name.
func (c *Client) Versions(ctx context.Context) ([]Version, error) {
	if !c.noListAll.Load() {
		out, err := c.listAll(ctx)
		if err == nil {
			return out, nil
		}
		if _, nf := notFound(err); !nf {
			return nil, fmt.Errorf("list schema versions from %s: %w", c.url, err)
		}
		c.noListAll.Store(true)
	}
	subjects, err := c.cl.Subjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("list subjects from %s: %w", c.url, err)
	}
	out := []Version{}
	for _, subject := range subjects {
		versions, err := c.cl.SubjectVersions(ctx, subject)
		if re, nf := notFound(err); nf && re.ErrorCode == sr.ErrSubjectNotFound.Code {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("list versions of subject %q from %s: %w", subject, c.url, err)
		}
		for _, v := range versions {
			s, err := c.cl.SchemaByVersion(ctx, subject, v)
			if re, nf := notFound(err); nf && re.ErrorCode == sr.ErrVersionNotFound.Code {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read version %d of subject %q from %s: %w", v, subject, c.url, err)
			}
			out = append(out, fromSR(s))
		}
	}
	sortVersions(out)
	return out, nil
}

// listAll pages through GET /schemas. A registry that ignores offset and
// limit answers everything each time: a page with nothing new ends it.
func (c *Client) listAll(ctx context.Context) ([]Version, error) {
	type key struct {
		subject string
		version int
	}
	seen := map[key]bool{}
	out := []Version{}
	for offset := 0; ; {
		page, err := c.cl.AllSchemas(sr.WithParams(ctx, sr.Offset(offset), sr.Limit(c.pageSize)))
		if err != nil {
			return nil, err
		}
		added := 0
		for _, s := range page {
			if k := (key{s.Subject, s.Version}); !seen[k] {
				seen[k] = true
				out = append(out, fromSR(s))
				added++
			}
		}
		if len(page) < c.pageSize || added == 0 {
			break
		}
		offset += len(page)
	}
	sortVersions(out)
	return out, nil
}

// ByID returns the schema with global id, and the first version (by subject
// then version) that uses it, preferring versions that are not
// soft-deleted (Source). Errors wrap ErrSchemaNotFound when the registry
// has no such id.
func (c *Client) ByID(ctx context.Context, id int) (Version, error) {
	s, err := c.cl.SchemaByID(ctx, id)
	if err != nil {
		if _, nf := notFound(err); nf {
			return Version{}, fmt.Errorf("read schema %d from %s: %w: %v", id, c.url, ErrSchemaNotFound, err)
		}
		return Version{}, fmt.Errorf("read schema %d from %s: %w", id, c.url, err)
	}
	v := Version{ID: id, Type: SchemaType(s.Type.String()), Schema: s.Schema}
	for _, deleted := range []bool{false, true} {
		rctx := ctx
		if deleted {
			rctx = sr.WithParams(ctx, sr.ShowDeleted)
		}
		usages, err := c.cl.SchemaVersionsByID(rctx, id)
		if err != nil {
			return Version{}, fmt.Errorf("list versions of schema %d from %s: %w", id, c.url, err)
		}
		if len(usages) == 0 {
			continue
		}
		first := usages[0]
		for _, u := range usages[1:] {
			if u.Subject < first.Subject || (u.Subject == first.Subject && u.Version < first.Version) {
				first = u
			}
		}
		v.Subject, v.Version, v.Deleted = first.Subject, first.Version, deleted
		break
	}
	return v, nil
}
