package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/eventlake/eventlake/demo"
	"github.com/eventlake/eventlake/ingest"
	"github.com/eventlake/eventlake/internal/failpoint"
	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/lake"
)

// replayLake is a running `eventlake dev` whose dead letters are replayed.
type replayLake struct {
	t        *testing.T
	data     string
	broker   string
	api      string
	cl       *kgo.Client
	rcl      *sr.Client
	now      time.Time
	produced map[string][]string // event id -> coordinates, in order
}

func startReplayLake(t *testing.T, env ...string) *replayLake {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	dev := th.Start(t, "dev", append([]string{
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=200ms",
		"EVENTLAKE_QUERY_REFRESH_INTERVAL=100ms",
		"EVENTLAKE_SCHEMA_REGISTRY_POLL_INTERVAL=100ms",
		"EVENTLAKE_COMPACTOR_DISABLED=true",
	}, env...), "dev", "--no-demo", "--data-dir", data, "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	l := &replayLake{t: t, data: data, broker: dev.Ready["kafka"], api: "http://" + dev.Ready["http"],
		now: time.Now().UTC().Truncate(time.Second), produced: map[string][]string{}}
	var err error
	if l.cl, err = kgo.NewClient(kgo.SeedBrokers(l.broker), kgo.AllowAutoTopicCreation()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.cl.Close)
	if l.rcl, err = sr.NewClient(sr.URLs(l.api), sr.BearerToken(th.Token(l.api))); err != nil {
		t.Fatal(err)
	}
	return l
}

// order produces an order.created event on the orders topic, keyed by its
// order id, with the given quantity and amount.
func (l *replayLake) order(id string, quantity int, amount string) {
	l.t.Helper()
	l.send(id, demo.TypeOrderCreated, fmt.Sprintf(`{"order_id":"%s","user_id":"u-1","product_id":"p-1","quantity":%d,"amount":"%s"}`, id, quantity, amount))
}

func (l *replayLake) send(id, typ, payload string) {
	l.t.Helper()
	ts := l.now.Add(-time.Minute).Format(time.RFC3339)
	v := []byte(`{"event_id":"` + id + `","source":"replay-e2e","type":"` + typ + `","timestamp":"` + ts + `","payload":` + payload + `}`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := &kgo.Record{Topic: demo.TopicOrders, Key: []byte(id), Value: v}
	if err := l.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		l.t.Fatalf("produce %s: %v", id, err)
	}
	l.produced[id] = append(l.produced[id], fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset))
}

// register registers a JSON schema as the next version of subject.
func (l *replayLake) register(subject, text string) int {
	l.t.Helper()
	s, err := l.rcl.CreateSchema(context.Background(), subject, sr.Schema{Schema: text, Type: sr.TypeJSON})
	if err != nil {
		l.t.Fatalf("register %s: %v", subject, err)
	}
	return s.Version
}

// sql runs one query and returns its rows as text.
func (l *replayLake) sql(q string) string {
	l.t.Helper()
	return fmt.Sprint(th.SQL(l.t, l.api, q).Rows)
}

// await waits until q answers want.
func (l *replayLake) await(what, q, want string) {
	l.t.Helper()
	th.Eventually(l.t, 60*time.Second, what, func() (bool, string) {
		r, code := th.TrySQL(l.t, l.api, q)
		if code != 200 {
			return false, fmt.Sprintf("HTTP %d: %s", code, r.Error)
		}
		got := fmt.Sprint(r.Rows)
		return got == want, got
	})
}

// cli runs an eventlake command on the lake and returns its stdout.
func (l *replayLake) cli(args ...string) string {
	l.t.Helper()
	out, err := th.Command(l.t, append(args, "--data-dir", l.data)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			l.t.Fatalf("eventlake %v: %v\n%s%s", args, err, out, ee.Stderr)
		}
		l.t.Fatalf("eventlake %v: %v", args, err)
	}
	return string(out)
}

