package sessionwin

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.Defaults()
	want := Config{Gap: DefaultGap, Lateness: DefaultLateness, MaxOpen: DefaultMaxOpen}
	if c != want {
		t.Fatalf("Defaults() = %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	set := Config{Gap: time.Minute, Lateness: time.Second, MaxOpen: 7, IdleTimeout: time.Second}
	c = set
	c.Defaults()
	if c != set {
		t.Fatalf("Defaults() changed set fields: %+v, want %+v", c, set)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Gap: time.Minute, MaxOpen: 1}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" for none
	}{
		{"minimal", func(*Config) {}, ""},
		{"no lateness and idle progress", func(c *Config) { c.Lateness, c.IdleTimeout = 0, time.Second }, ""},
		{"gap zero", func(c *Config) { c.Gap = 0 }, "gap 0s must be at least 1µs"},
		{"gap below a microsecond", func(c *Config) { c.Gap = 999 * time.Nanosecond }, "gap 999ns must be at least 1µs"},
		{"negative lateness", func(c *Config) { c.Lateness = -time.Second }, "lateness -1s must not be negative"},
		{"max open zero", func(c *Config) { c.MaxOpen = 0 }, "max_open 0 must be at least 1"},
		{"max open beyond int32", func(c *Config) { c.MaxOpen = maxMaxOpen + 1 }, "exceeds the limit"},
		{"negative idle timeout", func(c *Config) { c.IdleTimeout = -time.Second }, "idle_timeout -1s must not be negative (0 turns idle progress off)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if _, nerr := New(c, nil); (nerr == nil) != (err == nil) {
				t.Fatalf("New() = %v, Validate() = %v", nerr, err)
			}
		})
	}
}
