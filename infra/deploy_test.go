package infra

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestSystemdUnits checks infra/systemd with the real systemd-analyze
// verify, on copies whose ExecStart points at a binary built from this
// checkout (verify refuses a command that does not exist). Any warning
// fails the test: verify exits 0 on an unknown directive.
func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is required (Debian: apt-get install systemd; .ci/run installs it)")
	}
	bin := th.Binary(t)
	units, err := filepath.Glob(filepath.Join("systemd", "*.service"))
	if err != nil || len(units) != 3 {
		t.Fatalf("infra/systemd holds %v, want the ingest template, query and compact units", units)
	}
	dir := t.TempDir()
	var args []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("ExecStart=/usr/bin/eventlake ")) {
			t.Fatalf("%s: ExecStart does not run /usr/bin/eventlake", u)
		}
		checkUnitFlags(t, u, string(b))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(u)), bytes.ReplaceAll(b, []byte("/usr/bin/eventlake"), []byte(bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(u)
		if strings.HasSuffix(name, "@.service") {
			name = strings.TrimSuffix(name, "@.service") + "@0.service" // an instance of the template
		}
		args = append(args, filepath.Join(dir, name))
	}
	cmd := exec.Command(analyze, append([]string{"verify"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// checkUnitFlags checks that ExecStart names a real subcommand and flags.
func checkUnitFlags(t *testing.T, unit, text string) {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, "ExecStart=/usr/bin/eventlake "); ok {
			checkArgs(t, unit, strings.Fields(rest))
			if strings.Contains(unit, "@") && !strings.Contains(rest, "--instance-id %i") {
				t.Errorf("%s: the template's instance is not its --instance-id", unit)
			}
			return
		}
	}
}

// checkArgs fails unless args[0] is a subcommand of the binary and every
// --flag is one its help lists.
func checkArgs(t *testing.T, where string, args []string) {
	t.Helper()
	flags := helpFlags(t, args[0])
	for _, a := range args[1:] {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			if !slices.Contains(flags, name) {
				t.Errorf("%s: eventlake %s has no flag --%s", where, args[0], name)
			}
		}
	}
}

var helpCache = map[string][]string{}

var flagLine = regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`)

// helpFlags returns the flags `eventlake CMD --help` lists.
func helpFlags(t *testing.T, cmd string) []string {
	t.Helper()
	if f, ok := helpCache[cmd]; ok {
		return f
	}
	out, err := th.Command(t, cmd, "--help").Output()
	if err != nil || !bytes.Contains(out, []byte("usage: eventlake "+cmd)) {
		t.Fatalf("eventlake %s --help: %v (is %q a subcommand?)\n%s", cmd, err, cmd, out)
	}
	var flags []string
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		flags = append(flags, m[1])
	}
	helpCache[cmd] = flags
	return flags
}

// TestKubernetesManifests checks infra/k8s without a cluster (kubectl's
// client-side dry run needs an API server): every document decodes; the
// ingest StatefulSet, the query Deployment and Service, the compactor
// Deployment and the ConfigMap are there; every container runs the same
// image with a real subcommand and real flags; probes are /healthz
// (liveness) and /readyz (readiness) on the port --http listens on; the
// StatefulSet's pod name is the ingest's --instance-id; every ${NAME} the
// ConfigMap's configuration uses is set in every container, from the
// Secret eventlake-secrets.
func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in infra/k8s: %v", err)
	}
	type container struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Env   []struct {
			Name      string `yaml:"name"`
			ValueFrom struct {
				FieldRef *struct {
					FieldPath string `yaml:"fieldPath"`
				} `yaml:"fieldRef"`
				SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		LivenessProbe *struct {
			HTTPGet struct{ Path, Port string } `yaml:"httpGet"`
		} `yaml:"livenessProbe"`
		ReadinessProbe *struct {
			HTTPGet struct{ Path, Port string } `yaml:"httpGet"`
		} `yaml:"readinessProbe"`
	}
	type object struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Data map[string]string `yaml:"data"`
		Spec struct {
			ServiceName string `yaml:"serviceName"`
			Template    struct {
				Spec struct {
					Containers []container `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
			Ports []struct {
				Port       int    `yaml:"port"`
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	objs := map[string]object{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o object
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			objs[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	for _, want := range []string{"StatefulSet/eventlake-ingest", "Deployment/eventlake-query", "Service/eventlake-query",
		"Deployment/eventlake-compactor", "ConfigMap/eventlake-config", "Service/eventlake-ingest"} {
		if _, ok := objs[want]; !ok {
			t.Errorf("infra/k8s has no %s", want)
		}
	}
	config := objs["ConfigMap/eventlake-config"].Data["eventlake.yaml"]
	var vars []string
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).FindAllStringSubmatch(config, -1) {
		vars = append(vars, m[1])
	}
	if len(vars) == 0 {
		t.Error("the ConfigMap's configuration takes no secret from the environment")
	}
	image := ""
	wantCmd := map[string]string{"StatefulSet/eventlake-ingest": "ingest", "Deployment/eventlake-query": "query", "Deployment/eventlake-compactor": "compact"}
	for key, sub := range wantCmd {
		cs := objs[key].Spec.Template.Spec.Containers
		if len(cs) != 1 {
			t.Errorf("%s: %d containers, want 1", key, len(cs))
			continue
		}
		c := cs[0]
		if image == "" {
			image = c.Image
		}
		if c.Image != image || !strings.HasPrefix(c.Image, "ghcr.io/eventlake/eventlake:") || strings.HasSuffix(c.Image, ":latest") {
			t.Errorf("%s: image %q, want the one pinned eventlake image (%s)", key, c.Image, image)
		}
		if len(c.Args) == 0 || c.Args[0] != sub {
			t.Errorf("%s: args %v, want the %s subcommand", key, c.Args, sub)
			continue
		}
		checkArgs(t, key, c.Args)
		arg := func(flag string) string {
			if i := slices.Index(c.Args, flag); i >= 0 && i+1 < len(c.Args) {
				return c.Args[i+1]
			}
			return ""
		}
		_, httpPort, _ := strings.Cut(arg("--http"), ":")
		portName := ""
		for _, p := range c.Ports {
			if httpPort != "" && httpPort == strconv.Itoa(p.ContainerPort) {
				portName = p.Name
			}
		}
		if portName == "" {
			t.Errorf("%s: --http %q is on no containerPort", key, arg("--http"))
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.LivenessProbe.HTTPGet.Port != portName {
			t.Errorf("%s: liveness probe %+v, want GET /healthz on port %q", key, c.LivenessProbe, portName)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port != portName {
			t.Errorf("%s: readiness probe %+v, want GET /readyz on port %q", key, c.ReadinessProbe, portName)
		}
		if arg("--config") != "/etc/eventlake/eventlake.yaml" {
			t.Errorf("%s: --config %q, want the ConfigMap's file", key, arg("--config"))
		}
		for _, v := range vars {
			found := false
			for _, e := range c.Env {
				found = found || (e.Name == v && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "eventlake-secrets")
			}
			if !found {
				t.Errorf("%s: the configuration uses ${%s}, which the container does not take from the Secret eventlake-secrets", key, v)
			}
		}
		if sub == "ingest" {
			podName := false
			for _, e := range c.Env {
				podName = podName || (e.Name == "POD_NAME" && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name")
			}
			if arg("--instance-id") != "$(POD_NAME)" || !podName {
				t.Errorf("%s: --instance-id %q, want $(POD_NAME) from metadata.name", key, arg("--instance-id"))
			}
		}
	}
	if objs["StatefulSet/eventlake-ingest"].Spec.ServiceName != "eventlake-ingest" {
		t.Error("the ingest StatefulSet's serviceName is not its headless Service")
	}
	svc := map[int]string{}
	for _, p := range objs["Service/eventlake-query"].Spec.Ports {
		svc[p.Port] = p.TargetPort
	}
	if svc[8080] != "http" || svc[5433] != "postgres" {
		t.Errorf("Service/eventlake-query ports %v, want 8080 -> http and 5433 -> postgres", svc)
	}
}