func (l *replayLake) replay(args ...string) ingest.ReplayReport {
	l.t.Helper()
	var rep ingest.ReplayReport
	out := l.cli(append([]string{"dlq", "replay", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		l.t.Fatalf("dlq replay %v: %v\n%s", args, err, out)
	}
	return rep
}

// pending counts the pending dead letters by reason.
func (l *replayLake) pending(args ...string) map[string]int64 {
	l.t.Helper()
	var o dlqListOut
	out := l.cli(append([]string{"dlq", "list", "--json", "--pending"}, args...)...)
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		l.t.Fatalf("dlq list --pending: %v\n%s", err, out)
	}
	return o.byReason()
}

// revenueOrders sums order_count of the revenue API over the test's hour.
func (l *replayLake) revenueOrders() (int64, error) {
	from := l.now.Add(-time.Hour).Truncate(time.Minute).Format(time.RFC3339)
	to := l.now.Add(time.Hour).Format(time.RFC3339)
	var body struct {
		Rows []struct {
			OrderCount int64 `json:"order_count"`
		} `json:"rows"`
	}
	switch code := th.GetJSON(l.t, l.api+"/v1/metrics/order_revenue_minute?from="+from+"&to="+to, &body); code {
	case 200:
	case 503: // warming up (Retry-After): ask again
		return 0, fmt.Errorf("revenue API: HTTP %d", code)
	default:
		l.t.Fatalf("revenue API: HTTP %d", code)
	}
	var n int64
	for _, r := range body.Rows {
		n += r.OrderCount
	}
	return n, nil
}

// awaitRevenue waits until the revenue API counts want orders.
func (l *replayLake) awaitRevenue(what string, want int64) {
	l.t.Helper()
	th.Eventually(l.t, 60*time.Second, what, func() (bool, string) {
		n, err := l.revenueOrders()
		if err != nil {
			return false, err.Error()
		}
		return n == want, fmt.Sprintf("%d orders", n)
	})
}

// orderV2 is the shipped order.created schema with quantity ≥ 0: the fix
// for a producer that sends orders of free samples with quantity 0.
func orderV2(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "schema", "shipped", "order.created.json"))
	if err != nil {
		t.Fatal(err)
	}
	v2 := strings.Replace(string(b), `"minimum": 1, "maximum": 1000000`, `"minimum": 0, "maximum": 1000000`, 1)
	if v2 == string(b) {
		t.Fatal("the shipped order.created schema no longer has quantity minimum 1: update the test")
	}
	return v2
}

const refundV1 = `{"type":"object","properties":{"refund_id":{"type":"string"},"refunded":{"type":"string"}},"required":["refund_id"]}`

