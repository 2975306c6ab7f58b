package e2e

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// otlpSpan is one span an OTLP receiver got, with its service's name.
type otlpSpan struct {
	service string
	span    *tracepb.Span
}

func (s otlpSpan) traceID() string { return hex.EncodeToString(s.span.TraceId) }
func (s otlpSpan) spanID() string  { return hex.EncodeToString(s.span.SpanId) }
func (s otlpSpan) parent() string  { return hex.EncodeToString(s.span.ParentSpanId) }

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes every export
// request (protobuf, as the exporter sends it) and keeps the spans.
type otlpReceiver struct {
	t     *testing.T
	srv   *httptest.Server
	mu    sync.Mutex
	spans []otlpSpan
	bad   []string // requests it could not decode
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
			r.fail(fmt.Sprintf("%s %s", req.Method, req.URL.Path))
			http.NotFound(w, req)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				r.fail("gzip: " + err.Error())
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		var er coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &er)
		}
		if err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" {
			r.fail(fmt.Sprintf("content type %q: %v", req.Header.Get("Content-Type"), err))
			http.Error(w, "not an OTLP protobuf request", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range er.ResourceSpans {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					r.spans = append(r.spans, otlpSpan{service: service, span: sp})
				}
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *otlpReceiver) fail(what string) {
	r.mu.Lock()
	r.bad = append(r.bad, what)
	r.mu.Unlock()
}

// find returns the spans that match.
func (r *otlpReceiver) find(match func(otlpSpan) bool) []otlpSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []otlpSpan
	for _, s := range r.spans {
		if match(s) {
			out = append(out, s)
		}
	}
	return out
}

func (r *otlpReceiver) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := map[string]int{}
	for _, s := range r.spans {
		names[s.service+"/"+s.span.Name]++
	}
	return fmt.Sprintf("%d spans %v, undecodable requests %v", len(r.spans), names, r.bad)
}

