package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventlake/eventlake/demo"
	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/query"
	"github.com/eventlake/eventlake/schema"
)

// The probe type's two schema versions: v2 adds note.
const (
	probeV1 = `{"type":"object","properties":{"probe_id":{"type":"string"},"reading":{"type":"integer"}},"required":["probe_id"]}`
	probeV2 = `{"type":"object","properties":{"probe_id":{"type":"string"},"reading":{"type":"integer"},"note":{"type":"string"}},"required":["probe_id"]}`
)

// TestLineage: into a running `eventlake dev`, a new source publishes
// the first events of a new event type (two schema versions registered)
// on a new topic, which dev's topic pattern takes, and another new source
// publishes orders on an existing topic. `eventlake lineage --json`,
// which reads the lake, lists both sources with exact counts once ingest
// committed their events; GET /v1/lineage lists them within one refresh
// of the query service after that (the first refresh to end after the
// commit may have started before it; the second cannot have), with every
// step of the new topic's lineage: topic -> table -> type (which version
// added which column) -> views -> endpoints. --dot renders with Graphviz
// and the text names the same sources.
func TestLineage(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	dev := th.Start(t, "dev", []string{"EVENTLAKE_INGEST_FLUSH_INTERVAL=200ms", "EVENTLAKE_QUERY_REFRESH_INTERVAL=1s",
		"EVENTLAKE_INGEST_TOPIC_REFRESH=500ms", "EVENTLAKE_SCHEMA_REGISTRY_POLL_INTERVAL=200ms"},
		"dev", "--no-demo", "--data-dir", data, "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	broker, api := dev.Ready["kafka"], "http://"+dev.Ready["http"]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const (
		probeTopic, probeType, probeSource, probeTable = "lineage.probe", "probe.seen", "probe-svc", "lineage_probe"
		orderSource                                    = "lineage-checkout"
	)
	for i, sc := range []string{probeV1, probeV2} {
		body, _ := json.Marshal(map[string]string{"schemaType": "JSON", "schema": sc})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+"/subjects/"+probeType+"/versions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		th.Authorize(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("register %s v%d: HTTP %d %s", probeType, i+1, resp.StatusCode, b)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, probeTopic); err != nil {
		t.Fatalf("create topic %s: %v", probeTopic, err)
	}
	now := time.Now().UTC()
	var recs []*kgo.Record
	for i := range 3 {
		e := schema.Envelope{EventID: fmt.Sprintf("probe-%d", i), Source: probeSource, Type: probeType, Timestamp: now.Add(-time.Minute),
			Payload: fmt.Appendf(nil, `{"probe_id":"p-%d","reading":%d,"note":"n"}`, i, i)}
		recs = append(recs, &kgo.Record{Topic: probeTopic, Value: e.AppendJSON(nil)})
	}
	for i := range 2 {
		e := schema.Envelope{EventID: fmt.Sprintf("lineage-order-%d", i), Source: orderSource, Type: demo.TypeOrderCreated, Timestamp: now.Add(-time.Minute),
			Payload: fmt.Appendf(nil, `{"order_id":"o-%d","user_id":"u-1","product_id":"p-1","quantity":1,"amount":"2.50"}`, i)}
		recs = append(recs, &kgo.Record{Topic: demo.TopicOrders, Value: e.AppendJSON(nil)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	// lists says whether l lists both new sources with their counts.
	lists := func(l query.Lineage) (bool, string) {
		var state []string
		ok := 0
		for _, tp := range l.Topics {
			for _, s := range tp.Sources {
				state = append(state, fmt.Sprintf("%s<-%s:%d", tp.Topic, s.Source, s.Events))
				if tp.Topic == probeTopic && s.Source == probeSource && s.Events == 3 ||
					tp.Topic == demo.TopicOrders && s.Source == orderSource && s.Events == 2 {
					ok++
				}
			}
		}
		return ok == 2, strings.Join(state, " ")
	}
	command := func(args ...string) []byte {
		t.Helper()
		var stderr bytes.Buffer
		cmd := th.Command(t, append(append([]string{"lineage"}, args...), "--data-dir", data)...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("eventlake lineage %v: %v\n%s", args, err, stderr.String())
		}
		return out
	}
	commandJSON := func() query.Lineage {
		t.Helper()
		out := command("--json")
		var l query.Lineage
		if err := json.Unmarshal(out, &l); err != nil {
			t.Fatalf("eventlake lineage --json does not parse: %v\n%s", err, out)
		}
		return l
	}
	served := func() query.Lineage {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/v1/lineage", nil)
		th.Authorize(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET /v1/lineage: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/lineage: HTTP %d %s", resp.StatusCode, b)
		}
		var l query.Lineage
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatalf("GET /v1/lineage does not parse: %v\n%s", err, b)
		}
		return l
	}

	th.Eventually(t, 90*time.Second, "eventlake lineage to list the new sources", func() (bool, string) {
		return lists(commandJSON())
	})
	committed := time.Now()
	var (
		firstRefresh time.Time // the end of the first refresh after the commit
		fromAPI      query.Lineage
	)
	th.Eventually(t, 30*time.Second, "GET /v1/lineage to list the new sources", func() (bool, string) {
		fromAPI = served()
		ok, state := lists(fromAPI)
		if ok {
			return true, state
		}
		last, err := time.Parse(time.RFC3339Nano, fromAPI.LastRefresh)
		if err != nil {
			t.Fatalf("GET /v1/lineage: last_refresh %q: %v", fromAPI.LastRefresh, err)
		}
		switch {
		case !last.After(committed):
		case firstRefresh.IsZero():
			firstRefresh = last
		case last.After(firstRefresh):
			t.Fatalf("GET /v1/lineage at the refresh that ended %v, the second since the events were committed (by %v), does not list them: %s",
				last, committed, state)
		}
		return false, state
	})

	// The new topic's lineage, step by step.
	edges := map[string]string{}
	for _, e := range fromAPI.Edges {
		edges[e.From+" -> "+e.To] = e.Label
	}
	for _, want := range []struct{ from, to, label string }{
		{"source:" + probeSource, "topic:" + probeTopic, "3 events"},
		{"source:" + orderSource, "topic:" + demo.TopicOrders, "2 events"},
		{"topic:" + probeTopic, "table:" + probeTable, "pattern"},
		{"topic:" + probeTopic, "table:dlq", "rejected"},
		{"table:" + probeTable, "type:" + probeType, ""},
		{"type:" + probeType, "view:probe_seen", ""},
		{"table:" + probeTable, "view:events", ""},
		{"view:probe_seen", "endpoint:POST /v1/sql", ""},
		{"view:probe_seen", "endpoint:postgres", ""},
		{"table:orders_raw", "table:order_revenue_minute", "order.created (ts, amount)"},
		{"table:orders_raw", "table:order_metrics", "order.created (ts, amount, user_id)"},
		{"table:order_revenue_minute", "endpoint:GET /v1/metrics/order_revenue_minute", ""},
		{"topic:" + demo.TopicOrders, "endpoint:GET /v1/stream/order_revenue_minute", "type = order.created"},
	} {
		if label, ok := edges[want.from+" -> "+want.to]; !ok || label != want.label {
			t.Errorf("GET /v1/lineage: edge %s -> %s has label %q (present: %v), want %q", want.from, want.to, label, ok, want.label)
		}
	}
	for _, tp := range fromAPI.Topics {
		if tp.Topic != probeTopic {
			continue
		}
		seen, err := time.Parse(time.RFC3339Nano, tp.Sources[0].LastSeen)
		if err != nil || seen.Before(now.Add(-time.Second)) || seen.After(committed) {
			t.Errorf("%s last seen %q, want between the produce (%v) and the commit (%v)", probeSource, tp.Sources[0].LastSeen, now, committed)
		}
	}
	var probe *query.LineageType
	for i := range fromAPI.Types {
		if fromAPI.Types[i].Type == probeType {
			probe = &fromAPI.Types[i]
		}
	}
	if probe == nil || fmt.Sprint(probe.Tables) != "["+probeTable+"]" || len(probe.Versions) != 2 ||
		fmt.Sprint(probe.Versions[0].Added) != "[probe_id reading]" || fmt.Sprint(probe.Versions[1].Added) != "[note]" {
		t.Errorf("type %s: %+v, want held by %s, v1 adding probe_id and reading, v2 adding note", probeType, probe, probeTable)
	}

	// The command agrees with the service (the endpoints are those of a
	// process with the same configuration).
	cmdL := commandJSON()
	norm := func(l query.Lineage) string {
		l.Time, l.LastRefresh = "", ""
		for i := range l.Topics {
			l.Topics[i].Sources = nil // counts may have moved on: compared above
		}
		b, _ := json.Marshal(l)
		return string(b)
	}
	if norm(cmdL) != norm(fromAPI) {
		t.Errorf("eventlake lineage --json and GET /v1/lineage differ:\ncommand: %s\nservice: %s", norm(cmdL), norm(fromAPI))
	}

	// Text and Graphviz.
	text := string(command())
	t.Logf("eventlake lineage:\n%s", text)
	for _, want := range []string{probeTopic + " -> " + probeTable, probeSource, orderSource, "+ note"} {
		if !strings.Contains(text, want) {
			t.Errorf("eventlake lineage: %q missing in:\n%s", want, text)
		}
	}
	dot := command("--dot")
	if !bytes.Contains(dot, []byte(`"source:`+probeSource+`" -> "topic:`+probeTopic+`"`)) {
		t.Errorf("eventlake lineage --dot: no edge from the new source to the new topic:\n%s", dot)
	}
	bin, err := exec.LookPath("dot")
	if err != nil {
		t.Skipf("dot is not installed (Debian package graphviz; .ci/run installs it): --dot output not rendered")
	}
	render := exec.CommandContext(ctx, bin, "-Tsvg")
	render.Stdin = bytes.NewReader(dot)
	var stderr bytes.Buffer
	render.Stderr = &stderr
	svg, err := render.Output()
	if err != nil || stderr.Len() > 0 { // a warning is a defect of the output too
		t.Fatalf("dot -Tsvg: %v\n%s\ninput:\n%s", err, stderr.String(), dot)
	}
	svg = bytes.ReplaceAll(svg, []byte("&#45;"), []byte("-")) // Graphviz escapes hyphens in SVG text
	for _, want := range []string{"<svg", probeSource, probeTopic, probeTable, "probe_seen", "POST /v1/sql"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("the rendered SVG does not show %q", want)
		}
	}
	if !slices.ContainsFunc(fromAPI.Endpoints, func(e query.LineageEndpoint) bool { return e.Endpoint == "GET /v1/windows" }) {
		t.Errorf("GET /v1/lineage lists no hot-tier endpoint: %+v", fromAPI.Endpoints)
	}
}
