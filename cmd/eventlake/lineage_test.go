package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/eventlake/eventlake/query"
)

// TestLineageDOT: names a producer chose (quotes, backslashes, spaces,
// colons, braces, non-ASCII) come out as quoted Graphviz IDs and labels
// that dot renders, each node once.
func TestLineageDOT(t *testing.T) {
	nasty := []string{`say "hi"`, `back\slash\`, "a:b -> c", "{x}; y=1", "café shop", `end\"`}
	l := &query.Lineage{
		Topics:    []query.LineageTopic{{Topic: "orders.created", Table: "orders_raw"}},
		Tables:    []query.LineageTable{{Name: "orders_raw"}},
		Types:     []query.LineageType{{Type: "order.created"}},
		Views:     []query.LineageView{{Name: "orders"}},
		Endpoints: []query.LineageEndpoint{{Endpoint: "GET /v1/sql"}},
	}
	for _, s := range nasty {
		l.Edges = append(l.Edges, query.LineageEdge{From: query.LineageNode(query.NodeSource, s),
			To: query.LineageNode(query.NodeTopic, "orders.created"), Label: s})
	}
	l.Edges = append(l.Edges, query.LineageEdge{From: "view:orders", To: "endpoint:GET /v1/sql"})
	var out bytes.Buffer
	if err := writeLineageDOT(&out, l); err != nil {
		t.Fatal(err)
	}
	dot := out.String()
	if n := strings.Count(dot, "\n  \"topic:orders.created\" [label="); n != 1 {
		t.Errorf("topic node declared %d times, want once:\n%s", n, dot)
	}
	if !strings.Contains(dot, `"source:back\\slash\\" [label="back\\slash\\"`) || !strings.Contains(dot, `"source:say \"hi\""`) {
		t.Errorf("names not quoted as Graphviz IDs:\n%s", dot)
	}
	bin, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("dot (Debian package graphviz) is not installed: the output is not rendered")
	}
	cmd := exec.Command(bin, "-Tsvg")
	cmd.Stdin = strings.NewReader(dot)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	svg, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("dot -Tsvg: %v\n%s\ninput:\n%s", err, stderr.String(), dot)
	}
	for _, s := range []string{"orders.created", "café shop", "back\\slash\\"} {
		if !bytes.Contains(svg, []byte(s)) {
			t.Errorf("the SVG does not show %q", s)
		}
	}
}
