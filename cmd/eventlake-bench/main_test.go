package main

import (
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
