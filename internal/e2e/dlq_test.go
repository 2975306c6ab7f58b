package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventlake/eventlake/demo"
	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/schema"
)

// dlqListOut is the JSON of `eventlake dlq list --json`.
type dlqListOut struct {
	Table string `json:"table"`
	// SnapshotID is a string: a number here fails to decode.
	SnapshotID string `json:"snapshot_id"`
	Total      int64  `json:"total"`
	Groups     []struct {
		Reason    string    `json:"reason"`
		Type      *string   `json:"type"`
		Source    *string   `json:"source"`
		Topic     string    `json:"topic"`
		Count     int64     `json:"count"`
		FirstSeen time.Time `json:"first_seen"`
		LastSeen  time.Time `json:"last_seen"`
	} `json:"groups"`
}

// byReason sums the groups' counts by reason.
func (o dlqListOut) byReason() map[string]int64 {
	out := map[string]int64{}
	for _, g := range o.Groups {
		out[g.Reason] += g.Count
	}
	return out
}

// dlqShowOut is the JSON of `eventlake dlq show --json`.
type dlqShowOut struct {
	Total       int64 `json:"total"`
	DeadLetters []struct {
		ID        string  `json:"id"`
		EventID   *string `json:"event_id"`
		Type      *string `json:"type"`
		Reason    string  `json:"reason"`
		Detail    string  `json:"detail"`
		Topic     string  `json:"kafka_topic"`
		Partition int32   `json:"kafka_partition"`
		Offset    int64   `json:"kafka_offset"`
		Key       *string `json:"kafka_key"`
		Raw       *string `json:"raw"`
		RawBase64 *string `json:"raw_base64"`
	} `json:"dead_letters"`
}

