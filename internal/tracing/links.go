package tracing

import (
	"encoding/hex"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
)

// MaxLinks caps the links of one span: a batch of two million events
// links to a uniform sample of this many of their producer spans.
const MaxLinks = 128

// IDs returns the hex trace and span ids of sc, the envelope metadata's
// trace_id and span_id; "" when sc is not valid (tracing is off).
func IDs(sc trace.SpanContext) (traceID, spanID string) {
	if !sc.IsValid() {
		return "", ""
	}
	return sc.TraceID().String(), sc.SpanID().String()
}

// Links keeps a uniform sample (a reservoir) of at most MaxLinks producer
// spans of the events of one batch. An id is parsed only when the sample
// keeps it, so offering an event costs a counter and, rarely, a hex
// decode; callers offer events only while their span is recording.
type Links struct {
	seen  int
	links []trace.Link
}

// Offer considers one event's trace context (the envelope metadata's
// trace_id and span_id as read, hex; nil when absent). Ids that are not
// W3C ids (32 and 16 hex digits, not all zero) are skipped.
func (l *Links) Offer(traceID, spanID []byte) {
	if len(traceID) != 32 || len(spanID) != 16 {
		return
	}
	l.seen++
	i := len(l.links)
	if i >= MaxLinks {
		if i = rand.IntN(l.seen); i >= MaxLinks {
			return
		}
	}
	var sc trace.SpanContextConfig
	if _, err := hex.Decode(sc.TraceID[:], traceID); err != nil {
		return
	}
	if _, err := hex.Decode(sc.SpanID[:], spanID); err != nil {
		return
	}
	sc.Remote = true
	c := trace.NewSpanContext(sc)
	if !c.IsValid() {
		return
	}
	link := trace.Link{SpanContext: c}
	if i == len(l.links) {
		l.links = append(l.links, link)
	} else {
		l.links[i] = link
	}
}

// Seen is how many events with trace context were offered.
func (l *Links) Seen() int { return l.seen }

// AddTo adds the sample to span.
func (l *Links) AddTo(span trace.Span) {
	for _, k := range l.links {
		span.AddLink(k)
	}
}

// Reset empties the sample for the next batch.
func (l *Links) Reset() {
	l.seen = 0
	l.links = l.links[:0]
}
