package ingest

import (
	"context"
	"log/slog"

	"github.com/apache/iceberg-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/tracing"
	"github.com/eventlake/eventlake/schema"
)

// batchTrace is the span of the batch being consumed: started with its
// first record, ended once it is committed (or abandoned). While the span
// records (the batch was sampled), every accepted event is offered to a
// bounded sample of links to the producer spans named in its envelope
// metadata; an unsampled batch costs one branch per event.
type batchTrace struct {
	tracer    trace.Tracer
	span      trace.Span // nil between batches
	recording bool
	links     tracing.Links
}

// startBatchTrace opens the span of a new batch. Called with mu held.
func (ing *Ingester) startBatchTrace(ctx context.Context) {
	_, span := ing.bt.tracer.Start(ctx, "ingest batch", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer))
	ing.bt.span, ing.bt.recording = span, span.IsRecording()
}

// traceEvent offers an accepted event to the batch's links.
func (ing *Ingester) traceEvent(ev *schema.Event) {
	if ing.bt.recording {
		ing.bt.links.Offer(ev.TraceID, ev.SpanID)
	}
}

// batchContext is ctx carrying the batch's span, the parent of its table
// commits.
func (ing *Ingester) batchContext(ctx context.Context) context.Context {
	if ing.bt.span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, ing.bt.span)
}

// endBatchTrace ends the batch's span: committed (err nil) or abandoned.
// Called with mu held, before the batch is reset.
func (ing *Ingester) endBatchTrace(err error) {
	span := ing.bt.span
	if span == nil {
		return
	}
	if ing.bt.recording {
		ing.bt.links.AddTo(span)
		span.SetAttributes(attribute.Int("eventlake.records", ing.b.records), attribute.Int64("eventlake.bytes", ing.b.bytes),
			attribute.Int("eventlake.traced_events", ing.bt.links.Seen()))
	}
	tracing.EndSpan(span, err)
	ing.bt.links.Reset()
	ing.bt.span, ing.bt.recording = nil, false
}

// commitSpan starts the span of one table's commit, a child of the
// batch's.
func (ing *Ingester) commitSpan(ctx context.Context, table string, files []iceberg.DataFile, rows int64) (context.Context, trace.Span) {
	return ing.bt.tracer.Start(ctx, "ingest commit", trace.WithAttributes(
		attribute.String("eventlake.table", table), attribute.Int("eventlake.files", len(files)), attribute.Int64("eventlake.rows", rows)))
}

// logEvent writes a debug line about one event (a duplicate, a dead
// letter) with its event id and trace id, so that a producer's trace
// leads to what happened to the event. Free when debug is off.
func (ing *Ingester) logEvent(ctx context.Context, msg string, r *kgo.Record, ev *schema.Event, attrs ...slog.Attr) {
	if !ing.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs = append(attrs, slog.String(logkey.EventID, string(ev.EventID)), slog.String(logkey.TraceID, string(ev.TraceID)),
		slog.String(logkey.Topic, r.Topic), slog.Int(logkey.Partition, int(r.Partition)), slog.Int64(logkey.Offset, r.Offset))
	ing.log.LogAttrs(ctx, slog.LevelDebug, msg, attrs...)
}