// TestTracing runs `eventlake dev` and `eventlake produce` with tracing
// on (every root span sampled) against an OTLP receiver started here, and
// follows the chain: each produced event's producer span is linked from
// an ingest batch span (its trace id read from the envelope metadata),
// which has a child span per table commit; an HTTP request with a W3C
// traceparent gets a server span continuing that trace; a Postgres
// statement gets its own span.
func TestTracing(t *testing.T) {
	rcv := startOTLPReceiver(t)
	tracingEnv := []string{"EVENTLAKE_TRACING_ENDPOINT=" + rcv.srv.URL, "EVENTLAKE_TRACING_SAMPLE_RATE=1"}
	dir := t.TempDir()
	dev := th.Start(t, "dev", append([]string{"EVENTLAKE_INGEST_FLUSH_INTERVAL=300ms", "EVENTLAKE_LOG_LEVEL=debug"}, tracingEnv...),
		"dev", "--no-demo", "--data-dir", filepath.Join(dir, "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--pg-listen", "127.0.0.1:0")
	api := "http://" + dev.Ready["http"]

	// Produce with tracing: one producer span per event, exported when
	// produce exits; its ids are in the events' metadata.
	prod := th.Command(t, "produce", "--brokers", dev.Ready["kafka"], "--count", "20", "--rate", "0", "--seed", "5",
		"--late-fraction", "0")
	prod.Env = append(prod.Env, tracingEnv...)
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("produce: %v: %s", err, out)
	}
	produced := rcv.find(func(s otlpSpan) bool {
		return s.service == "eventlake-produce" && s.span.Kind == tracepb.Span_SPAN_KIND_PRODUCER
	})
	if len(produced) != 20 {
		t.Fatalf("got %d producer spans from eventlake produce, want 20 (one per event); %s", len(produced), rcv.summary())
	}
	for _, p := range produced {
		if !strings.HasSuffix(p.span.Name, " publish") || p.span.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
			t.Fatalf("producer span %q has status %v", p.span.Name, p.span.Status)
		}
	}

	// Every producer span is linked from an ingest batch span.
	var batches []otlpSpan
	th.Eventually(t, 60*time.Second, "ingest batch spans linking every producer span", func() (bool, string) {
		batches = rcv.find(func(s otlpSpan) bool { return s.service == "eventlake-dev" && s.span.Name == "ingest batch" })
		linked := map[string]bool{}
		for _, b := range batches {
			for _, l := range b.span.Links {
				linked[hex.EncodeToString(l.TraceId)+"/"+hex.EncodeToString(l.SpanId)] = true
			}
		}
		missing := 0
		for _, p := range produced {
			if !linked[p.traceID()+"/"+p.spanID()] {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d producer spans not linked from %d batch spans; %s", missing, len(produced), len(batches), rcv.summary())
	})
	// A table commit is a child span of its batch.
	batchIDs := map[string]bool{}
	for _, b := range batches {
		batchIDs[b.spanID()] = true
	}
	th.Eventually(t, 30*time.Second, "an ingest commit span under a batch span", func() (bool, string) {
		commits := rcv.find(func(s otlpSpan) bool {
			return s.span.Name == "ingest commit" && batchIDs[s.parent()] && s.span.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR
		})
		return len(commits) > 0, rcv.summary()
	})

	// An HTTP request with a traceparent continues the caller's trace.
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, err := http.NewRequest(http.MethodPost, api+"/v1/sql", strings.NewReader(`{"sql":"SELECT count(*) FROM orders"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	th.Authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/sql: HTTP %d", resp.StatusCode)
	}
	if tp := resp.Header.Get("traceparent"); !strings.Contains(tp, callerTrace) {
		t.Fatalf("the answer's traceparent %q does not continue trace %s", tp, callerTrace)
	}
	th.Eventually(t, 30*time.Second, "a server span continuing the caller's trace", func() (bool, string) {
		got := rcv.find(func(s otlpSpan) bool {
			return s.traceID() == callerTrace && s.parent() == callerSpan && s.span.Kind == tracepb.Span_SPAN_KIND_SERVER
		})
		return len(got) == 1, rcv.summary()
	})

	// A Postgres statement is a span of its own.
	host, port, _ := strings.Cut(dev.Ready["postgres"], ":")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=dev-admin password=%s dbname=eventlake sslmode=disable", host, port, th.Token(api)))
	if err != nil {
		t.Fatalf("connect over the Postgres protocol: %v", err)
	}
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	th.Eventually(t, 30*time.Second, "a postgres statement span", func() (bool, string) {
		got := rcv.find(func(s otlpSpan) bool {
			return s.span.Name == "postgres statement" && s.span.Kind == tracepb.Span_SPAN_KIND_SERVER
		})
		return len(got) > 0, rcv.summary()
	})
	// A log line about one event carries its event id and trace id: the
	// repeats of earlier orders are dropped as duplicates, each logged
	// with the trace id of the original's producer span.
	before := len(rcv.find(func(otlpSpan) bool { return true }))
	prod = th.Command(t, "produce", "--brokers", dev.Ready["kafka"], "--count", "40", "--rate", "0", "--seed", "6",
		"--late-fraction", "0", "--inventory-fraction", "0", "--duplicate-fraction", "0.3")
	prod.Env = append(prod.Env, tracingEnv...)
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("produce: %v: %s", err, out)
	}
	traces := map[string]bool{}
	for _, s := range rcv.find(func(s otlpSpan) bool { return s.service == "eventlake-produce" })[len(produced):] {
		traces[s.traceID()] = true
	}
	if len(traces) != 40 {
		t.Fatalf("%d producer spans from the second produce, want 40 (%d spans before it)", len(traces), before)
	}
	dupLine := regexp.MustCompile(`msg="duplicate event dropped" .*event_id=ev-6-\d+ trace_id=([0-9a-f]{32})`)
	th.Eventually(t, 30*time.Second, "a duplicate's log line with its event id and trace id", func() (bool, string) {
		ms := dupLine.FindAllStringSubmatch(dev.Log(), -1)
		for _, m := range ms {
			if !traces[m[1]] {
				return false, "trace id " + m[1] + " is not a producer span's"
			}
		}
		return len(ms) > 0, fmt.Sprintf("%d duplicate lines", len(ms))
	})

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) > 0 {
		t.Fatalf("the receiver got requests it could not decode: %v", rcv.bad)
	}
}
