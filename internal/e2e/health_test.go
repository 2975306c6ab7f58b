package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestIngestNotReadyWithoutBrokers: an ingester whose brokers do not
// answer is alive (/healthz 200) but not ready, and /readyz names the
// brokers and why; its state does not read consuming.
func TestIngestNotReadyWithoutBrokers(t *testing.T) {
	ing := th.Start(t, "ingest", nil, "ingest", "--brokers", "127.0.0.1:1",
		"--data-dir", filepath.Join(t.TempDir(), "data"), "--http", "127.0.0.1:0")
	base := "http://" + ing.Ready["http"]

	var reason string
	th.Eventually(t, 30*time.Second, "/readyz to report the brokers unreachable", func() (bool, string) {
		code, r, body := th.GetReadiness(t, base)
		reason = r.Reason("brokers")
		// Before the first dial fails it says no broker answered yet.
		return code == http.StatusServiceUnavailable && r.Status == "not_ready" && strings.Contains(reason, "unreachable"),
			fmt.Sprintf("HTTP %d: %s", code, body)
	})
	if !strings.Contains(reason, "127.0.0.1:1") || !strings.Contains(reason, "connection refused") {
		t.Fatalf("the brokers' reason does not name 127.0.0.1:1 and the refusal: %q", reason)
	}
	if code := httpStatus(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz (liveness) answered %d with the brokers down, want 200", code)
	}
	th.Eventually(t, 30*time.Second, "the ingest state to read disconnected", func() (bool, string) {
		m := scrape(t, base)
		return m.value(`eventlake_ingest_state{state="disconnected"}`) == 1 && m.value(`eventlake_ingest_state{state="consuming"}`) == 0,
			m.grep("eventlake_ingest_state")
	})
	if m := scrape(t, base); m.value(`eventlake_component_ready{component="brokers"}`) != 0 {
		t.Fatalf("eventlake_component_ready for the brokers: %s", m.grep("eventlake_component_ready"))
	}
}

