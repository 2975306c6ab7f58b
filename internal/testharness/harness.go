// Package testharness starts the real eventlake binary and the real
// servers that integration and end-to-end tests talk to. It is used by
// tests only; .ci/run installs the external tools it needs (kcat).
package testharness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of an eventlake binary built from this checkout
// (once per test process), or $EVENTLAKE_BIN if set.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("EVENTLAKE_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "eventlake-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "eventlake")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/eventlake")
		cmd.Dir = repoRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Proc is a running eventlake process.
type Proc struct {
	t     testing.TB
	name  string
	cmd   *exec.Cmd
	log   *lockedBuffer
	Ready map[string]string // key=value pairs of its "ready" log line
	done  chan struct{}
	err   error

	readyCh chan map[string]string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	f  *os.File
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Write(p)
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start runs `eventlake args...` with extra environment entries and waits
// (up to 60 s) for its "ready" log line. The process is killed at cleanup.
func Start(t testing.TB, name string, env []string, args ...string) *Proc {
	t.Helper()
	p := StartNoWait(t, name, env, args...)
	p.WaitReady(60 * time.Second)
	return p
}

// StartNoWait starts the process without waiting for readiness.
func StartNoWait(t testing.TB, name string, env []string, args ...string) *Proc {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	lb := &lockedBuffer{f: logFile}
	cmd := Command(t, args...)
	cmd.Env = append(cmd.Env, env...)
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(lb, pw)
	cmd.Stdout = lb
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{t: t, name: name, cmd: cmd, log: lb, done: make(chan struct{})}
	readyCh := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent && strings.Contains(line, "msg=ready") {
				readyCh <- parseKV(line)
				sent = true
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		logFile.Close()
		close(p.done)
	}()
	p.readyCh = readyCh
	t.Cleanup(func() {
		p.Kill()
		if strings.Contains(p.log.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race (binary built with -race)", name)
		}
		if t.Failed() {
			t.Logf("--- log of %s (last 8 KiB) ---\n%s", name, tail(p.log.String(), 8<<10))
		}
	})
	return p
}

// Command returns an exec.Cmd running the eventlake binary with this
// process's environment minus the harness's and tests' own settings
// (EVENTLAKE_BIN, EVENTLAKE_TEST_*).
func Command(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	// Tests pick free ports: a dev process would take 5433 for Postgres.
	cmd.Env = append(cmd.Env, "EVENTLAKE_POSTGRES_LISTEN=127.0.0.1:0")
	for _, kv := range os.Environ() {
		// The harness's and the tests' own settings are not eventlake's,
		// whose configuration refuses unknown EVENTLAKE_* variables.
		if !strings.HasPrefix(kv, "EVENTLAKE_BIN=") && !strings.HasPrefix(kv, "EVENTLAKE_TEST_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

// WaitReady waits for the ready line.
func (p *Proc) WaitReady(d time.Duration) {
	p.t.Helper()
	select {
	case kv := <-p.readyCh:
		p.Ready = kv
		if f := kv["admin_token_file"]; f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				p.t.Fatalf("%s: read its admin token: %v", p.name, err)
			}
			SetToken(kv["http"], strings.TrimSpace(string(b)))
		}
	case <-p.done:
		p.t.Fatalf("%s exited before ready: %v\n%s", p.name, p.err, tail(p.log.String(), 8<<10))
	case <-time.After(d):
		p.t.Fatalf("%s not ready after %v\n%s", p.name, d, tail(p.log.String(), 8<<10))
	}
}

// Log returns everything the process logged so far.
func (p *Proc) Log() string { return p.log.String() }

// Kill sends SIGKILL and waits for the process to exit.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to d for a clean exit; it returns the
// exit error (nil on exit code 0).
func (p *Proc) Stop(d time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.Kill()
		return fmt.Errorf("%s did not exit within %v after SIGTERM", p.name, d)
	}
}

// Exited reports whether the process has exited, and its error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

func parseKV(line string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = strings.Trim(v, `"`)
		}
	}
	return kv
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Kcat returns the path of kcat, an independent (librdkafka) Kafka client.
// It fails the test if kcat is not installed: .ci/run installs it
// (apt-get install kcat).
func Kcat(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is required (Debian: apt-get install kcat; .ci/run installs it)")
	}
	return p
}