// TestDLQReplay: a manual replay by filter, first dry (nothing changes),
// then for real: events now valid are in their table once, with their
// Kafka coordinates and replay_id; events already there (ingested since,
// or dead-lettered twice) are not doubled; rows still invalid stay pending
// with their new reason; the replay log holds the record; a second replay
// changes nothing. Then kill -9 at each commit step of a replay, and
// replay again: every event once, every row resolved, every replay that
// committed events logged. The revenue read model counts the replayed
// orders.
func TestDLQReplay(t *testing.T) {
	l := startReplayLake(t, "EVENTLAKE_DLQ_AUTO_REPLAY=false", "EVENTLAKE_INGEST_UNKNOWN_TYPES=dlq")
	for i := range 10 {
		l.order(fmt.Sprintf("good-%d", i), 1, "1.00")
	}
	for i := range 4 {
		l.order(fmt.Sprintf("bug-%d", i), 0, "2.00") // quantity 0: a schema violation under v1
	}
	l.order("bug-0", 0, "2.00") // the producer retried: dead-lettered twice
	for i := range 2 {
		l.order(fmt.Sprintf("neg-%d", i), -5, "3.00") // invalid under v2 too
	}
	l.order("pre-1", 0, "4.00") // dead-lettered, then sent again valid
	l.order("pre-1", 1, "4.00")
	var refunds []string
	for i := range 12 {
		id := fmt.Sprintf("ref-%d", i)
		refunds = append(refunds, id)
		l.send(id, "refund.issued", `{"refund_id":"`+id+`","refunded":"1.00"}`) // no subject yet: unknown_type
	}
	l.await("good orders and dead letters in the lake",
		"SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM dlq)", "[[11 20]]")
	if got := l.pending(); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"schema_violation": 8, "unknown_type": 12}) {
		t.Fatalf("pending dead letters: %v", got)
	}
	if v := l.register(demo.TypeOrderCreated, orderV2(t)); v != 2 {
		t.Fatalf("order.created registered as v%d, want v2", v)
	}
	l.register("refund.issued", refundV1)

	// A dry run counts and changes nothing.
	dry := l.replay("--dry-run", "--type", demo.TypeOrderCreated)
	if !dry.DryRun || dry.Selected != 8 || dry.Replayed != 4 || dry.AlreadyPresent != 2 || dry.StillInvalid != 2 {
		t.Fatalf("dry run: %+v, want 8 selected: 4 to replay, 2 present, 2 still invalid", dry)
	}
	if got := l.pending(); got["schema_violation"] != 8 {
		t.Fatalf("after a dry run, pending: %v", got)
	}
	if got := l.sql("SELECT count(*) FROM orders"); got != "[[11]]" {
		t.Fatalf("after a dry run, orders: %s", got)
	}
	// Without who asks, nothing runs.
	out, err := th.Command(t, "dlq", "replay", "--type", demo.TypeOrderCreated, "--data-dir", l.data).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--requested-by") {
		t.Fatalf("dlq replay without --requested-by: %v\n%s", err, out)
	}

	rep := l.replay("--type", demo.TypeOrderCreated, "--requested-by", "alice")
	if rep.DryRun || rep.Selected != 8 || rep.Replayed != 4 || rep.AlreadyPresent != 2 || rep.StillInvalid != 2 ||
		rep.Tables["orders_raw"] != 4 || rep.Snapshots["orders_raw"] == "" || rep.Snapshots["dlq"] == "" || rep.RequestedBy != "alice" {
		t.Fatalf("replay: %+v", rep)
	}
	l.await("replayed orders served", "SELECT count(*), count(DISTINCT event_id) FROM orders", "[[15 15]]")
	// Each replayed event keeps its Kafka coordinates and says which
	// replay committed it.
	res := th.SQL(t, l.api, "SELECT event_id, kafka_topic || '/' || kafka_partition || '/' || kafka_offset, replay_id FROM orders WHERE replay_id IS NOT NULL ORDER BY event_id")
	if len(res.Rows) != 4 {
		t.Fatalf("replayed rows: %v", res.Rows)
	}
	for _, r := range res.Rows {
		id, coords := fmt.Sprint(r[0]), fmt.Sprint(r[1])
		if !strings.HasPrefix(id, "bug-") || fmt.Sprint(r[2]) != rep.ReplayID || coords != l.produced[id][0] {
			t.Errorf("replayed row %v: want a bug order at %v with replay_id %s", r, l.produced[id], rep.ReplayID)
		}
	}
	if got := l.sql("SELECT count(*) FROM orders WHERE event_id = 'pre-1'"); got != "[[1]]" {
		t.Errorf("pre-1, dead-lettered and then ingested, is in orders %s times", got)
	}
	// Rows still invalid stay pending with their new reason (checked
	// against v2); the others are resolved by the replay.
	if got := l.pending(); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"schema_violation": 2, "unknown_type": 12}) {
		t.Errorf("pending after the replay: %v", got)
	}
	var still struct {
		DeadLetters []struct {
			EventID       *string `json:"event_id"`
			Reason        string  `json:"reason"`
			Detail        string  `json:"detail"`
			SchemaVersion int     `json:"schema_version"`
		} `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(l.cli("dlq", "show", "--json", "--pending", "--type", demo.TypeOrderCreated)), &still); err != nil {
		t.Fatal(err)
	}
	if len(still.DeadLetters) != 2 {
		t.Errorf("still invalid: %d rows, want the 2 neg orders", len(still.DeadLetters))
	}
	for _, d := range still.DeadLetters {
		if !strings.HasPrefix(deref(d.EventID), "neg-") || d.Reason != "schema_violation" || d.SchemaVersion != 2 {
			t.Errorf("still invalid: %s %s v%d %q, want a neg order checked against v2", deref(d.EventID), d.Reason, d.SchemaVersion, d.Detail)
		}
	}
	l.await("resolved dead letters marked", "SELECT count(*) FROM dlq WHERE replay_id = '"+rep.ReplayID+"' AND replayed_at IS NOT NULL", "[[6]]")
	l.await("the replay logged",
		"SELECT requested_by, trigger, selected, replayed, still_invalid, already_present FROM dlq_replays WHERE replay_id = '"+rep.ReplayID+"'",
		"[[alice manual 8 4 2 2]]")

	// A second replay of the same selection changes nothing.
	again := l.replay("--type", demo.TypeOrderCreated, "--requested-by", "alice")
	if again.Selected != 2 || again.Replayed != 0 || again.StillInvalid != 2 || len(again.Tables) != 0 {
		t.Errorf("second replay: %+v, want only the 2 invalid rows selected, nothing replayed", again)
	}
	if got := l.sql("SELECT count(*) FROM orders"); got != "[[15]]" {
		t.Errorf("after a second replay, orders: %s", got)
	}

	// kill -9 at every commit step, then replay again: exactly once.
	points := []string{
		lake.FailBeforeCommit + "/" + ingest.TaskReplay, lake.FailAfterCommit + "/" + ingest.TaskReplay,
		lake.FailBeforeCommit + "/" + ingest.TaskReplayMark, lake.FailAfterCommit + "/" + ingest.TaskReplayMark,
		lake.FailBeforeCommit + "/" + ingest.TaskReplayRecord, lake.FailAfterCommit + "/" + ingest.TaskReplayRecord,
	}
	for i, fp := range points {
		ids := strings.Join(refunds[2*i:2*i+2], ",")
		cmd := th.Command(t, "dlq", "replay", "--ids", ids, "--requested-by", "crash", "--data-dir", l.data)
		cmd.Env = append(cmd.Env, failpoint.EnvVar+"="+fp)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err == nil || !strings.Contains(err.Error(), "signal: killed") {
			t.Fatalf("dlq replay with failpoint %s: %v, want killed by it\n%s\n%s", fp, err, stdout.String(), stderr.String())
		}
		rep := l.replay("--ids", ids, "--requested-by", "crash")
		if rep.StillInvalid != 0 || rep.Selected != rep.Replayed+rep.AlreadyPresent {
			t.Errorf("replay after a crash at %s: %+v", fp, rep)
		}
		l.await("refunds "+ids+" once, after a crash at "+fp,
			"SELECT count(*), count(DISTINCT event_id), count(replay_id) FROM refund_issued WHERE event_id IN ('"+strings.ReplaceAll(ids, ",", "','")+"')", "[[2 2 2]]")
		if got := l.pending("--ids", ids); len(got) != 0 {
			t.Errorf("after a crash at %s and a replay, %s still pending: %v", fp, ids, got)
		}
	}
	if got := l.pending(); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"schema_violation": 2}) {
		t.Errorf("pending at the end: %v", got)
	}
	// Every replay that committed events is in the log.
	l.await("every replay logged",
		"SELECT count(*) FROM (SELECT DISTINCT replay_id FROM events WHERE replay_id IS NOT NULL) WHERE replay_id NOT IN (SELECT replay_id FROM dlq_replays)",
		"[[0]]")
	if got := l.sql("SELECT count(*), count(DISTINCT event_id) FROM events"); got != "[[27 27]]" {
		t.Errorf("events at the end: %s, want 27 events once each", got)
	}

	// The revenue read model counts the replayed orders: 10 good, pre-1
	// and the 4 replayed bug orders.
	l.awaitRevenue("revenue to count the replayed orders", 15)
	if len(l.produced) != 29 {
		t.Errorf("produced %d distinct ids, want 29", len(l.produced))
	}
}

// TestDLQAutoReplay: a producer bug sends orders that violate their
// schema; they land in the dead-letter table. Registering a compatible
// version that accepts them replays them automatically: SQL shows each
// once, the revenue read model includes them, dlq_replays holds the
// record (requested by auto; in batches of dlq.batch_rows), and none is
// pending any more.
func TestDLQAutoReplay(t *testing.T) {
	// Batches of 2 rows: the 3 dead letters are replayed by two replays.
	l := startReplayLake(t, "EVENTLAKE_DLQ_AUTO_REPLAY_DELAY=500ms", "EVENTLAKE_DLQ_BATCH_ROWS=2")
	for i := range 10 {
		l.order(fmt.Sprintf("good-%d", i), 1, "1.00")
	}
	for i := range 3 {
		l.order(fmt.Sprintf("bug-%d", i), 0, "2.00")
	}
	l.await("orders and dead letters in the lake", "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM dlq)", "[[10 3]]")
	l.awaitRevenue("revenue to count the good orders", 10)
	l.register(demo.TypeOrderCreated, orderV2(t))
	l.await("the bug orders replayed", "SELECT count(*), count(DISTINCT event_id), count(replay_id) FROM orders", "[[13 13 3]]")
	l.await("the automatic replay logged, in two batches",
		"SELECT requested_by, trigger, selected, replayed, still_invalid, already_present FROM dlq_replays ORDER BY selected DESC",
		"[[auto auto 2 2 0 0] [auto auto 1 1 0 0]]")
	if got := l.pending(); len(got) != 0 {
		t.Errorf("pending after the automatic replay: %v", got)
	}
	l.awaitRevenue("revenue to count the replayed orders", 13)
}
