// Package tracing sets up OpenTelemetry tracing for one eventlake process:
// a tracer provider that samples a fraction of root spans and sends them
// over OTLP/HTTP, W3C trace context for HTTP requests, and the helpers
// that carry trace ids through the event envelope's metadata (trace_id,
// span_id), so that a chain producer -> ingest batch can be followed.
//
// Tracing is off unless an endpoint is configured; then the provider is
// OpenTelemetry's no-op one, whose spans cost a few nanoseconds and are
// never recorded. Components take a trace.TracerProvider in their Deps
// (nil: no-op); nothing here is global.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config is the `tracing` section.
type Config struct {
	// Endpoint is the OTLP/HTTP receiver, e.g. http://collector:4318
	// (/v1/traces is added to a URL without a path). Empty: tracing is off.
	Endpoint string `yaml:"endpoint"`
	// SampleRate is the fraction of root spans recorded: ingest batches,
	// hot-tier updates and commits, query requests without a sampled
	// traceparent, produced events. A request whose traceparent says
	// "sampled" is always recorded, so a dashboard's trace continues.
	// Default 0.1: at ingest's 2 s flush interval, a batch trace every
	// ~20 s; the cost is per batch, not per event (docs/BENCHMARKS.md).
	SampleRate float64 `yaml:"sample_rate"`
	// ServiceName names the process in the tracing backend (default
	// eventlake-<subcommand>, e.g. eventlake-ingest).
	ServiceName string `yaml:"service_name"`
}

// DefaultSampleRate is SampleRate's default.
const DefaultSampleRate = 0.1

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.SampleRate == 0 {
		c.SampleRate = DefaultSampleRate
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.SampleRate < 0 || c.SampleRate > 1 {
		return fmt.Errorf("tracing.sample_rate %v must be between 0 and 1 (to trace nothing, leave tracing.endpoint empty)", c.SampleRate)
	}
	if c.Endpoint == "" {
		return nil
	}
	if _, err := exportURL(c.Endpoint); err != nil {
		return err
	}
	return nil
}

// exportURL is the URL spans are posted to.
func exportURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("tracing.endpoint %q is not an http(s) URL like http://collector:4318", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Provider is the process's tracer provider.
type Provider struct {
	trace.TracerProvider
	sdk *sdktrace.TracerProvider // nil when off
}

// New returns the provider cfg describes for the process role (the
// subcommand: dev, ingest, query, produce ...). With no endpoint it is the
// no-op provider. Shutdown flushes what is buffered.
func New(cfg Config, role string, log *slog.Logger) (*Provider, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Endpoint == "" {
		return &Provider{TracerProvider: noop.NewTracerProvider()}, nil
	}
	u, err := exportURL(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(u), otlptracehttp.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("tracing exporter for %s: %w", u, err)
	}
	name := cfg.ServiceName
	if name == "" {
		name = "eventlake-" + role
	}
	res := resource.NewSchemaless(attribute.String("service.name", name), attribute.String("eventlake.role", role))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		// A caller's sampled traceparent is honored; a root span (a batch,
		// a request without one) is recorded at the configured rate.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRate))),
		sdktrace.WithSpanLimits(limits()),
	)
	if log != nil {
		log.Info("tracing on", "endpoint", u, "sample_rate", cfg.SampleRate, "service_name", name)
	}
	return &Provider{TracerProvider: tp, sdk: tp}, nil
}

// limits are the SDK's defaults with links capped at MaxLinks.
func limits() sdktrace.SpanLimits {
	l := sdktrace.NewSpanLimits()
	l.LinkCountLimit = MaxLinks
	return l
}

// On reports whether spans are recorded and exported.
func (p *Provider) On() bool { return p.sdk != nil }

// Shutdown sends the spans still buffered, bounded by ctx.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// Propagator reads and writes W3C trace context (traceparent,
// tracestate).
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// Or returns tp, or the no-op provider when tp is nil (a component built
// without tracing).
func Or(tp trace.TracerProvider) trace.TracerProvider {
	if tp == nil {
		return noop.NewTracerProvider()
	}
	return tp
}

// EndSpan records err (if any) on span and ends it.
func EndSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
