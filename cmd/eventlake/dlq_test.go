package main

import (
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "", want: time.Time{}},
		{in: "now", want: now},
		{in: "now-1h", want: now.Add(-time.Hour)},
		{in: "now-90m", want: now.Add(-90 * time.Minute)},
		{in: "now-7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "now+1h", want: now.Add(time.Hour)},
		{in: "2026-11-26T00:00:00Z", want: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)},
		{in: "2026-11-26T01:00:00.5+01:00", want: time.Date(2026, 11, 26, 0, 0, 0, 5e8, time.UTC)},
		{in: "now-", bad: true},
		{in: "now-1x", bad: true},
		{in: "now--1h", bad: true},
		{in: "now-1.5d", bad: true},
		{in: "nowish", bad: true},
		{in: "yesterday", bad: true},
		{in: "2026-11-26", bad: true},
	} {
		got, err := parseWhen(tc.in, now)
		if tc.bad {
			if err == nil {
				t.Errorf("parseWhen(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestSafe(t *testing.T) {
	for in, want := range map[string]string{
		"not_json":            "not_json",
		"a b":                 "a b",
		"h7\n":                `"h7\n"`,
		"\x1b[31mred":         `"\x1b[31mred"`,
		"bad \xff byte":       `"bad \xff byte"`,
		"zürich":              "zürich",
		"nul\x00":             `"nul\x00"`,
		"tab\there":           `"tab\there"`,
		"\u202eright-to-left": `"\u202eright-to-left"`,
	} {
		if got := safe(in); got != want {
			t.Errorf("safe(%q) = %s, want %s", in, got, want)
		}
	}
}