// SQLResult is the JSON of POST /v1/sql.
type SQLResult struct {
	Columns    []string                   `json:"columns"`
	Types      []string                   `json:"types"`
	Rows       [][]any                    `json:"rows"`
	Truncated  bool                       `json:"truncated"`
	SnapshotID map[string]int64           `json:"snapshot_id"`
	Offsets    map[string]json.RawMessage `json:"offsets"`
	Error      string                     `json:"error"`
	Code       string                     `json:"code"`
}

// SQL runs one statement against the query API and fails the test on a
// non-200 answer.
func SQL(t testing.TB, baseURL, sql string) SQLResult {
	t.Helper()
	res, status := TrySQL(t, baseURL, sql)
	if status != http.StatusOK {
		t.Fatalf("SQL %q: HTTP %d: %s (%s)", sql, status, res.Error, res.Code)
	}
	return res
}

// TrySQL runs one statement and returns the result and HTTP status.
func TrySQL(t testing.TB, baseURL, sql string) (SQLResult, int) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"sql": sql})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/sql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	Authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/sql: %v", err)
	}
	defer resp.Body.Close()
	var res SQLResult
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("decode /v1/sql answer (HTTP %d): %v", resp.StatusCode, err)
	}
	return res, resp.StatusCode
}

// GetJSON GETs url and decodes the JSON answer into v; it returns the
// HTTP status.
func GetJSON(t testing.TB, url string, v any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	Authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s (HTTP %d): %v", url, resp.StatusCode, err)
	}
	return resp.StatusCode
}

// Eventually polls cond every 100 ms until it returns true or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last state: %s", d, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tokens are the tokens the tests call each API with, by host:port.
var tokens sync.Map

// SetToken makes the helpers (and Authorize) send token to the API at
// addr (host:port).
func SetToken(addr, token string) { tokens.Store(addr, token) }

// Authorize adds the bearer token registered for req's host, if any: the
// admin token of an `eventlake dev` (read from the file its ready line
// names), or one SetToken registered.
func Authorize(req *http.Request) {
	if tok, ok := tokens.Load(req.URL.Host); ok && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+tok.(string))
	}
}

// CreateToken runs `eventlake token create` with args (the catalog's
// flags: --data-dir, --config) and env, and returns the token.
func CreateToken(t testing.TB, env []string, name, role string, args ...string) string {
	t.Helper()
	cmd := Command(t, append([]string{"token", "create", "--name", name, "--role", role}, args...)...)
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("eventlake token create %s: %v\n%s", name, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// Token is the token registered for addr (host:port, or a URL with it).
func Token(addr string) string {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	tok, _ := tokens.Load(addr)
	s, _ := tok.(string)
	return s
}

// Readiness is the answer of GET /readyz (internal/health.Report).
type Readiness struct {
	Status     string `json:"status"`
	Components []struct {
		Component string `json:"component"`
		Ready     bool   `json:"ready"`
		Reason    string `json:"reason"`
	} `json:"components"`
}

// Reason is the reason a component gives for not being ready ("" when it
// is ready or absent).
func (r Readiness) Reason(component string) string {
	for _, c := range r.Components {
		if c.Component == component {
			return c.Reason
		}
	}
	return ""
}

// GetReadiness GETs base/readyz once: its HTTP status, its answer and the
// raw body.
func GetReadiness(t testing.TB, base string) (int, Readiness, string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		return 0, Readiness{}, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, Readiness{}, err.Error()
	}
	var r Readiness
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("GET %s/readyz: HTTP %d, not a readiness report (%v): %s", base, resp.StatusCode, err, b)
	}
	return resp.StatusCode, r, string(b)
}

// WaitReadyz polls base/readyz until it answers 200 and fails the test,
// with the last answer (which names each component that is not ready and
// why), if it does not within d.
func WaitReadyz(t testing.TB, base string, d time.Duration) Readiness {
	t.Helper()
	var r Readiness
	Eventually(t, d, base+"/readyz to answer 200", func() (bool, string) {
		var code int
		var body string
		code, r, body = GetReadiness(t, base)
		return code == http.StatusOK && r.Status == "ready", fmt.Sprintf("HTTP %d: %s", code, body)
	})
	return r
}
