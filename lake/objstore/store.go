package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Store is an S3 client built once per process: one connection pool, the
// configured timeouts and retry budget, credentials resolved once.
type Store struct {
	cfg    Config
	aws    aws.Config
	client *s3.Client
}

// New resolves credentials (static ones from cfg, else the AWS default
// chain) and builds the client. It does not contact the server.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hc := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = cfg.ConnectTimeout }).
		WithTransportOptions(func(t *http.Transport) {
			t.ResponseHeaderTimeout = cfg.ResponseTimeout
			t.MaxIdleConns = 256
			t.MaxIdleConnsPerHost = 256
			t.IdleConnTimeout = 90 * time.Second
		})
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithHTTPClient(hc),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = 2 * time.Second
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load aws configuration: %w", err)
	}
	if ac.Region == "" {
		return nil, errors.New("catalog.s3.region: no region configured and none found in the AWS default chain (AWS_REGION)")
	}
	withSSE(&ac, cfg)
	client := s3.NewFromConfig(ac, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.usePathStyle()
		// S3-compatible servers differ in checksum support; send checksums
		// only where the API requires them.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return &Store{cfg: cfg, aws: ac, client: client}, nil
}

// AWSConfig is the shared AWS configuration (HTTP client, retryer,
// credentials); iceberg-go's S3 FileIO uses it when it travels in the
// context (utils.WithAwsConfig).
func (s *Store) AWSConfig() *aws.Config { return &s.aws }

// Config returns the validated settings.
func (s *Store) Config() Config { return s.cfg }

// Client is the underlying S3 client.
func (s *Store) Client() *s3.Client { return s.client }

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Size int64
	ETag string
}

// ErrNotFound means the object or bucket does not exist.
var ErrNotFound = errors.New("object not found")

// Head returns the size and ETag of the object at location.
func (s *Store) Head(ctx context.Context, location string) (ObjectInfo, error) {
	bucket, key, err := SplitURI(location)
	if err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("head %s: %w", location, notFound(err))
	}
	return ObjectInfo{Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag)}, nil
}

// Get copies the object at location to w and returns its size and ETag.
func (s *Store) Get(ctx context.Context, location string, w io.Writer) (ObjectInfo, error) {
	bucket, key, err := SplitURI(location)
	if err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("get %s: %w", location, notFound(err))
	}
	n, cerr := io.Copy(w, out.Body)
	if err := out.Body.Close(); err != nil && cerr == nil {
		cerr = err
	}
	if cerr != nil {
		return ObjectInfo{}, fmt.Errorf("read %s: %w", location, cerr)
	}
	if want := aws.ToInt64(out.ContentLength); want > 0 && n != want {
		return ObjectInfo{}, fmt.Errorf("read %s: got %d of %d bytes", location, n, want)
	}
	return ObjectInfo{Size: n, ETag: aws.ToString(out.ETag)}, nil
}

// Put stores body at location (small objects: tests, probes).
func (s *Store) Put(ctx context.Context, location string, body io.ReadSeeker) error {
	bucket, key, err := SplitURI(location)
	if err != nil {
		return err
	}
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: body}); err != nil {
		return fmt.Errorf("put %s: %w", location, err)
	}
	return nil
}

// MaxSingleCopy is the largest object one CopyObject or PutObject
// request may carry (5 GiB).
const MaxSingleCopy = 5 << 30

// Copy copies the object at from to to on the server (no bytes through
// this process), with storage class class (empty: the bucket's default).
// Objects up to 5 GiB, S3's limit for a single copy.
func (s *Store) Copy(ctx context.Context, from, to, class string) error {
	fb, fk, err := SplitURI(from)
	if err != nil {
		return err
	}
	tb, tk, err := SplitURI(to)
	if err != nil {
		return err
	}
	in := &s3.CopyObjectInput{Bucket: &tb, Key: &tk, CopySource: aws.String(fb + "/" + escapeKey(fk))}
	if class != "" {
		in.StorageClass = types.StorageClass(class)
	}
	if _, err := s.client.CopyObject(ctx, in); err != nil {
		return fmt.Errorf("copy %s to %s: %w", from, to, notFound(err))
	}
	return nil
}

// escapeKey URL-encodes an object key for CopySource, segment by segment
// (slashes stay).
func escapeKey(k string) string {
	parts := strings.Split(k, "/")
	for i, p := range parts {
		// PathEscape keeps "+", which S3 would read as a space.
		parts[i] = strings.ReplaceAll(url.PathEscape(p), "+", "%2B")
	}
	return strings.Join(parts, "/")
}

// PutFile uploads the local file path to location with storage class
// class (empty: the bucket's default).
func (s *Store) PutFile(ctx context.Context, location, path, class string) error {
	bucket, key, err := SplitURI(location)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	in := &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: f}
	if class != "" {
		in.StorageClass = types.StorageClass(class)
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("put %s: %w", location, err)
	}
	return nil
}

// EnsureBucket creates the bucket unless it exists.
func (s *Store) EnsureBucket(ctx context.Context, bucket string) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket}); err == nil {
		return nil
	}
	_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// List returns the keys under prefix of bucket, as s3:// locations.
func (s *Store) List(ctx context.Context, bucket, prefix string) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, "s3://"+bucket+"/"+aws.ToString(o.Key))
		}
	}
	return out, nil
}

func notFound(err error) error {
	var nk *types.NoSuchKey
	var nf *types.NotFound
	var nb *types.NoSuchBucket
	if errors.As(err, &nk) || errors.As(err, &nf) || errors.As(err, &nb) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
