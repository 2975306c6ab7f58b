package infra

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The Grafana dashboard model, as far as the tests read it.
type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int        `json:"id"`
	Title      string     `json:"title"`
	Type       string     `json:"type"`
	Datasource datasource `json:"datasource"`
	Targets    []target   `json:"targets"`
	Panels     []panel    `json:"panels"` // a collapsed row's panels
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string     `json:"refId"`
	Datasource datasource `json:"datasource"`
	Expr       string     `json:"expr"`   // Prometheus
	RawSQL     string     `json:"rawSql"` // Postgres
	Format     string     `json:"format"` // Postgres: time_series or table
}

// query is one panel target with where it comes from, for messages.
type query struct {
	where string // dashboard / panel title / refId
	panel string
	ds    datasource
	target
}

const (
	promUID = "eventlake-prometheus"
	pgUID   = "eventlake-postgres"
)

// loadDashboards parses every dashboard under grafana/dashboards and
// returns their targets. It fails the test on a file that is not a
// dashboard, a duplicate uid, a panel without a query, or a query on a data
// source the provisioning does not define.
func loadDashboards(t *testing.T) []query {
	t.Helper()
	var prov struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile(filepath.Join("grafana", "provisioning", "datasources", "eventlake.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prov); err != nil {
		t.Fatalf("grafana data source provisioning: %v", err)
	}
	provisioned := map[string]string{}
	for _, d := range prov.Datasources {
		provisioned[d.UID] = d.Type
	}
	if provisioned[promUID] != "prometheus" || provisioned[pgUID] != "postgres" {
		t.Fatalf("provisioning must define %s (prometheus) and %s (postgres), has %v", promUID, pgUID, provisioned)
	}

	files, err := filepath.Glob(filepath.Join("grafana", "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("want the operations and business dashboards in grafana/dashboards, found %v", files)
	}
	uids := map[string]string{}
	var qs []query
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
			t.Fatalf("%s: a dashboard needs a uid, a title and panels", f)
		}
		if other, dup := uids[d.UID]; dup {
			t.Fatalf("%s and %s have the same uid %q", f, other, d.UID)
		}
		uids[d.UID] = f
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				walk(p.Panels)
				if p.Type == "row" {
					continue
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no query", f, p.Title)
				}
				for _, tg := range p.Targets {
					q := query{where: fmt.Sprintf("%s / %s / %s", d.Title, p.Title, tg.RefID), panel: p.Title, ds: tg.Datasource, target: tg}
					if q.ds.UID == "" {
						q.ds = p.Datasource
					}
					if _, ok := provisioned[q.ds.UID]; !ok {
						t.Errorf("%s: data source uid %q is not provisioned", q.where, q.ds.UID)
					}
					switch q.ds.UID {
					case promUID:
						if q.Expr == "" {
							t.Errorf("%s: Prometheus target without expr", q.where)
						}
					case pgUID:
						if q.RawSQL == "" || (q.Format != "time_series" && q.Format != "table") {
							t.Errorf("%s: Postgres target needs rawSql and format time_series or table", q.where)
						}
					}
					qs = append(qs, q)
				}
			}
		}
		walk(d.Panels)
	}
	return qs
}

// promVars are Grafana's variables in PromQL with values valid for a 1 s
// scrape interval.
var promVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "1h")

// expandPromQL replaces Grafana's variables; any other $ is an error (a
// template variable the dashboard does not define).
func expandPromQL(expr string) (string, error) {
	out := promVars.Replace(expr)
	if strings.Contains(out, "$") {
		return "", fmt.Errorf("unknown Grafana variable in %q", expr)
	}
	return out, nil
}

var sqlMacro = regexp.MustCompile(`\$__(timeFilter)\(\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\)|\$__(timeFrom|timeTo)\(\)`)

// expandSQL replaces the time macros the way Grafana's Postgres data
// source does (its macros.go; the docs show "time BETWEEN
// '2017-07-18T11:15:52Z' AND ..."): $__timeFilter(col) is `col BETWEEN
// '<from>' AND '<to>'`, $__timeFrom() and $__timeTo() are the quoted
// bounds, RFC 3339 in UTC. Any other macro or variable is an error: the
// test would not run what Grafana sends.
func expandSQL(sql string, from, to time.Time) (string, error) {
	lit := func(ts time.Time) string { return "'" + ts.UTC().Format(time.RFC3339Nano) + "'" }
	out := sqlMacro.ReplaceAllStringFunc(sql, func(m string) string {
		g := sqlMacro.FindStringSubmatch(m)
		switch {
		case g[1] == "timeFilter":
			return g[2] + " BETWEEN " + lit(from) + " AND " + lit(to)
		case g[3] == "timeFrom":
			return lit(from)
		default:
			return lit(to)
		}
	})
	if strings.Contains(out, "$") {
		return "", fmt.Errorf("unknown Grafana macro or variable in %q", sql)
	}
	return out, nil
}

func TestExpandSQL(t *testing.T) {
	from := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	to := time.Date(2026, 11, 26, 11, 30, 0, 500_000_000, time.FixedZone("x", 3600))
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1 WHERE $__timeFilter(minute)", "SELECT 1 WHERE minute BETWEEN '2026-11-26T10:00:00Z' AND '2026-11-26T10:30:00.5Z'"},
		{"WHERE $__timeFilter( o.ts ) AND x < $__timeTo() AND x > $__timeFrom()",
			"WHERE o.ts BETWEEN '2026-11-26T10:00:00Z' AND '2026-11-26T10:30:00.5Z' AND x < '2026-11-26T10:30:00.5Z' AND x > '2026-11-26T10:00:00Z'"},
		{"WHERE $__timeGroup(ts, '1m')", ""},
		{"WHERE product_id = '$product'", ""},
	} {
		got, err := expandSQL(tc.in, from, to)
		if tc.want == "" {
			if err == nil {
				t.Errorf("expandSQL(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("expandSQL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestDashboards parses every dashboard and checks each PromQL expression
// with Prometheus's own parser: promtool check rules on a rule file holding
// every expression as a recording rule. (promtool is already required;
// github.com/prometheus/prometheus as a module would add dozens of
// dependencies to go.mod.) The SQL panels run against a live eventlake in
// TestLiveDev.
func TestDashboards(t *testing.T) {
	promtool := lookPath(t, "promtool")
	qs := loadDashboards(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	var prom, pg int
	for i, q := range qs {
		switch q.ds.UID {
		case promUID:
			prom++
			expr, err := expandPromQL(q.Expr)
			if err != nil {
				t.Errorf("%s: %v", q.where, err)
				continue
			}
			rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: expr})
			t.Logf("dashboard:query_%d is %s", i, q.where)
		case pgUID:
			pg++
		}
	}
	if prom == 0 || pg == 0 {
		t.Fatalf("want Prometheus and Postgres panels, have %d and %d", prom, pg)
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard_exprs.yml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboards' PromQL: %v\n%s", err, out)
	}
}

func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required (Debian: apt-get install prometheus; .ci/run installs it)", name)
	}
	return p
}
