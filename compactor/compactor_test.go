package compactor

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/lake"
)

func TestRetainN(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	for _, tc := range []struct {
		name       string
		chain      []snapInfo // newest first
		keep       time.Duration
		retainLast int
		want       int
	}{
		{"only the current snapshot", []snapInfo{{ago(time.Hour), true}}, 10 * time.Minute, 1, 1},
		{
			// The old snapshot was current until 1 s ago: a query may be
			// reading it, however old its own commit is.
			"a snapshot replaced just now is kept however old",
			[]snapInfo{{ago(time.Second), true}, {ago(24 * time.Hour), true}, {ago(48 * time.Hour), true}},
			10 * time.Minute, 1, 2,
		},
		{
			"snapshots superseded longer ago than keep go",
			[]snapInfo{{ago(time.Minute), true}, {ago(5 * time.Minute), true}, {ago(20 * time.Minute), true}, {ago(30 * time.Minute), true}},
			10 * time.Minute, 1, 3,
		},
		{
			"retain last wins over age",
			[]snapInfo{{ago(time.Hour), true}, {ago(2 * time.Hour), true}, {ago(3 * time.Hour), true}, {ago(4 * time.Hour), true}},
			10 * time.Minute, 3, 3,
		},
		{
			"the newest snapshot with offsets is always kept",
			[]snapInfo{{ago(time.Hour), false}, {ago(2 * time.Hour), false}, {ago(3 * time.Hour), true}, {ago(4 * time.Hour), true}},
			10 * time.Minute, 1, 3,
		},
		{"no offsets anywhere", []snapInfo{{ago(time.Hour), false}, {ago(2 * time.Hour), false}}, time.Minute, 1, 1},
	} {
		if got := retainN(tc.chain, now, tc.keep, tc.retainLast); got != tc.want {
			t.Errorf("%s: retainN = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestContainsToken(t *testing.T) {
	for _, tc := range []struct {
		b    string
		want bool
	}{
		{`{"user_id":"u-1"}`, true},
		{`u-1`, true},
		{`user u-1, order 7`, true},
		{`{"user_id":"u-12"}`, false},
		{`{"user_id":"xu-1"}`, false},
		{`{"user_id":"u-1_x"}`, false},
		{`u-12 and then u-1`, true},
		{``, false},
	} {
		if got := containsToken([]byte(tc.b), []byte("u-1")); got != tc.want {
			t.Errorf("containsToken(%q, u-1) = %v, want %v", tc.b, got, tc.want)
		}
	}
}

func TestPayloadHasUser(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want bool
	}{
		{`{"order_id":"o","user_id":"u-1"}`, true},
		{`{"user_id":"u-12"}`, false},
		{`{"customer":{"user_id":"u-1"}}`, true},
		{`{"items":[{"user_id":"u-1"}]}`, true},
		{`{"note":"u-1 called"}`, false},
		{`{"user_id":7}`, false},
		{`not json u-1`, true}, // cannot be parsed: erase rather than keep
	} {
		if got := payloadHasUser([]byte(tc.doc), "u-1", map[string]bool{"user_id": true}); got != tc.want {
			t.Errorf("payloadHasUser(%s) = %v, want %v", tc.doc, got, tc.want)
		}
	}
	if !payloadHasUser([]byte(`{"user_id":7}`), "7", map[string]bool{"user_id": true}) {
		t.Error("a numeric user_id spelled like the id is the user's")
	}
}

func TestPartitionEnd(t *testing.T) {
	hour := iceberg.NewPartitionSpec(iceberg.PartitionField{SourceIDs: []int{4}, FieldID: 1000, Name: "ts_hour", Transform: iceberg.HourTransform{}})
	day := iceberg.NewPartitionSpec(iceberg.PartitionField{SourceIDs: []int{10}, FieldID: 1000, Name: "d", Transform: iceberg.DayTransform{}})
	h := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	hours := int32(h.Unix() / 3600)
	days := int32(h.Unix() / 86400)
	for _, tc := range []struct {
		name string
		spec iceberg.PartitionSpec
		v    any
		want time.Time
	}{
		{"hour int32", hour, hours, h.Add(time.Hour)},
		{"hour int64", hour, int64(hours), h.Add(time.Hour)},
		{"day", day, iceberg.Date(days), time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)},
		{"unknown value", hour, "x", time.Time{}},
		{"unpartitioned", *iceberg.UnpartitionedSpec, nil, time.Time{}},
	} {
		if got := partitionEnd(tc.spec, map[int]any{1000: tc.v}); !got.Equal(tc.want) {
			t.Errorf("%s: partitionEnd = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"defaults are valid", func(*Config) {}, ""},
		{"min age below the query timeout", func(c *Config) { c.SnapshotMinAge = 10 * time.Second }, "snapshot_min_age"},
		{"short ages allowed when asked", func(c *Config) {
			c.UnsafeShortAges, c.SnapshotMinAge, c.OrphanMinAge, c.Interval = true, time.Second, time.Second, 100*time.Millisecond
		}, ""},
		{"orphan margin", func(c *Config) { c.OrphanMinAge = time.Second }, "orphan_min_age"},
		{"tiering without a cold location", func(c *Config) { c.Tables = map[string]TablePolicy{"t": {TierAfter: time.Hour}} }, "cold_location"},
		{"tier after retention", func(c *Config) {
			c.ColdLocation = "/cold"
			c.Tables = map[string]TablePolicy{"t": {TierAfter: 48 * time.Hour, Retention: 24 * time.Hour}}
		}, "not below retention"},
		{"relative cold location", func(c *Config) { c.ColdLocation = "file://relative/dir" }, "cold_location"},
		{"tiny target", func(c *Config) { c.TargetFileSize = 1000 }, "target_file_size"},
		{"s3 cold location with a storage class", func(c *Config) { c.ColdLocation, c.ColdStorageClass = "s3://lake/cold", "STANDARD_IA" }, ""},
		{"storage class on a local cold location", func(c *Config) { c.ColdLocation, c.ColdStorageClass = "/cold", "STANDARD_IA" }, "needs an s3:// cold_location"},
		{"archive storage class", func(c *Config) { c.ColdLocation, c.ColdStorageClass = "s3://lake/cold", "GLACIER" }, "cannot be read without a restore"},
		{"a sort order", func(c *Config) {
			c.Tables = map[string]TablePolicy{"t": {SortOrder: []lake.SortKey{{Column: "user_id"}, {Column: "ts", Desc: true}}}}
		}, ""},
		{"a sort order naming a column twice", func(c *Config) {
			c.Tables = map[string]TablePolicy{"t": {SortOrder: []lake.SortKey{{Column: "user_id"}, {Column: "user_id", Desc: true}}}}
		}, "names user_id twice"},
	} {
		c := Config{}
		c.Defaults()
		tc.edit(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	c := Config{ColdLocation: "/srv/cold/"}
	c.Defaults()
	if err := c.Validate(); err != nil || c.ColdLocation != "file:///srv/cold" {
		t.Errorf("cold location normalized to %q (%v), want file:///srv/cold", c.ColdLocation, err)
	}
}

// hourFile is a data file of an hour partition at file:///w/name.
func hourFile(t *testing.T, name string, size int64) iceberg.DataFile {
	t.Helper()
	spec := iceberg.NewPartitionSpec(iceberg.PartitionField{SourceIDs: []int{4}, FieldID: 1000, Name: "ts_hour", Transform: iceberg.HourTransform{}})
	b, err := iceberg.NewDataFileBuilder(spec, iceberg.EntryContentData, "file:///w/"+name, iceberg.ParquetFile, map[int]any{1000: int32(1)}, nil, nil, 1, size)
	if err != nil {
		t.Fatal(err)
	}
	return b.Build()
}

func TestPlanBinPacks(t *testing.T) {
	file := func(name string, size int64) iceberg.DataFile { return hourFile(t, name, size) }
	const target = 100
	p := &partition{files: []iceberg.DataFile{
		file("a", 40), file("b", 40), file("c", 40), // small: packed 2 + 1
		file("big", 80), // at or above 3/4 of target: left alone
		file("d", 10),
	}}
	groups := plan(p, target, 4)
	var got []string
	for _, g := range groups {
		var names []string
		for _, f := range g {
			names = append(names, strings.TrimPrefix(f.FilePath(), "file:///w/"))
		}
		got = append(got, strings.Join(names, "+"))
	}
	if strings.Join(got, " ") != "a+b c+d" {
		t.Fatalf("plan = %v, want [a+b c+d]", got)
	}
	if g := plan(&partition{files: []iceberg.DataFile{file("a", 10), file("big", 90)}}, target, 4); len(g) != 0 {
		t.Fatalf("a lone small file is not worth a rewrite: %v", g)
	}
}

func TestPlanOpenMergesByTier(t *testing.T) {
	file := func(name string, size int64) iceberg.DataFile { return hourFile(t, name, size) }
	const (
		target = 128 << 20
		ratio  = 4
	)
	names := func(groups [][]iceberg.DataFile) []string {
		var out []string
		for _, g := range groups {
			var ns []string
			for _, f := range g {
				ns = append(ns, strings.TrimPrefix(f.FilePath(), "file:///w/"))
			}
			out = append(out, strings.Join(ns, "+"))
		}
		return out
	}
	// Tier 0 is below 16 KiB, tier 1 below 64 KiB, tier 2 below 256 KiB,
	// tier 3 below 1 MiB, tier 4 below 4 MiB.
	for _, tc := range []struct {
		sizes map[string]int64
		want  []string
	}{
		// Three second-files and one merged minute: nothing is merged
		// until a tier holds 4 files; the big merged file is not rewritten
		// with every new small one.
		{map[string]int64{"s1": 10 << 10, "s2": 10 << 10, "s3": 10 << 10, "m1": 600 << 10}, nil},
		{map[string]int64{"s1": 10 << 10, "s2": 10 << 10, "s3": 10 << 10, "s4": 10 << 10, "m1": 600 << 10}, []string{"s1+s2+s3+s4"}},
		// One tier full; another holds too few; files at or above 3/4 of
		// the target stay.
		{map[string]int64{"m1": 600 << 10, "m2": 700 << 10, "m3": 300 << 10, "m4": 900 << 10, "x": 2 << 20, "big": 100 << 20}, []string{"m1+m2+m3+m4"}},
		// Two tiers full at once.
		{map[string]int64{"a": 1 << 10, "b": 2 << 10, "c": 3 << 10, "d": 4 << 10, "m1": 600 << 10, "m2": 700 << 10, "m3": 300 << 10, "m4": 900 << 10}, []string{"a+b+c+d", "m1+m2+m3+m4"}},
	} {
		p := &partition{}
		for _, n := range slices.Sorted(maps.Keys(tc.sizes)) {
			p.files = append(p.files, file(n, tc.sizes[n]))
		}
		got := names(planOpen(p, target, ratio, 4))
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("planOpen(%v) = %v, want %v", tc.sizes, got, tc.want)
		}
	}
	for size, want := range map[int64]int{0: 0, 16<<10 - 1: 0, 16 << 10: 1, 256<<10 - 1: 2, 256 << 10: 3, 1 << 20: 4, 5 << 20: 5} {
		if got := sizeTier(size, ratio); got != want {
			t.Errorf("sizeTier(%d, %d) = %d, want %d", size, ratio, got, want)
		}
	}
}

func TestErasureMinutesRoundTrip(t *testing.T) {
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	var mins []time.Time
	for _, d := range []int{0, 1, 2, 5, 9, 10, 600} {
		mins = append(mins, base.Add(time.Duration(d)*time.Minute))
	}
	enc := encodeMinutes(mins)
	got, err := decodeMinutes(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(mins) || strings.Count(enc, ",") != 3 {
		t.Fatalf("%q decodes to %v", enc, got)
	}
	for i := range mins {
		if !got[i].Equal(mins[i]) {
			t.Fatalf("minute %d: %v, want %v", i, got[i], mins[i])
		}
	}
	if _, err := decodeMinutes("5-3"); err == nil {
		t.Fatal("a reversed run decoded")
	}
}
