package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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
