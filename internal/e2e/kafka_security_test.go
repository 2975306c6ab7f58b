package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestKafkaSASLAndTLS runs the pipeline against the embedded broker with
// TLS and SASL/SCRAM-SHA-512 required: `eventlake produce` publishes,
// `eventlake ingest` writes the lake and `eventlake query` (its hot tier
// reads the topics too) serves every event exactly once. A wrong password
// stops produce and ingest at start with an error that says so, and a
// client without the test CA is refused for its TLS.
func TestKafkaSASLAndTLS(t *testing.T) {
	dir := t.TempDir()
	certs := th.NewTestCerts(t, dir)
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	brokerCfg := write("broker.yaml", fmt.Sprintf(`broker:
  tls: {cert_file: %s, key_file: %s}
  sasl_users:
    - {mechanism: SCRAM-SHA-512, username: eventlake, password: s3cret-pw}
`, certs.CertFile, certs.KeyFile))
	client := func(name, pw, ca string) string {
		return write(name, fmt.Sprintf(`kafka:
  tls: {enabled: true, ca_file: %q}
  sasl: {mechanism: SCRAM-SHA-512, username: eventlake, password_file: %s}
`, ca, write(name+".pw", pw+"\n")))
	}
	good := client("client.yaml", "s3cret-pw", certs.CAFile)
	bad := client("bad.yaml", "wrong-pw", certs.CAFile)

	brk := th.Start(t, "broker", nil, "broker", "--config", brokerCfg, "--data-dir", filepath.Join(dir, "broker"), "--listen", "127.0.0.1:0")
	addr := brk.Ready["kafka"]

	// Refused: a wrong password (produce and ingest), no TLS trust.
	for _, c := range []struct {
		name, want string
		args       []string
	}{
		{"produce, wrong password", "wrong username, password or mechanism", []string{"produce", "--config", bad, "--brokers", addr, "--count", "1", "--rate", "0"}},
		{"ingest, wrong password", "wrong username, password or mechanism", []string{"ingest", "--config", bad, "--brokers", addr, "--data-dir", filepath.Join(dir, "bad-lake"), "--http", "off"}},
		{"produce, unknown CA", "TLS to", []string{"produce", "--config", client("noca.yaml", "s3cret-pw", ""), "--brokers", addr, "--count", "1", "--rate", "0"}},
	} {
		cmd := th.Command(t, c.args...)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%s: still running after 60 s", c.name)
		}
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Fatalf("%s: exit %v, output %s; want a failure saying %q", c.name, err, out, c.want)
		}
	}

	// Accepted: produce, ingest, query over TLS and SASL.
	const n = 400
	if out, err := th.Command(t, "produce", "--config", good, "--brokers", addr, "--count", fmt.Sprint(n), "--rate", "0",
		"--seed", "5", "--late-fraction", "0", "--inventory-fraction", "0.25").CombinedOutput(); err != nil {
		t.Fatalf("produce: %v: %s", err, out)
	}
	lakeDir := filepath.Join(dir, "lake")
	ing := th.Start(t, "ingest", []string{"EVENTLAKE_INGEST_FLUSH_INTERVAL=200ms"}, "ingest", "--config", good, "--brokers", addr, "--data-dir", lakeDir, "--http", "127.0.0.1:0")
	tok := th.CreateToken(t, nil, "e2e", "analyst", "--config", good, "--data-dir", lakeDir)
	q := th.Start(t, "query", []string{"EVENTLAKE_QUERY_REFRESH_INTERVAL=100ms"}, "query", "--config", good, "--brokers", addr,
		"--data-dir", lakeDir, "--http", "127.0.0.1:0")
	th.SetToken(q.Ready["http"], tok)
	api := "http://" + q.Ready["http"]
	th.Eventually(t, 60*time.Second, "every produced event in the lake", func() (bool, string) {
		res, status := th.TrySQL(t, api, "SELECT count(*), count(DISTINCT event_id) FROM events")
		if status != 200 {
			return false, fmt.Sprintf("HTTP %d: %s", status, res.Error)
		}
		got := fmt.Sprint(res.Rows[0])
		return got == fmt.Sprintf("[%d %d]", n, n), got
	})
	// The hot tier reads the topics over TLS and SASL as well: with ingest
	// stopped, events produced now reach SQL through it alone.
	if err := ing.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop ingest: %v", err)
	}
	if out, err := th.Command(t, "produce", "--config", good, "--brokers", addr, "--count", "50", "--rate", "0",
		"--seed", "6", "--late-fraction", "0", "--inventory-fraction", "0").CombinedOutput(); err != nil {
		t.Fatalf("produce: %v: %s", err, out)
	}
	th.Eventually(t, 60*time.Second, "the events produced after ingest stopped, through the hot tier", func() (bool, string) {
		res, status := th.TrySQL(t, api, "SELECT count(*), count(DISTINCT event_id) FROM events")
		if status != 200 {
			return false, fmt.Sprintf("HTTP %d: %s", status, res.Error)
		}
		got := fmt.Sprint(res.Rows[0])
		return got == fmt.Sprintf("[%d %d]", n+50, n+50), got
	})
}