// TestDLQCommand: `eventlake dlq list` counts, by reason, type, source and
// topic, exactly the malformed messages produced into a running `eventlake
// dev` (and none of the good ones), while dev keeps running on the same
// SQLite catalog; every filter narrows to what it names; `dlq show --json`
// gives each malformed message's bytes back exactly (base64 when they are
// not UTF-8) with its Kafka coordinates; the text output never carries a
// raw control byte; and a directory without a lake is refused.
func TestDLQCommand(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	dev := th.Start(t, "dev", []string{"EVENTLAKE_INGEST_FLUSH_INTERVAL=200ms", "EVENTLAKE_QUERY_REFRESH_INTERVAL=100ms"},
		"dev", "--no-demo", "--data-dir", data, "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	broker, api := dev.Ready["kafka"], "http://"+dev.Ready["http"]

	now := time.Now().UTC().Truncate(time.Second)
	ts := now.Add(-30 * time.Second).Format(time.RFC3339)
	okPayload := `{"order_id":"o","user_id":"u","product_id":"p","quantity":1,"amount":"1.00"}`
	envelope := func(id, typ, payload string) []byte {
		return []byte(`{"event_id":"` + id + `","source":"dlq-e2e","type":"` + typ + `","timestamp":"` + ts + `","payload":` + payload + `}`)
	}
	type msg struct {
		topic  string
		value  []byte
		reason schema.Reason // "" for a good event
		// filled in once produced
		coords string
	}
	var msgs []*msg
	add := func(topic string, reason schema.Reason, v []byte) {
		msgs = append(msgs, &msg{topic: topic, value: v, reason: reason})
	}
	for i := range 10 {
		e := schema.Envelope{EventID: fmt.Sprintf("dlq-good-%d", i), Source: "dlq-e2e", Type: demo.TypeOrderCreated,
			Timestamp: now.Add(-time.Duration(60-i) * time.Second),
			Payload:   fmt.Appendf(nil, `{"order_id":"o-%d","user_id":"u-1","product_id":"p-1","quantity":1,"amount":"1.00"}`, i)}
		add(demo.TopicOrders, "", e.AppendJSON(nil))
	}
	for i := range 3 {
		// Valid UTF-8 with control bytes (an escape sequence, a bell, a NUL).
		add(demo.TopicOrders, schema.ReasonNotJSON, fmt.Appendf(nil, "order %d created\x1b[31m red\x07 \x00end\n", i))
	}
	for i := range 2 {
		add(demo.TopicOrders, schema.ReasonInvalidUTF8, fmt.Appendf(nil, "bad \xff\xfe bytes %d \x1b]0;title\x07", i))
	}
	for range 2 {
		add(demo.TopicInventory, schema.ReasonMissingEventID,
			[]byte(`{"source":"dlq-e2e","type":"inventory.updated","timestamp":"`+ts+`","payload":{}}`))
	}
	add(demo.TopicOrders, schema.ReasonUnknownType, envelope("dlq-unk-1", "ORDER.CREATED", okPayload))
	for i := range 2 {
		add(demo.TopicOrders, schema.ReasonSchema, envelope(fmt.Sprintf("dlq-neg-%d", i), demo.TypeOrderCreated,
			`{"order_id":"o","user_id":"u","product_id":"p","quantity":-5,"amount":"1.00"}`))
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string]int64{}
	var bad int64
	for i, m := range msgs {
		rec := &kgo.Record{Topic: m.topic, Key: fmt.Appendf(nil, "k%d", i), Value: m.value}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatalf("produce %q: %v", m.value, err)
		}
		m.coords = fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
		if m.reason != "" {
			want[string(m.reason)]++
			bad++
		}
	}
	th.Eventually(t, 60*time.Second, "good orders and dead letters in the lake", func() (bool, string) {
		r, code := th.TrySQL(t, api, "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM dlq)")
		if code != 200 || len(r.Rows) != 1 {
			return false, fmt.Sprintf("HTTP %d %s", code, r.Error)
		}
		return fmt.Sprint(r.Rows[0]) == fmt.Sprintf("[10 %d]", bad), fmt.Sprint(r.Rows[0])
	})

	// dev keeps running: the CLI reads the same catalog next to it.
	run := func(args ...string) string {
		t.Helper()
		out, err := th.Command(t, append(args, "--data-dir", data)...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("eventlake %v: %v\n%s%s", args, err, out, ee.Stderr)
			}
			t.Fatalf("eventlake %v: %v", args, err)
		}
		return string(out)
	}
	list := func(args ...string) dlqListOut {
		t.Helper()
		var o dlqListOut
		out := run(append([]string{"dlq", "list", "--json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &o); err != nil {
			t.Fatalf("dlq list %v --json: %v\n%s", args, err, out)
		}
		return o
	}
	show := func(args ...string) dlqShowOut {
		t.Helper()
		var o dlqShowOut
		out := run(append([]string{"dlq", "show", "--json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &o); err != nil {
			t.Fatalf("dlq show %v --json: %v\n%s", args, err, out)
		}
		return o
	}
	sameCounts := func(what string, got, want map[string]int64) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: counts by reason %v, want %v", what, got, want)
		}
	}

	// Every dead letter, counted by reason as produced.
	all := list()
	sameCounts("dlq list", all.byReason(), want)
	if all.Total != bad || all.Table != "dlq" || !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(all.SnapshotID) {
		t.Errorf("dlq list: table %q snapshot %q total %d, want dlq, a snapshot id string, %d", all.Table, all.SnapshotID, all.Total, bad)
	}
	for _, g := range all.Groups {
		if g.FirstSeen.IsZero() || g.LastSeen.Before(g.FirstSeen) || g.FirstSeen.Before(now.Add(-time.Minute)) || g.LastSeen.After(time.Now()) {
			t.Errorf("dlq list: group %s/%s seen from %v to %v, produced at %v", g.Reason, g.Topic, g.FirstSeen, g.LastSeen, now)
		}
		wantType, wantSource, wantTopic := "", "", demo.TopicOrders
		switch schema.Reason(g.Reason) {
		case schema.ReasonSchema:
			wantType, wantSource = demo.TypeOrderCreated, "dlq-e2e"
		case schema.ReasonUnknownType:
			wantType, wantSource = "ORDER.CREATED", "dlq-e2e"
		case schema.ReasonMissingEventID:
			wantType, wantSource, wantTopic = "inventory.updated", "dlq-e2e", demo.TopicInventory
		}
		if deref(g.Type) != wantType || deref(g.Source) != wantSource || g.Topic != wantTopic {
			t.Errorf("dlq list: group %s is type %q source %q topic %s, want %q %q %s",
				g.Reason, deref(g.Type), deref(g.Source), g.Topic, wantType, wantSource, wantTopic)
		}
	}
	text := run("dlq", "list")
	if !strings.Contains(text, fmt.Sprintf("%d dead letters in dlq", bad)) || !strings.Contains(text, "ORDER.CREATED") {
		t.Errorf("dlq list (text):\n%s", text)
	}

	// Filters narrow to what they name.
	sameCounts("--reason not_json,invalid_utf8", list("--reason", "not_json,invalid_utf8").byReason(),
		map[string]int64{"not_json": 3, "invalid_utf8": 2})
	sameCounts("--topic inventory.updated", list("--topic", demo.TopicInventory).byReason(), map[string]int64{"missing_event_id": 2})
	sameCounts("--type ORDER.CREATED", list("--type", "ORDER.CREATED").byReason(), map[string]int64{"unknown_type": 1})
	sameCounts("--type order.created", list("--type", demo.TypeOrderCreated).byReason(), map[string]int64{"schema_violation": 2})
	sameCounts("--since now-10m", list("--since", "now-10m").byReason(), want)
	sameCounts("--since now+1h", list("--since", "now+1h").byReason(), map[string]int64{})
	sameCounts("--since in the future", list("--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)).byReason(), map[string]int64{})
	sameCounts("--until now-10m", list("--until", "now-10m").byReason(), map[string]int64{})
	sameCounts("--until now+1m --reason empty", list("--until", "now+1m", "--reason", "empty").byReason(), map[string]int64{})

	// show: the bytes come back exactly, with their coordinates.
	produced := func(r schema.Reason) map[string]string {
		out := map[string]string{}
		for _, m := range msgs {
			if m.reason == r {
				out[m.coords] = string(m.value)
			}
		}
		return out
	}
	for _, r := range []schema.Reason{schema.ReasonNotJSON, schema.ReasonInvalidUTF8, schema.ReasonMissingEventID, schema.ReasonSchema} {
		o := show("--reason", string(r))
		got := map[string]string{}
		for _, d := range o.DeadLetters {
			if d.Raw == nil {
				t.Errorf("dlq show --reason %s: %s has no raw bytes", r, d.ID)
				continue
			}
			raw := *d.Raw
			if r == schema.ReasonInvalidUTF8 {
				if d.RawBase64 == nil {
					t.Errorf("dlq show --reason %s: %s has no raw_base64", r, d.ID)
					continue
				}
				b, err := base64.StdEncoding.DecodeString(*d.RawBase64)
				if err != nil {
					t.Errorf("dlq show: raw_base64 of %s: %v", d.ID, err)
				}
				raw = string(b)
			} else if d.RawBase64 != nil {
				t.Errorf("dlq show --reason %s: %s is UTF-8 but has raw_base64", r, d.ID)
			}
			if d.Reason != string(r) || d.ID != fmt.Sprintf("%s/%d/%d", d.Topic, d.Partition, d.Offset) || d.Detail == "" || d.Key == nil {
				t.Errorf("dlq show --reason %s: %s is reason %q, coordinates %s/%d/%d, detail %q, key %v",
					r, d.ID, d.Reason, d.Topic, d.Partition, d.Offset, d.Detail, d.Key)
			}
			got[d.ID] = raw
		}
		if w := produced(r); fmt.Sprint(got) != fmt.Sprint(w) || o.Total != int64(len(w)) {
			t.Errorf("dlq show --reason %s: total %d, raw bytes by coordinates\n%q\nwant\n%q", r, o.Total, got, w)
		}
	}
	// --ids takes event ids (from the raw bytes) and coordinates.
	var notJSON string
	for c := range produced(schema.ReasonNotJSON) {
		notJSON = c
	}
	o := show("--ids", "dlq-neg-1,"+notJSON+",dlq-good-1")
	var ids []string
	for _, d := range o.DeadLetters {
		ids = append(ids, d.ID+"="+deref(d.EventID))
	}
	slices.Sort(ids)
	wantIDs := []string{notJSON + "="}
	for c, v := range produced(schema.ReasonSchema) {
		if strings.Contains(v, `"dlq-neg-1"`) {
			wantIDs = append(wantIDs, c+"=dlq-neg-1")
		}
	}
	slices.Sort(wantIDs)
	if fmt.Sprint(ids) != fmt.Sprint(wantIDs) || o.Total != 2 {
		t.Errorf("dlq show --ids: %v (total %d), want %v", ids, o.Total, wantIDs)
	}
	if o := show("--limit", "2"); o.Total != bad || len(o.DeadLetters) != 2 {
		t.Errorf("dlq show --limit 2: total %d, %d rows; want %d, 2", o.Total, len(o.DeadLetters), bad)
	}
	if o := show("--since", "now+1h", "--limit", "0"); o.Total != 0 || len(o.DeadLetters) != 0 {
		t.Errorf("dlq show --since now+1h: total %d, %d rows; want none", o.Total, len(o.DeadLetters))
	}
	// The text output escapes the bytes: no control character reaches a
	// terminal.
	text = run("dlq", "show", "--reason", "not_json,invalid_utf8", "--limit", "0")
	for _, c := range []string{"\x1b", "\x07", "\x00", "\xff"} {
		if strings.Contains(text, c) {
			t.Errorf("dlq show (text) holds the raw byte %q:\n%q", c, text)
		}
	}
	if !strings.Contains(text, `\x1b[31m red\a \x00end\n`) || !strings.Contains(text, `bad \xff\xfe bytes`) ||
		!strings.Contains(text, "5 of 5 dead letters in dlq") {
		t.Errorf("dlq show (text):\n%q", text)
	}

	// A directory without a lake is refused, and nothing is created there.
	empty := filepath.Join(dir, "nolake")
	out, err := th.Command(t, "dlq", "list", "--data-dir", empty).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "no lake here") {
		t.Errorf("dlq list on a directory without a lake: %v\n%s", err, out)
	}
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dlq list created %s", empty)
	}
	out, err = th.Command(t, "dlq", "--data-dir", data).CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "list, show or replay") {
		t.Errorf("dlq without list or show: %v\n%s", err, out)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
