package streamer

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventlake/eventlake/internal/logkey"
)

// tracerName names the hot tier's spans: one per update of the hot
// structures (a poll's records) and one per read-model commit.
const tracerName = "github.com/eventlake/eventlake/streamer"

// updateSpan starts the span of one poll's update of the hot tier.
func (s *Streamer) updateSpan(ctx context.Context, records int) trace.Span {
	_, span := s.tracer.Start(ctx, "hot tier update", trace.WithNewRoot(), trace.WithAttributes(attribute.Int("eventlake.records", records)))
	return span
}

// logEvent writes a debug line about one event (a late order) with its
// event id and trace id. Free when debug is off.
func (s *Streamer) logEvent(msg string, r *kgo.Record, eventID, traceID string) {
	ctx := context.Background()
	if !s.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, msg, slog.String(logkey.EventID, eventID), slog.String(logkey.TraceID, traceID),
		slog.String(logkey.Topic, r.Topic), slog.Int(logkey.Partition, int(r.Partition)), slog.Int64(logkey.Offset, r.Offset))
}
