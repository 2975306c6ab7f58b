package tracing

import (
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestLinksSample(t *testing.T) {
	cases := []struct {
		name           string
		traceID, span  string
		n              int
		wantLinks      int
		wantSeen       int
		wantFirstTrace string
	}{
		{"a few events are all linked", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 3, 3, 3, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"many events are capped", "", "", 10_000, MaxLinks, 10_000, ""},
		{"no metadata", "-", "-", 50, 0, 0, ""},
		{"wrong length", "4bf92f35", "00f067aa0ba902b7", 5, 0, 0, ""},
		{"not hex", "zzf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 5, 0, 5, ""},
		{"all-zero ids are not valid", "00000000000000000000000000000000", "0000000000000000", 5, 0, 5, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var l Links
			for i := range c.n {
				tid, sid := c.traceID, c.span
				switch tid {
				case "":
					tid, sid = fmt.Sprintf("%032x", i+1), fmt.Sprintf("%016x", i+1)
				case "-":
					tid, sid = "", ""
				}
				l.Offer([]byte(tid), []byte(sid))
			}
			if len(l.links) != c.wantLinks || l.Seen() != c.wantSeen {
				t.Fatalf("kept %d links of %d seen, want %d of %d", len(l.links), l.Seen(), c.wantLinks, c.wantSeen)
			}
			if c.wantFirstTrace != "" && l.links[0].SpanContext.TraceID().String() != c.wantFirstTrace {
				t.Fatalf("first link's trace id %s, want %s", l.links[0].SpanContext.TraceID(), c.wantFirstTrace)
			}
			seen := map[trace.SpanID]bool{}
			for _, k := range l.links {
				if c.traceID == "" && seen[k.SpanContext.SpanID()] { // distinct events: each linked once at most
					t.Fatalf("span %s linked twice", k.SpanContext.SpanID())
				}
				seen[k.SpanContext.SpanID()] = true
			}
			l.Reset()
			if len(l.links) != 0 || l.Seen() != 0 {
				t.Fatal("Reset kept links")
			}
		})
	}
}

func TestExportURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://collector:4318":            "http://collector:4318/v1/traces",
		"http://collector:4318/":           "http://collector:4318/v1/traces",
		"https://otel.example/custom/path": "https://otel.example/custom/path",
		"collector:4318":                   "",
		"ftp://collector":                  "",
	} {
		got, err := exportURL(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("exportURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
