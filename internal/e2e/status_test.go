package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/query"
)

// tableSnapshots names each table's snapshot in a status answer.
func tableSnapshots(st query.StatusResponse) map[string]string {
	out := map[string]string{}
	for _, t := range st.Tables {
		// The test's own refused requests are audited: audit_log moves.
		if t.SnapshotID != nil && t.Name != "audit_log" {
			out[t.Name] = *t.SnapshotID
		}
	}
	return out
}

// TestStatusCommand: `eventlake status` shows what GET /v1/status says
// (snapshot ids as strings, files, rows, dead letters by reason as ingest
// counted and the dlq table holds them, readiness), with the token from
// <data-dir>/admin.token or EVENTLAKE_TOKEN; --json prints the endpoint's
// JSON and --watch redraws.
func TestStatusCommand(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	dev := th.Start(t, "dev", []string{"EVENTLAKE_STREAMER_COMMIT_INTERVAL=1s", "EVENTLAKE_INGEST_FLUSH_INTERVAL=1s"},
		"dev", "--no-demo", "--data-dir", data, "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	api, broker := "http://"+dev.Ready["http"], dev.Ready["kafka"]
	if out, err := runBinary(t, "produce", "--brokers", broker, "--rate", "0", "--count", "500", "--seed", "3",
		"--malformed-fraction", "0.05"); err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}

	get := func() (string, query.StatusResponse) {
		raw, _ := statusJSON(t, api)
		var st query.StatusResponse
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			t.Fatalf("decode /v1/status: %v", err)
		}
		return raw, st
	}
	// Every event is in the lake, the dead letters as ingest counted
	// them, and the snapshots no longer change.
	var (
		before    query.StatusResponse
		unchanged time.Time // since when the snapshots are those of before
	)
	th.Eventually(t, 60*time.Second, "a settled lake in /v1/status", func() (bool, string) {
		_, st := get()
		var raw, dlq int64
		for _, tb := range st.Tables {
			switch tb.Kind {
			case "raw":
				raw += tb.Rows
			case "dlq":
				dlq = tb.Rows
			}
		}
		if !reflect.DeepEqual(tableSnapshots(st), tableSnapshots(before)) {
			unchanged = time.Now()
		}
		// Quiet for longer than ingest's flush and the read models'
		// commit interval (1 s each here): nothing is left to commit.
		settled := st.DLQ.Total != nil && *st.DLQ.Total > 0 && int64(*st.DLQ.Total) == dlq && raw+dlq == 500 &&
			st.Readiness != nil && st.Readiness.Ready() && len(st.ReadModels) == 6 && st.ReadModels[0].State == "serving" &&
			time.Since(unchanged) > 3*time.Second && st.Ingest.RecordsPerSecond != nil
		before = st
		models := map[string]string{}
		for _, m := range st.ReadModels {
			models[m.Name] = m.State
		}
		return settled, fmt.Sprintf("raw %d + dlq %d rows; dlq counted %v; snapshots %v; read models %v; ready %+v", raw, dlq, st.DLQ.Total, tableSnapshots(st), models, st.Readiness)
	})
	if *before.Ingest.RecordsPerSecond <= 0 {
		t.Errorf("ingest rate %v records/s within a minute of 500 records; want > 0", *before.Ingest.RecordsPerSecond)
	}
	raw, _ := get()
	if !regexp.MustCompile(`"snapshot_id":"\d+"`).MatchString(raw) {
		t.Errorf("snapshot ids are not JSON strings: %s", raw)
	}

	// The screen, with the dev admin token read from the data directory.
	out, err := runBinary(t, "status", "--url", api, "--data-dir", data)
	if err != nil {
		t.Fatalf("eventlake status: %v\n%s", err, out)
	}
	t.Logf("eventlake status:\n%s", out)
	_, after := get()
	if !reflect.DeepEqual(tableSnapshots(after), tableSnapshots(before)) {
		t.Fatalf("the lake changed while settled: %v then %v", tableSnapshots(before), tableSnapshots(after))
	}
	for _, tb := range before.Tables {
		snap := "-"
		if tb.SnapshotID != nil {
			snap = *tb.SnapshotID
		}
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tb.Name) + `\s+` + tb.Kind + `\s+` + regexp.QuoteMeta(snap) +
			fmt.Sprintf(`\s+%d\s+%d\s`, tb.DataFiles, tb.Rows))
		if !row.MatchString(out) {
			t.Errorf("no line for table %s (%s, snapshot %s, %d files, %d rows) in:\n%s", tb.Name, tb.Kind, snap, tb.DataFiles, tb.Rows, out)
		}
	}
	for reason, n := range before.DLQ.ByReason {
		if !strings.Contains(out, fmt.Sprintf("%s %.0f", reason, n)) {
			t.Errorf("dead letters %s %.0f missing in:\n%s", reason, n, out)
		}
	}
	for _, want := range []string{"READY", "ok  ingest", "ok  hot_tier", "ok  read_models", "order_revenue_minute serving"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q missing in:\n%s", want, out)
		}
	}

	// --json is the endpoint's JSON; EVENTLAKE_TOKEN is used without a
	// token file.
	cmd := th.Command(t, "status", "--url", api, "--json", "--data-dir", filepath.Join(dir, "none"))
	cmd.Env = append(cmd.Env, "EVENTLAKE_TOKEN="+th.Token(api))
	js, err := cmd.Output()
	if err != nil {
		t.Fatalf("eventlake status --json: %v", err)
	}
	var fromCLI query.StatusResponse
	if err := json.Unmarshal(js, &fromCLI); err != nil {
		t.Fatalf("status --json is not the endpoint's JSON: %v\n%s", err, js)
	}
	if !reflect.DeepEqual(tableSnapshots(fromCLI), tableSnapshots(before)) {
		t.Errorf("status --json tables %v, want %v", tableSnapshots(fromCLI), tableSnapshots(before))
	}

	// A token the service refuses: exit 1, saying what to do.
	cmd = th.Command(t, "status", "--url", api, "--token", "elk_wrong")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "HTTP 401") || !strings.Contains(stderr.String(), "--token") {
		t.Errorf("status with a wrong token: err %v, stderr %q", err, stderr.String())
	}

	// A query process over the same lake has no ingest: its figures are
	// null (n/a), its tables the same.
	q := th.Start(t, "query", []string{"EVENTLAKE_AUDIT_DIR=" + filepath.Join(dir, "query-audit")}, "query", "--no-hot", "--data-dir", data, "--http", "127.0.0.1:0")
	qapi := "http://" + q.Ready["http"]
	th.SetToken(q.Ready["http"], th.Token(api))
	var fromQuery query.StatusResponse
	th.Eventually(t, 30*time.Second, "the query process's status", func() (bool, string) {
		raw, _ := statusJSON(t, qapi)
		fromQuery = query.StatusResponse{}
		_ = json.Unmarshal([]byte(raw), &fromQuery)
		return reflect.DeepEqual(tableSnapshots(fromQuery), tableSnapshots(before)), fmt.Sprint(tableSnapshots(fromQuery))
	})
	if in := fromQuery.Ingest; in.RecordsPerSecond != nil || in.LagRecords != nil || fromQuery.DLQ.Total != nil || fromQuery.DLQ.ByReason != nil {
		t.Errorf("ingest figures of a process without ingest: %+v, dlq %+v", in, fromQuery.DLQ)
	}
	out, err = runBinary(t, "status", "--url", qapi, "--token", th.Token(api))
	if err != nil || !strings.Contains(out, "ingest  n/a rec/s") || !strings.Contains(out, "dead letters by reason: n/a") {
		t.Errorf("eventlake status of a query process: %v\n%s", err, out)
	}

	// --watch redraws until stopped.
	cmd = th.Command(t, "status", "--url", api, "--data-dir", data, "--watch", "0.2")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	screens := 0
	sc := bufio.NewScanner(stdout)
	for screens < 3 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "eventlake status ") {
			screens++
		}
	}
	if screens < 3 {
		t.Fatalf("status --watch drew %d screens before it stopped (%v)", screens, sc.Err())
	}
}
