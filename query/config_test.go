package query

import (
	"strings"
	"testing"
	"time"
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

func TestTypeViewsMustNotHideTables(t *testing.T) {
	l := newLake(t)
	_, err := New(Config{TypeViews: map[string]string{"orders_raw": "order.created"}}, Deps{Catalog: l.cat, Layout: testLayout(t)})
	if err == nil || !strings.Contains(err.Error(), "would hide") {
		t.Fatalf("a type view named like a table: %v", err)
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
