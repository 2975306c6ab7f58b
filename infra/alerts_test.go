package infra

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestAlertRules checks the alert rules with the real promtool: syntax
// (check rules) and behaviour (the unit tests in alerts_test.yml).
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is required (Debian: apt-get install prometheus; .ci/run installs it)")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// metricName matches eventlake's metric names (recording rules are
// eventlake:..., with a colon).
var metricName = regexp.MustCompile(`eventlake_[a-z_]+`)

// TestAlertMetricsExist fails when an alert or a dashboard refers to a
// metric that no eventlake component exports (a renamed metric silently
// disables an alert and empties a panel).
func TestAlertMetricsExist(t *testing.T) {
	var rules []byte
	for _, f := range []string{filepath.Join("prometheus", "alerts.yml"), filepath.Join("grafana", "dashboards", "operations.json")} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, b...)
	}
	var src strings.Builder
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := metricName.FindAllString(string(rules), -1)
	if len(names) == 0 {
		t.Fatal("no eventlake metrics found in alerts.yml and the operations dashboard")
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		if !exported(src.String(), n) {
			t.Errorf("alerts.yml or the operations dashboard uses %s, which no component exports", n)
		}
	}
}

// exported reports whether Go source declares the metric name, or, for a
// histogram's _bucket, _count and _sum series, the histogram's name.
func exported(src, name string) bool {
	if strings.Contains(src, `"`+name+`"`) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && strings.Contains(src, `"`+base+`"`) {
			return true
		}
	}
	return false
}
