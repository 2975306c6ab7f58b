package lake

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParseSortKey(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want SortKey
		str  string
	}{
		{"user_id", SortKey{Column: "user_id"}, "user_id"},
		{"user_id ASC", SortKey{Column: "user_id"}, "user_id"},
		{"ts desc", SortKey{Column: "ts", Desc: true, NullsLast: true}, "ts desc"},
		{"ts DESC NULLS FIRST", SortKey{Column: "ts", Desc: true}, "ts desc nulls first"},
		{"  Amount  asc nulls last ", SortKey{Column: "Amount", NullsLast: true}, "Amount nulls last"},
	} {
		got, err := ParseSortKey(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSortKey(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if got.String() != tc.str {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tc.str)
		}
		if back, err := ParseSortKey(got.String()); err != nil || back != got {
			t.Errorf("ParseSortKey(%q) = %+v, %v; want %+v back", got.String(), back, err, got)
		}
	}
	for _, bad := range []string{"", "  ", "ts sideways", "ts desc nulls", "ts nulls middle", "ts desc asc"} {
		if k, err := ParseSortKey(bad); err == nil {
			t.Errorf("ParseSortKey(%q) = %+v, want an error", bad, k)
		}
	}
	// Configuration files list keys as strings.
	var cfg struct {
		Order []SortKey `yaml:"sort_order"`
	}
	if err := yaml.Unmarshal([]byte("sort_order: [user_id, ts desc]"), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Order) != 2 || cfg.Order[0] != (SortKey{Column: "user_id"}) || cfg.Order[1] != (SortKey{Column: "ts", Desc: true, NullsLast: true}) {
		t.Fatalf("decoded %+v", cfg.Order)
	}
	err := yaml.Unmarshal([]byte("sort_order: [ts upward]"), &cfg)
	if err == nil || !strings.Contains(err.Error(), "ts upward") {
		t.Fatalf("a bad key in YAML: %v, want an error naming it", err)
	}
}
