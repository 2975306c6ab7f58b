package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestHTTPLimits checks, on a running `eventlake dev` with its defaults,
// what every caller of the API meets before any data: a request id on
// every answer, no profiler, no cross-site SQL (JSON bodies only, no CORS
// unless configured) and an answer that stops at query.max_answer_bytes
// instead of holding hundreds of megabytes.
func TestHTTPLimits(t *testing.T) {
	dir := t.TempDir()
	dev := th.Start(t, "dev", []string{"EVENTLAKE_QUERY_MAX_ANSWER_BYTES=16777216"},
		"dev", "--no-demo", "--data-dir", filepath.Join(dir, "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	api := "http://" + dev.Ready["http"]
	client := &http.Client{Timeout: 60 * time.Second}
	do := func(method, path, contentType, body string, header map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, api+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		th.Authorize(req)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}

	// A request id on every answer, the caller's when it sent one.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, b := do(http.MethodGet, "/readyz", "", "", nil)
		if resp.Header.Get("X-Request-Id") == "" {
			t.Fatalf("/readyz (HTTP %d) has no X-Request-Id", resp.StatusCode)
		}
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: HTTP %d: %s", resp.StatusCode, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, _ := do(http.MethodGet, "/subjects", "", "", map[string]string{"X-Request-Id": "trace-42"}); resp.Header.Get("X-Request-Id") != "trace-42" {
		t.Fatalf("/subjects answered X-Request-Id %q, want the caller's trace-42", resp.Header.Get("X-Request-Id"))
	}

	// No profiler unless http.pprof is set.
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
		if resp, b := do(http.MethodGet, p, "", "", nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s: HTTP %d (%.100s), want 404", p, resp.StatusCode, b)
		}
	}

	// SQL only in a JSON body; no cross-origin permission by default.
	if resp, b := do(http.MethodPost, "/v1/sql", "text/plain", `{"sql":"SELECT 1"}`, nil); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain POST /v1/sql: HTTP %d: %s", resp.StatusCode, b)
	}
	resp, _ := do(http.MethodOptions, "/v1/sql", "", "", map[string]string{"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"})
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin: HTTP %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}

	// 200 MB of rows: the answer stops at the cap and says so.
	resp, b := do(http.MethodPost, "/v1/sql", "application/json", `{"sql":"SELECT repeat('x', 10000000) AS s FROM range(20)"}`, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("huge answer: HTTP %d: %.300s", resp.StatusCode, b)
	}
	var res struct {
		Rows        [][]string `json:"rows"`
		Truncated   bool       `json:"truncated"`
		TruncatedBy string     `json:"truncated_by"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || res.TruncatedBy != "bytes" || len(res.Rows) != 1 || len(b) > 16<<20 {
		t.Fatalf("huge answer: %d rows, truncated %v by %q, %d bytes; want 1 row (the cap is 16 MiB), truncated by bytes", len(res.Rows), res.Truncated, res.TruncatedBy, len(b))
	}
}

// TestHTTPS serves the query API over TLS from certificate files and
// replaces the certificate on SIGHUP without a restart.
func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	first, second := th.NewTestCerts(t, t.TempDir()), th.NewTestCerts(t, t.TempDir())
	certFile, keyFile := filepath.Join(dir, "tls.pem"), filepath.Join(dir, "tls-key.pem")
	install := func(c th.TestCerts) []byte {
		t.Helper()
		cert, err := os.ReadFile(c.CertFile)
		if err != nil {
			t.Fatal(err)
		}
		key, err := os.ReadFile(c.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, cert, 0o600); err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(cert)
		return block.Bytes
	}
	want := install(first)
	q := th.Start(t, "query", []string{"EVENTLAKE_HTTP_TLS_CERT_FILE=" + certFile, "EVENTLAKE_HTTP_TLS_KEY_FILE=" + keyFile},
		"query", "--no-hot", "--create-lake", "--data-dir", filepath.Join(dir, "data"), "--http", "127.0.0.1:0")
	addr := q.Ready["http"]

	roots := x509.NewCertPool()
	for _, c := range []th.TestCerts{first, second} {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		roots.AppendCertsFromPEM(b)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}}
	served := func() ([]byte, int, error) {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Raw, resp.StatusCode, nil
	}
	got, status, err := served()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("GET https://%s/healthz: HTTP %d, %v; served the installed certificate: %v", addr, status, err, bytes.Equal(got, want))
	}
	// Plain HTTP is not answered with data.
	resp, err := http.Get("http://" + addr + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP to the TLS listener answered 200")
		}
	}

	// A renewed certificate, then SIGHUP: new connections get it.
	want = install(second)
	if err := syscall.Kill(q.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	th.Eventually(t, 10*time.Second, "the renewed certificate served after SIGHUP", func() (bool, string) {
		got, status, err := served()
		return err == nil && bytes.Equal(got, want), fmt.Sprint(status, err)
	})
	if exited, err := q.Exited(); exited {
		t.Fatalf("query exited after SIGHUP: %v", err)
	}
}
