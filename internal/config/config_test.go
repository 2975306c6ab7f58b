package config

import (
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
	for _, bad := range []string{"EVENTLAKE_INNER_INTERVAL=soon", "EVENTLAKE_NOPE=1", "EVENTLAKE_ON=maybe"} {
		if _, err := ApplyEnv(&o, []string{bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
