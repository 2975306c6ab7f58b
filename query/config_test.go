package query

import (
	"strings"
	"testing"
	"time"

	"github.com/eventlake/eventlake/lake"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.QueryTimeout != 30*time.Second || c.MaxRows != 10000 ||
		c.RefreshInterval != 500*time.Millisecond || c.MemoryLimit != "1GB" || c.MaxConcurrentQueries != 8 {
		t.Fatalf("defaults %+v", c)
	}
	bad := []func(*Config){
		func(c *Config) { c.MaxRows = -1 },
		func(c *Config) { c.RefreshInterval = time.Millisecond },
		func(c *Config) { c.Threads = -1 },
		func(c *Config) { c.MemoryLimit = "1GB'; SET x='" },
		func(c *Config) { c.QueueTimeout = -time.Second },
	}
	for i, mut := range bad {
		c := Config{}
		c.Defaults()
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: no error for %+v", i, c)
		}
	}
}

func TestTablesValidate(t *testing.T) {
	if err := DefaultTables().Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		tables Tables
		want   string
	}{
		{Tables{}, "dlq table name is required"},
		{Tables{DLQ: "dlq", Raw: []RawTable{{Name: "orders", Topic: "o", Kind: lake.KindOrders}}}, "hide"},
		{Tables{DLQ: "dlq", Raw: []RawTable{{Name: "DLQ", Topic: "o", Kind: lake.KindGeneric}}}, "hide"},
		{Tables{DLQ: "Events"}, "hide"},
		{Tables{DLQ: "dlq", Raw: []RawTable{{Name: "a", Topic: "o", Kind: "nope"}}}, "unknown payload kind"},
		{Tables{DLQ: "dlq", Raw: []RawTable{{Name: "a", Topic: "o", Kind: lake.KindGeneric}, {Name: "A", Topic: "p", Kind: lake.KindGeneric}}}, "twice"},
		{Tables{DLQ: "dlq", Raw: []RawTable{{Name: "a", Topic: "o", Kind: lake.KindOrders}, {Name: "b", Topic: "p", Kind: lake.KindOrders}}}, "one table per typed kind"},
		{Tables{DLQ: "dlq", Raw: []RawTable{{Name: "a", Kind: lake.KindGeneric}}}, "topic are required"},
	}
	for _, c := range cases {
		err := c.tables.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.tables, err, c.want)
		}
	}
}

func TestNewRejectsRemoteWarehouseWithoutLakeDirs(t *testing.T) {
	if _, err := lakeDirs("s3://bucket/lake", nil); err == nil || !strings.Contains(err.Error(), "lake_dirs") {
		t.Fatalf("err %v", err)
	}
	dirs, err := lakeDirs("file:///data/warehouse", []string{"/extra/"})
	if err != nil || len(dirs) != 2 || dirs[0] != "/data/warehouse/" || dirs[1] != "/extra/" {
		t.Fatalf("dirs %v err %v", dirs, err)
	}
}