// TestQuietTopicStaysReady: once what was produced is committed, a topic
// that receives nothing more leaves the process ready, with a consumer
// lag of 0 seconds.
func TestQuietTopicStaysReady(t *testing.T) {
	dev := th.Start(t, "dev", []string{"EVENTLAKE_INGEST_FLUSH_INTERVAL=300ms", "EVENTLAKE_QUERY_REFRESH_INTERVAL=200ms"},
		"dev", "--no-demo", "--data-dir", filepath.Join(t.TempDir(), "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	base := "http://" + dev.Ready["http"]
	th.WaitReadyz(t, base, 60*time.Second)

	cmd := th.Command(t, "produce", "--brokers", dev.Ready["kafka"], "--count", "300", "--rate", "0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}
	th.Eventually(t, 60*time.Second, "the 300 events committed and the lag back to 0 seconds", func() (bool, string) {
		m := scrape(t, base)
		lags := m.all("eventlake_ingest_consumer_lag_seconds")
		if len(lags) == 0 {
			return false, "no eventlake_ingest_consumer_lag_seconds series"
		}
		for _, v := range lags {
			if v != 0 {
				return false, m.grep("eventlake_ingest_consumer_lag_seconds")
			}
		}
		n := 0.0
		for _, v := range m.all("eventlake_ingest_freshness_seconds_count") {
			n += v
		}
		return n == 300, m.grep("eventlake_ingest_freshness_seconds_count")
	})
	r := th.WaitReadyz(t, base, 10*time.Second)
	for _, c := range r.Components {
		if !c.Ready {
			t.Fatalf("component %s not ready on a quiet topic: %s", c.Component, c.Reason)
		}
	}
	if m := scrape(t, base); m.value(`eventlake_ingest_state{state="consuming"}`) != 1 || m.value(`eventlake_component_ready{component="ingest"}`) != 1 {
		t.Fatalf("quiet ingest: %s\n%s", m.grep("eventlake_ingest_state"), m.grep("eventlake_component_ready"))
	}
}

// TestDevMetricsAlertable scrapes a running `eventlake dev` whose demo
// has run: promtool finds nothing wrong with the exposition, and the
// series alerts and dashboards use are there with sane values.
func TestDevMetricsAlertable(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is required (it checks the /metrics exposition): ", err)
	}
	dev := th.Start(t, "dev", []string{
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=300ms",
		"EVENTLAKE_QUERY_REFRESH_INTERVAL=200ms",
		"EVENTLAKE_COMPACTOR_INTERVAL=1s",
		"EVENTLAKE_COMPACTOR_MAX_FILES_PER_PARTITION=4",
		"EVENTLAKE_COMPACTOR_MIN_INPUT_FILES=2",
	}, "dev", "--demo-rate", "100", "--pg-listen", "off",
		"--data-dir", filepath.Join(t.TempDir(), "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	base := "http://" + dev.Ready["http"]
	th.WaitReadyz(t, base, 60*time.Second)

	// One answer and one refusal for the query duration's outcomes.
	th.SQL(t, base, "SELECT count(*) FROM orders")
	if _, code := th.TrySQL(t, base, "SELEC 1"); code/100 != 4 {
		t.Fatalf("a syntax error answered HTTP %d, want a 4xx", code)
	}
	var m metricsText
	th.Eventually(t, 60*time.Second, "commits of ingest, the read models and a compaction cycle", func() (bool, string) {
		m = scrape(t, base)
		ok := m.value(`eventlake_ingest_freshness_seconds_count{table="orders_raw"}`) > 0 &&
			len(m.all("eventlake_streamer_last_commit_timestamp_seconds")) > 0 &&
			len(m.all("eventlake_compactor_partition_data_files_max")) > 0
		return ok, m.grep("eventlake_ingest_freshness_seconds_count") + m.grep("eventlake_streamer_last_commit") + m.grep("eventlake_compactor_partition_data_files_max")
	})

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(m.raw)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}

	now := float64(time.Now().Unix())
	checks := []struct {
		series string
		ok     func(v float64) bool
	}{
		{"eventlake_ingest_consumer_lag_seconds", func(v float64) bool { return v >= 0 && v < 3600 }},
		{"eventlake_ingest_consumer_lag_records", func(v float64) bool { return v >= 0 }},
		{"eventlake_ingest_freshness_seconds_count", func(v float64) bool { return v > 0 }},
		{"eventlake_ingest_freshness_seconds_sum", func(v float64) bool { return v >= 0 }},
		{"eventlake_ingest_last_commit_timestamp_seconds", func(v float64) bool { return v > now-3600 && v <= now+60 }},
		{"eventlake_ingest_open_partitions", func(v float64) bool { return v >= 0 }},
		{"eventlake_ingest_state", func(v float64) bool { return v == 0 || v == 1 }},
		{"eventlake_streamer_last_commit_timestamp_seconds", func(v float64) bool { return v > now-3600 && v <= now+60 }},
		{"eventlake_streamer_hot_events", func(v float64) bool { return v >= 0 }},
		{"eventlake_streamer_state_entries", func(v float64) bool { return v >= 0 }},
		{"eventlake_compactor_partition_data_files_max", func(v float64) bool { return v >= 0 }},
		{"eventlake_component_ready", func(v float64) bool { return v == 1 }},
		{"process_start_time_seconds", func(v float64) bool { return v > now-3600 && v <= now }},
	}
	for _, c := range checks {
		vals := m.all(c.series)
		if len(vals) == 0 {
			t.Errorf("no %s series", c.series)
		}
		for s, v := range vals {
			if !c.ok(v) {
				t.Errorf("%s = %v, out of range", s, v)
			}
		}
	}
	for _, s := range []string{
		`eventlake_query_duration_seconds_count{endpoint="sql",outcome="ok"}`,
		`eventlake_query_duration_seconds_count{endpoint="sql",outcome="client_error"}`,
		`eventlake_streamer_state_entries{kind="products"}`,
	} {
		if m.value(s) <= 0 {
			t.Errorf("%s = %v, want > 0", s, m.value(s))
		}
	}
	if t.Failed() {
		t.Logf("scraped:\n%s", m.grep("eventlake_"))
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// metricsText is one scrape of /metrics: every sample by its series
// (name and labels as written).
type metricsText struct {
	raw     string
	samples map[string]float64
}

func scrape(t *testing.T, base string) metricsText {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d, %v", resp.StatusCode, err)
	}
	m := metricsText{raw: string(b), samples: map[string]float64{}}
	for _, line := range strings.Split(m.raw, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		m.samples[line[:i]] = v
	}
	return m
}

// value is one series' sample; -1 when absent (never a valid reading of
// the series checked with it, which are counts, 0/1 gauges and ages).
func (m metricsText) value(series string) float64 {
	if v, ok := m.samples[series]; ok {
		return v
	}
	return -1
}

// all are the samples of one metric name, by series.
func (m metricsText) all(name string) map[string]float64 {
	out := map[string]float64{}
	for s, v := range m.samples {
		if s == name || strings.HasPrefix(s, name+"{") {
			out[s] = v
		}
	}
	return out
}

// grep returns the exposition lines that mention s.
func (m metricsText) grep(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(m.raw, "\n") {
		if strings.Contains(line, s) && !strings.HasPrefix(line, "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
