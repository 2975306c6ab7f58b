package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// Docs that cannot rot: the shell blocks of the README and of
// docs/SCALE_OUT.md marked with a line <!-- test: NAME --> right before
// their ```sh fence are run, as written, by the tests below.

// docBlocks returns the ```sh blocks of the Markdown file at path (from
// the repository root) marked <!-- test: name -->.
func docBlocks(t *testing.T, path, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "<!-- test: "+name+" -->" || strings.TrimSpace(lines[i+1]) != "```sh" {
			continue
		}
		var block []string
		for i += 2; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			block = append(block, lines[i])
		}
		blocks = append(blocks, strings.Join(block, "\n"))
	}
	if len(blocks) == 0 {
		t.Fatalf("%s has no ```sh block marked <!-- test: %s -->", path, name)
	}
	return blocks
}

// docCommands splits a block into its commands as bash would: a command
// ends at a line break outside quotes that no backslash or pipe continues;
// blank lines are dropped.
func docCommands(block string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(block, "\n") {
		cur += l + "\n"
		t := strings.TrimSpace(l)
		if openQuote(cur) || strings.HasSuffix(t, `\`) || strings.HasSuffix(t, "|") {
			continue
		}
		if strings.TrimSpace(cur) != "" {
			out = append(out, strings.TrimSuffix(cur, "\n"))
		}
		cur = ""
	}
	return out
}

// openQuote reports whether s ends inside a quoted string.
func openQuote(s string) bool {
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q == 0 && (c == '\'' || c == '"'):
			q = c
		case q == 0 && c == '\\', q == '"' && c == '\\':
			i++
		case q == 0 && c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\n'):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == q:
			q = 0
		}
	}
	return q != 0
}

// runDocCommand runs one command of a doc with bash in dir, after the
// block's setup lines (export and alias), for at most d.
func runDocCommand(t *testing.T, dir string, setup []string, command string, env []string, d time.Duration) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	script := "shopt -s expand_aliases\nset -o pipefail\n" + strings.Join(setup, "\n") + "\n" + command + "\n"
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// assignment is a line that sets a shell variable (export X=..., X=$(...)).
var assignment = regexp.MustCompile(`^(?:export )?([A-Za-z_][A-Za-z0-9_]*)=(\$\([^()]*\)|[^ ]*)\s*(#.*)?$`)

var errorAnswer = regexp.MustCompile(`"(error|code)":`)

// TestReadmeExamples runs the README's marked examples against a real
// `eventlake dev` with its demo producer, from a directory whose data/ is
// the dev's data directory (the README's commands read data/admin.token),
// with the README's fixed addresses replaced by the ports the dev took.
// Every command must exit 0 and print something that is not an error
// answer (a command is retried for a while: the dev process may not have
// committed what it asks for yet); the revenue of the last hour must have
// rows.
func TestReadmeExamples(t *testing.T) {
	dir := t.TempDir()
	dev := th.Start(t, "dev", nil, "dev", "--data-dir", filepath.Join(dir, "data"),
		"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pg-listen", "127.0.0.1:0")
	_, pgPort, _ := strings.Cut(dev.Ready["postgres"], ":")
	subst := strings.NewReplacer(
		"localhost:8080", dev.Ready["http"],
		"127.0.0.1:9092", dev.Ready["kafka"],
		"-p 5433", "-p "+pgPort,
		"./bin/eventlake", th.Binary(t),
	)
	ran := 0
	// One shell session for the whole README, as a reader has: the alias
	// and token of "Try it" hold for the blocks after it.
	var setup []string
	// The default broker of the client commands (127.0.0.1:9092) is where
	// this dev's broker is.
	env := []string{"EVENTLAKE_KAFKA_BROKERS=" + dev.Ready["kafka"]}
	for _, block := range docBlocks(t, "README.md", "readme") {
		for _, c := range docCommands(block) {
			c = subst.Replace(c)
			if strings.HasPrefix(c, "alias ") {
				setup = append(setup, c)
				continue
			}
			if m := assignment.FindStringSubmatch(c); m != nil {
				// Run once; later commands get the value.
				out, err := runDocCommand(t, dir, nil, "set -e\n"+c+"\nprintf '\\n%s' \"$"+m[1]+"\"", env, 30*time.Second)
				val := out[strings.LastIndexByte(out, '\n')+1:] // what came before is the command's stderr
				if err != nil || val == "" {
					t.Fatalf("%s\n%v: %s", c, err, out)
				}
				env = append(env, m[1]+"="+val)
				continue
			}
			ran++
			if strings.Contains(c, "curl -sN") {
				// A live stream does not end: it must print an update
				// within a few seconds.
				out, _ := runDocCommand(t, dir, setup, c, env, 5*time.Second)
				if !strings.Contains(out, "data:") {
					t.Errorf("%s\nprinted no update in 5 s: %q", c, out)
				}
				continue
			}
			th.Eventually(t, 60*time.Second, "README example to succeed: "+c, func() (bool, string) {
				out, err := runDocCommand(t, dir, setup, c, env, 30*time.Second)
				switch {
				case err != nil:
					return false, err.Error() + ": " + out
				case strings.HasPrefix(c, "echo") && strings.Contains(c, "kcat"):
					return true, "" // a produce prints nothing
				case strings.TrimSpace(out) == "" || errorAnswer.MatchString(out):
					return false, "printed " + out
				case strings.Contains(c, "order_revenue_minute?from=") && !strings.Contains(out, `"rows":[{`):
					return false, "no revenue rows: " + out
				}
				return true, ""
			})
		}
	}
	t.Logf("ran %d README commands", ran)
}

// TestScaleOutDoc runs docs/SCALE_OUT.md's marked blocks, in order, as one
// bash script, against a real PostgreSQL cluster the test starts (the
// doc's psql creates the role and database in it) and the versitygw,
// broker, ingest, query and compact processes the doc starts itself. Only
// the doc's own variables are set: free ports, a work directory, the
// cluster's superuser. Then: every produced event is served by SQL, the
// ingest processes committed exactly the 1000 events, and both own
// partitions of the group.
func TestScaleOutDoc(t *testing.T) {
	pg := th.StartPostgres(t)
	work := t.TempDir()
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", th.FreePort(t)) }
	queryHTTP, ingest0, ingest1 := addr(), addr(), addr()
	env := []string{
		"WORK=" + work, "KAFKA=" + addr(), "S3_PORT=" + strconv.Itoa(th.FreePort(t)),
		"PG_HOST=127.0.0.1", "PG_PORT=" + strconv.Itoa(pg.Port), "PG_ADMIN=" + pg.User, "PGPASSWORD=" + pg.Password,
		// The cluster's superuser is named eventlake: the doc's role is another.
		"LAKE_ROLE=lake_writer",
		"QUERY_HTTP=" + queryHTTP, "QUERY_PG=" + addr(), "INGEST0_HTTP=" + ingest0, "INGEST1_HTTP=" + ingest1, "COMPACT_HTTP=" + addr(),
		"PATH=" + filepath.Dir(th.Binary(t)) + ":" + filepath.Dir(th.Versitygw(t)) + ":" + os.Getenv("PATH"),
	}
	script := "set -euo pipefail\n" + strings.Join(docBlocks(t, "docs/SCALE_OUT.md", "scale-out"), "\n") + "\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(th.Command(t).Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the doc's background processes are in its group
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGTERM: each process flushes and exits; then whatever is left.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		time.Sleep(2 * time.Second)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			for _, name := range []string{"ingest-0", "ingest-1", "query", "compact", "broker", "versitygw"} {
				b, _ := os.ReadFile(filepath.Join(work, name+".log"))
				t.Logf("--- %s.log (last 4 KiB) ---\n%s", name, tailString(string(b), 4<<10))
			}
		}
	})
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the doc's commands failed: %v\n%s", err, out.String())
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("the doc's commands did not finish in 5 minutes\n%s", out.String())
	}
	t.Logf("the doc's commands printed:\n%s", out.String())
	if strings.Contains(out.String(), pg.Password) {
		t.Fatal("the doc's commands printed the PostgreSQL password")
	}

	tok, err := os.ReadFile(filepath.Join(work, "ops.token"))
	if err != nil {
		t.Fatal(err)
	}
	th.SetToken(queryHTTP, strings.TrimSpace(string(tok)))
	th.Eventually(t, 90*time.Second, "the query service to serve the 1000 produced events", func() (bool, string) {
		res, status := th.TrySQL(t, "http://"+queryHTTP, "SELECT count(*), count(DISTINCT event_id) FROM events")
		if status != 200 {
			return false, fmt.Sprintf("HTTP %d: %s", status, res.Error)
		}
		return fmt.Sprint(res.Rows[0]) == "[1000 1000]", fmt.Sprint(res.Rows[0])
	})
	// Which process commits how many depends on when the group rebalanced
	// (the events may all arrive before the second one joins); together
	// they committed each event once, and both own partitions.
	th.Eventually(t, 90*time.Second, "the ingest processes to commit 1000 rows in all", func() (bool, string) {
		a, b := committedRows(t, ingest0), committedRows(t, ingest1)
		return a >= 0 && b >= 0 && a+b == 1000, fmt.Sprintf("ingest-0 %v, ingest-1 %v", a, b)
	})
	th.Eventually(t, 60*time.Second, "both ingest processes to own partitions", func() (bool, string) {
		state := ""
		for _, name := range []string{"ingest-0", "ingest-1"} {
			b, _ := os.ReadFile(filepath.Join(work, name+".log"))
			if !strings.Contains(string(b), "msg=\"partition assigned\"") {
				state += name + " owns none; "
			}
		}
		return state == "", state
	})
}

// committedRows sums eventlake_ingest_rows_committed_total on an ingest
// process's /metrics; -1 when it cannot be read (never a passing value).
func committedRows(t *testing.T, addr string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return -1
	}
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "eventlake_ingest_rows_committed_total{") {
			f := strings.Fields(l)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return -1
			}
			sum += v
		}
	}
	return sum
}
