package infra

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestLiveDev runs the alert rules and the dashboards against a real
// `eventlake dev` with its demo shop: the Debian prometheus binary scrapes
// it and evaluates alerts.yml, and every SQL panel runs over eventlake's
// Postgres wire protocol as a dashboard-role token, the way Grafana would.
// (Grafana itself is not installable here; its macros are substituted by
// expandSQL.)
func TestLiveDev(t *testing.T) {
	prometheus := lookPath(t, "prometheus")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	dev := th.Start(t, "dev", nil, "dev", "--data-dir", data,
		"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pg-listen", "127.0.0.1:0")
	t.Run("prometheus", func(t *testing.T) { testPrometheus(t, prometheus, dev.Ready["http"]) })
	t.Run("sql_panels", func(t *testing.T) { testSQLPanels(t, data, dev.Ready["postgres"]) })
}

// onDev are metrics every `eventlake dev` exports from its start (and that
// alerts.yml uses): the scrape must deliver them to Prometheus.
var onDev = []string{
	"eventlake_ingest_rows_committed_total", "eventlake_ingest_consumer_lag_records",
	"eventlake_ingest_last_commit_timestamp_seconds", "eventlake_ingest_dlq_total", "eventlake_ingest_state",
	"eventlake_streamer_hot_events", "eventlake_query_hot_full", "eventlake_audit_records_pending",
	"eventlake_audit_last_commit_timestamp_seconds", "process_start_time_seconds",
}

