package main

import (
	"slices"
	"strings"
	"testing"
)

// TestMerge: a partial run replaces its rows, bullets and sections in the
// report and adds new ones at the end of their part, keeping the others.
func TestMerge(t *testing.T) {
	old := render([]result{
		{"a", "1", "", "", "how a"},
		{"b", "2", "", "", "how b"},
	}, []section{{"S", "old text"}})
	got := merge(old, []result{
		{"b", "3", "", "", "how b again"},
		{"c", "4", "", "", "how c"},
	}, []section{{"S", "new text"}, {"T", "t text"}}, "alone")
	want := render([]result{
		{"a", "1", "", "", "how a"},
		{"b", "3", "", "", "how b again; alone"},
		{"c", "4", "", "", "how c; alone"},
	}, []section{{"S", "new text"}, {"T", "t text"}})
	if got != want {
		t.Errorf("merged:\n%s\nwant:\n%s", got, want)
	}
	// Merging into a report without the parts adds them.
	if got := merge("# Benchmarks\n", []result{{"c", "4", "", "", "how c"}}, []section{{"T", "t"}}, "alone"); !strings.Contains(got, "| c | 4 |") || !strings.Contains(got, "## T\n\nt\n") {
		t.Errorf("merged into an empty report:\n%s", got)
	}
}

func TestParseLayouts(t *testing.T) {
	cases := []struct {
		in   string
		want []lookupLayout
		err  bool
	}{
		{"ts@262144", []lookupLayout{{rowGroup: 262144}}, false},
		{"ts@262144, user_id+ts@16384", []lookupLayout{{rowGroup: 262144}, {byUser: true, rowGroup: 16384}}, false},
		{"ts", nil, true},
		{"user_id@100", nil, true},
		{"ts@0", nil, true},
		{"ts@x", nil, true},
	}
	for _, c := range cases {
		got, err := parseLayouts(c.in)
		if (err != nil) != c.err || !c.err && !slices.Equal(got, c.want) {
			t.Errorf("parseLayouts(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}
