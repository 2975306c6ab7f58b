// Package producer publishes canonical envelopes to Kafka the way eventlake
// expects applications to: an idempotent producer (no broker-side
// duplicates on retry), acks from all in-sync replicas, zstd batches, bounded
// buffering, retries with back-off, and an event_id fixed at the source so
// that an application-level retry is recognized downstream.
package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventlake/eventlake/internal/tracing"
)

// Config tunes the producer.
type Config struct {
	// Linger is how long a batch may wait for more records.
	Linger time.Duration `yaml:"linger"`
	// MaxBufferedRecords bounds records waiting to be sent; Publish blocks
	// when it is reached (backpressure instead of unbounded memory).
	MaxBufferedRecords int `yaml:"max_buffered_records"`
	// BatchMaxBytes caps one produce batch.
	BatchMaxBytes int32 `yaml:"batch_max_bytes"`
	// DeliveryTimeout bounds how long a record is retried before failing.
	DeliveryTimeout time.Duration `yaml:"delivery_timeout"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Linger == 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.MaxBufferedRecords == 0 {
		c.MaxBufferedRecords = 100_000
	}
	if c.BatchMaxBytes == 0 {
		c.BatchMaxBytes = 1 << 20
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = 2 * time.Minute
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MaxBufferedRecords < 1 {
		return errors.New("producer.max_buffered_records must be positive")
	}
	if c.BatchMaxBytes < 1<<10 {
		return errors.New("producer.batch_max_bytes must be at least 1KiB")
	}
	return nil
}

// Producer publishes records. It is safe for concurrent use.
type Producer struct {
	cl     *kgo.Client
	log    *slog.Logger
	tracer trace.Tracer
}

// New connects a producer. kafkaOpts carry the seed brokers and client
// id; tp records a producer span per event sent with PublishEvent (nil:
// none).
func New(cfg Config, kafkaOpts []kgo.Opt, logger *slog.Logger, tp trace.TracerProvider) (*Producer, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := append([]kgo.Opt{}, kafkaOpts...)
	opts = append(opts,
		// Idempotence is franz-go's default; acks=all is required for it.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.ProducerLinger(cfg.Linger),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.ProducerBatchMaxBytes(cfg.BatchMaxBytes),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.RetryBackoffFn(func(tries int) time.Duration {
			return min(time.Duration(tries)*100*time.Millisecond, 2*time.Second)
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("create kafka producer: %w", err)
	}
	return &Producer{cl: cl, log: logger, tracer: tracing.Or(tp).Tracer("github.com/eventlake/eventlake/producer")}, nil
}

// NewEventID returns a new event id (a time-ordered UUIDv7). Assign it once
// when the event is created, never per send attempt.
func NewEventID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// PublishRaw sends an already encoded value asynchronously.
func (p *Producer) PublishRaw(ctx context.Context, topic string, key, value []byte, done func(error)) {
	p.cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: value}, func(_ *kgo.Record, err error) {
		if done != nil {
			done(err)
		}
	})
}

// StartEvent starts the producer span of one event, a root span recorded
// at the tracer's sample rate, and returns the ids to write into the
// event's envelope metadata (trace_id, span_id), so that ingest can link
// its batch to it; "" when tracing is off. Send the event with
// PublishEvent, which ends the span.
func (p *Producer) StartEvent(ctx context.Context) (span trace.Span, traceID, spanID string) {
	_, span = p.tracer.Start(ctx, "publish", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindProducer))
	traceID, spanID = tracing.IDs(span.SpanContext())
	return span, traceID, spanID
}

// PublishEvent is PublishRaw for an event started with StartEvent: its
// span is ended when the broker acknowledges the record, or it fails.
func (p *Producer) PublishEvent(ctx context.Context, span trace.Span, topic string, key, value []byte, done func(error)) {
	if span.IsRecording() {
		span.SetName(topic + " publish")
		span.SetAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", topic))
	}
	p.cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: value}, func(r *kgo.Record, err error) {
		if span.IsRecording() && err == nil {
			span.SetAttributes(attribute.Int("messaging.destination.partition.id", int(r.Partition)), attribute.Int64("messaging.kafka.offset", r.Offset))
		}
		tracing.EndSpan(span, err)
		if done != nil {
			done(err)
		}
	})
}

// Flush waits until every buffered record is acknowledged or failed.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush producer: %w", err)
	}
	return nil
}

// Close flushes (bounded by ctx) and disconnects.
func (p *Producer) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	p.cl.Close()
	return err
}

// Client exposes the underlying client (for admin calls in tools).
func (p *Producer) Client() *kgo.Client { return p.cl }
