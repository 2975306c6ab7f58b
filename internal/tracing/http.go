package tracing

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventlake/eventlake/internal/httpmw"
)

// HTTP gives every request a server span, the child of the caller's W3C
// traceparent when it sends one (a dashboard's trace continues here), and
// puts it in the request's context for the handlers' own spans. The
// answer carries the span's traceparent. With tracing off it returns h.
func (p *Provider) HTTP(h http.Handler) http.Handler {
	if !p.On() {
		return h
	}
	tracer := p.Tracer("github.com/eventlake/eventlake/http")
	prop := Propagator()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		if id := httpmw.IDFrom(ctx); id != "" {
			span.SetAttributes(attribute.String("eventlake.request_id", id))
		}
		prop.Inject(ctx, propagation.HeaderCarrier(w.Header()))
		sw := httpmw.NewStatusWriter(w)
		h.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.Status()))
		if sw.Status() >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.Status()))
		}
	})
}