func testPrometheus(t *testing.T, bin, devAddr string) {
	dir := t.TempDir()

	// The rules as shipped, but evaluated every second instead of every
	// minute, so that each rule is evaluated against live data within the
	// test; the expressions are unchanged.
	rules, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var shipped struct {
		Groups []struct {
			Name     string           `yaml:"name"`
			Interval string           `yaml:"interval"`
			Rules    []map[string]any `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &shipped); err != nil {
		t.Fatal(err)
	}
	var groups []string
	nrules := 0
	for _, g := range shipped.Groups {
		if g.Interval != "1m" {
			t.Fatalf("group %s evaluates every %q, want 1m (the rules' for: counts 1-minute checks)", g.Name, g.Interval)
		}
		groups = append(groups, g.Name)
		nrules += len(g.Rules)
	}
	fast := strings.ReplaceAll(string(rules), "\n    interval: 1m\n", "\n    interval: 1s\n")
	if n := strings.Count(fast, "\n    interval: 1s\n"); n != len(groups) {
		t.Fatalf("set the interval of %d groups to 1s, want all %d", n, len(groups))
	}
	rulesFile := filepath.Join(dir, "alerts.yml")
	if err := os.WriteFile(rulesFile, []byte(fast), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: eventlake
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
`, rulesFile, devAddr)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(th.FreePort(t)))
	var logBuf strings.Builder
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+listen, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed when prometheus has exited, with waitErr set
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- prometheus log ---\n%s", logBuf.String())
		}
	})
	api := "http://" + listen

	// Ready: /-/ready answers 503 while the TSDB opens, then 200.
	th.Eventually(t, 60*time.Second, "prometheus ready", func() (bool, string) {
		resp, err := http.Get(api + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})

	// The target is up.
	th.Eventually(t, 60*time.Second, "the eventlake target up", func() (bool, string) {
		var targets struct {
			ActiveTargets []struct {
				ScrapeURL string `json:"scrapeUrl"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		}
		promAPI(t, api, "/api/v1/targets", nil, &targets)
		for _, tg := range targets.ActiveTargets {
			if strings.Contains(tg.ScrapeURL, devAddr) {
				return tg.Health == "up", tg.Health + " " + tg.LastError
			}
		}
		return false, fmt.Sprintf("no target for %s in %+v", devAddr, targets.ActiveTargets)
	})
	// Prometheus marks a target up before it commits that scrape's samples,
	// so the up series may not be queryable yet: wait for it, and require 1.
	th.Eventually(t, 30*time.Second, `up{job="eventlake"} = 1`, func() (bool, string) {
		v := promValue(t, api, `up{job="eventlake"}`)
		return v == 1, fmt.Sprint(v)
	})
	// The demo's events reached the lake, as Prometheus sees it.
	th.Eventually(t, 90*time.Second, "rows committed, scraped", func() (bool, string) {
		v := promValue(t, api, "sum(eventlake_ingest_rows_committed_total)")
		return v > 0, fmt.Sprint(v)
	})
	withData := time.Now()

	// Every metric the rules and panels use that this binary exports is
	// in Prometheus; the ones it does not export are listed.
	exposed := exposedMetrics(t, devAddr)
	for _, n := range onDev {
		if !exposed[n] {
			t.Errorf("eventlake dev does not export %s", n)
		}
	}
	var used []string
	for _, f := range []string{filepath.Join("prometheus", "alerts.yml"), filepath.Join("grafana", "dashboards", "operations.json")} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		used = append(used, metricName.FindAllString(string(b), -1)...)
	}
	slices.Sort(used)
	used = slices.Compact(used)
	var missing []string
	for _, n := range used {
		if !exposed[n] {
			missing = append(missing, n)
			continue
		}
		th.Eventually(t, 30*time.Second, n+" in Prometheus", func() (bool, string) {
			v := promValue(t, api, fmt.Sprintf(`count({__name__=~"%s(_bucket)?", job="eventlake"})`, n))
			return v > 0, fmt.Sprint(v)
		})
	}
	if len(missing) > 0 {
		t.Logf("used by the rules or the operations dashboard but not exported by this eventlake dev (yet): %s", strings.Join(missing, ", "))
	}

	// Every rule group is loaded and every rule evaluated without error
	// against the live data (health "ok").
	type ruleState struct {
		Name           string    `json:"name"`
		Health         string    `json:"health"`
		LastError      string    `json:"lastError"`
		LastEvaluation time.Time `json:"lastEvaluation"`
	}
	var loaded struct {
		Groups []struct {
			Name  string      `json:"name"`
			Rules []ruleState `json:"rules"`
		} `json:"groups"`
	}
	th.Eventually(t, 60*time.Second, "every rule evaluated after data arrived", func() (bool, string) {
		promAPI(t, api, "/api/v1/rules", nil, &loaded)
		for _, g := range loaded.Groups {
			for _, r := range g.Rules {
				if !r.LastEvaluation.After(withData) {
					return false, fmt.Sprintf("%s last evaluated %v", r.Name, r.LastEvaluation)
				}
			}
		}
		return true, ""
	})
	var got []string
	n := 0
	for _, g := range loaded.Groups {
		got = append(got, g.Name)
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" || r.LastError != "" {
				t.Errorf("rule %s in %s: health %q, error %q", r.Name, g.Name, r.Health, r.LastError)
			}
		}
	}
	slices.Sort(got)
	slices.Sort(groups)
	if !slices.Equal(got, groups) || n != nrules {
		t.Errorf("prometheus loaded groups %v with %d rules, want %v with %d", got, n, groups, nrules)
	}

	// The healthy demo raises no alert, not even a pending one (a pending
	// alert is an expression that is true now).
	var alerts struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	promAPI(t, api, "/api/v1/alerts", nil, &alerts)
	for _, a := range alerts.Alerts {
		t.Errorf("alert %s is %s on the healthy demo: %v", a.Labels["alertname"], a.State, a.Labels)
	}

	// Every dashboard PromQL expression evaluates without error.
	for _, q := range loadDashboards(t) {
		if q.ds.UID != promUID {
			continue
		}
		expr, err := expandPromQL(q.Expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		var res json.RawMessage
		promAPI(t, api, "/api/v1/query", url.Values{"query": {expr}}, &res)
	}

	// A clean stop.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("prometheus exited with %v after SIGTERM", waitErr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("prometheus did not exit within 60s of SIGTERM")
	}
}

// promAPI GETs a Prometheus API path and decodes its data into out. Any
// answer but 200 with status "success" fails the test.
func promAPI(t *testing.T, api, path string, q url.Values, out any) {
	t.Helper()
	u := api + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || resp.StatusCode != http.StatusOK || env.Status != "success" {
		t.Fatalf("GET %s: %s %s %s", u, resp.Status, env.Error, body)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		t.Fatalf("GET %s: decode data: %v", u, err)
	}
}

// promValue evaluates an instant query that returns at most one sample;
// no sample is NaN (which fails every comparison).
func promValue(t *testing.T, api, expr string) float64 {
	t.Helper()
	var res struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	promAPI(t, api, "/api/v1/query", url.Values{"query": {expr}}, &res)
	if res.ResultType != "vector" || len(res.Result) > 1 {
		t.Fatalf("%s: want at most one sample, got %s with %d", expr, res.ResultType, len(res.Result))
	}
	if len(res.Result) == 0 {
		return math.NaN()
	}
	s, _ := res.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%s: value %v: %v", expr, res.Result[0].Value, err)
	}
	return v
}

// exposedMetrics returns the metric names that the process at addr exposes
// on /metrics now: its series' names and each histogram's own name.
func exposedMetrics(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics of eventlake dev: %s", resp.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
			if base, ok := strings.CutSuffix(line[:i], "_bucket"); ok {
				names[base] = true // a histogram's own name
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

func testSQLPanels(t *testing.T, data, pgAddr string) {
	// Grafana's data source logs in as a dashboard-role token, as the
	// provisioning file tells operators to create it.
	tok := th.CreateToken(t, nil, "grafana", "dashboard", "--data-dir", data)
	host, port, err := net.SplitHostPort(pgAddr)
	if err != nil {
		t.Fatalf("postgres address %q: %v", pgAddr, err)
	}
	ctx := context.Background()
	var conn *pgx.Conn
	th.Eventually(t, 30*time.Second, "a Postgres connection as the grafana token", func() (bool, string) {
		c, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=grafana password=%s dbname=eventlake sslmode=disable", host, port, tok))
		if err != nil {
			return false, err.Error()
		}
		conn = c
		return true, ""
	})
	defer conn.Close(ctx)

	var panels []query
	for _, q := range loadDashboards(t) {
		if q.ds.UID == pgUID {
			panels = append(panels, q)
		}
	}
	// run runs one panel's SQL over the last hour (the dashboards'
	// default range) and returns its rows.
	run := func(q query) ([][]any, error) {
		now := time.Now()
		sql, err := expandSQL(q.RawSQL, now.Add(-time.Hour), now)
		if err != nil {
			return nil, err
		}
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			return nil, err
		}
		fields := rows.FieldDescriptions()
		out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
		if err != nil {
			return nil, err
		}
		if q.Format == "time_series" && (len(fields) < 2 || fields[0].Name != "time") {
			return nil, fmt.Errorf("a time series needs a first column named time and a value, has %v", fields)
		}
		return out, nil
	}
	revenue := false
	for _, q := range panels {
		if q.panel == "Revenue per minute" {
			revenue = true
			// The read model commits every few seconds: wait for rows.
			th.Eventually(t, 60*time.Second, "revenue per minute rows", func() (bool, string) {
				rows, err := run(q)
				if err != nil {
					t.Fatalf("%s: %v", q.where, err)
				}
				return len(rows) > 0 && rows[0][1] != nil, fmt.Sprintf("%d rows", len(rows))
			})
		}
		rows, err := run(q)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		t.Logf("%s: %d rows", q.where, len(rows))
	}
	if !revenue {
		t.Error(`the business dashboard has no "Revenue per minute" panel`)
	}
}
