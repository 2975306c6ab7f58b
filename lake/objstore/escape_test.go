package objstore

import "testing"

func TestEscapeKey(t *testing.T) {
	for in, want := range map[string]string{
		"lake/t/data/ts_hour=2026-11-26-10/a.parquet": "lake/t/data/ts_hour=2026-11-26-10/a.parquet",
		"t/data/name=a+b c/x.parquet":                 "t/data/name=a%2Bb%20c/x.parquet",
		"t/data/pct=100%/x.parquet":                   "t/data/pct=100%25/x.parquet",
	} {
		if got := escapeKey(in); got != want {
			t.Errorf("escapeKey(%q) = %q, want %q", in, got, want)
		}
	}
}
