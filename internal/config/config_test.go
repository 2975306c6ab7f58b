package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type inner struct {
	URI      string        `yaml:"uri"`
	Interval time.Duration `yaml:"interval"`
	Brokers  []string      `yaml:"brokers"`
	Bytes    int64         `yaml:"bytes"`
}

type outer struct {
	DataDir string `yaml:"data_dir"`
	Inner   inner  `yaml:"inner"`
	On      bool   `yaml:"on"`
	Auto    *bool  `yaml:"auto"`
}

func TestDecodeStrict(t *testing.T) {
	var o outer
	if err := Decode([]byte("data_dir: x\ninner:\n  uri: u\n  interval: 2s\n"), &o, "t"); err != nil {
		t.Fatal(err)
	}
	if o.DataDir != "x" || o.Inner.URI != "u" || o.Inner.Interval != 2*time.Second {
		t.Fatalf("decoded %+v", o)
	}
	err := Decode([]byte("inner:\n  urii: u\n"), &o, "t")
	if err == nil || !strings.Contains(err.Error(), "urii") {
		t.Fatalf("typo not reported: %v", err)
	}
}

func TestApplyEnv(t *testing.T) {
	var o outer
	applied, err := ApplyEnv(&o, []string{
		"EVENTLAKE_DATA_DIR=/d", "EVENTLAKE_INNER_INTERVAL=250ms", "EVENTLAKE_INNER_BROKERS=a:1, b:2",
		"EVENTLAKE_INNER_BYTES=4MiB", "EVENTLAKE_ON=true", "PATH=/bin", "EVENTLAKE_FAILPOINTS=x",
	}, "EVENTLAKE_FAILPOINTS")
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 5 || o.DataDir != "/d" || o.Inner.Interval != 250*time.Millisecond ||
		len(o.Inner.Brokers) != 2 || o.Inner.Brokers[1] != "b:2" || o.Inner.Bytes != 4<<20 || !o.On {
		t.Fatalf("applied %v -> %+v", applied, o)
	}
	if o.Auto != nil {
		t.Fatalf("unset optional setting is %v, want nil", *o.Auto)
	}
	if _, err := ApplyEnv(&o, []string{"EVENTLAKE_AUTO=false"}); err != nil || o.Auto == nil || *o.Auto {
		t.Fatalf("EVENTLAKE_AUTO=false -> %v, %v", o.Auto, err)
	}
	for _, bad := range []string{"EVENTLAKE_INNER_INTERVAL=soon", "EVENTLAKE_NOPE=1", "EVENTLAKE_ON=maybe", "EVENTLAKE_AUTO=maybe"} {
		if _, err := ApplyEnv(&o, []string{bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestLoadFileExpands: ${NAME} comes from the environment given (one file
// for every process, secrets outside it), $$ is a literal $, comments are
// left alone, and a variable that is not set stops the load with its name,
// the file and the line.
func TestLoadFileExpands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eventlake.yaml")
	text := "# the password comes from ${PGPASSWORD}\ndata_dir: /srv/$$x\ninner:\n  uri: postgres://eventlake:${PW}@db:5432/lake\n  bytes: ${BYTES}\n  brokers: [a$b]\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var o outer
	if err := LoadFile(path, &o, []string{"PW=s3cr3t", "BYTES=42"}); err != nil {
		t.Fatal(err)
	}
	if o.Inner.URI != "postgres://eventlake:s3cr3t@db:5432/lake" || o.Inner.Bytes != 42 || o.DataDir != "/srv/$x" || o.Inner.Brokers[0] != "a$b" {
		t.Fatalf("expanded to %+v", o)
	}
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"BYTES=42"}, path + ":4: ${PW} is used but the environment variable PW is not set"},
		{[]string{"PW=x"}, path + ":5: ${BYTES}"},
	} {
		err := LoadFile(path, &o, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %v: %v, want an error containing %q", c.env, err, c.want)
		}
	}
	if _, err := Expand("a: ${not closed\n", "f", nil); err == nil || !strings.Contains(err.Error(), "f:1:") {
		t.Errorf("unclosed ${: %v", err)
	}
}
