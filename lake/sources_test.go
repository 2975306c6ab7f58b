package lake

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
)

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct{ source, key string }{
		{"checkout-service", "eventlake.source.checkout-service"},
		{"billing.v2_eu", "eventlake.source.billing.v2_eu"},
		{"shop eu/1", "eventlake.source.shop%20eu%2F1"},
		{"100%", "eventlake.source.100%25"},
		{"café", "eventlake.source.caf%C3%A9"},
		{"a=b,c", "eventlake.source.a%3Db%2Cc"},
	} {
		key := SourceKey(tc.source)
		if key != tc.key {
			t.Errorf("SourceKey(%q) = %q, want %q", tc.source, key, tc.key)
		}
		if back, ok := sourceOfKey(key); !ok || back != tc.source {
			t.Errorf("sourceOfKey(%q) = %q, %v; want %q", key, back, ok, tc.source)
		}
	}
	for _, key := range []string{"eventlake.source.", "eventlake.source.a%2", "eventlake.source.a%zz", PropSourceOther, PropTopic} {
		if s, ok := sourceOfKey(key); ok {
			t.Errorf("sourceOfKey(%q) = %q, want no source", key, s)
		}
	}
}

func TestMergeSources(t *testing.T) {
	at := time.UnixMilli(2_000_000)
	full := func(n int) iceberg.Properties {
		p := iceberg.Properties{PropTopic: "t"}
		for i := range n {
			p[SourceKey(fmt.Sprintf("s%04d", i))] = "1,1000"
		}
		return p
	}
	long := strings.Repeat("x", 250)
	for _, tc := range []struct {
		name  string
		have  iceberg.Properties
		batch SourceCounts
		want  iceberg.Properties
	}{
		{"a new source", iceberg.Properties{PropTopic: "t"}, SourceCounts{Events: map[string]int64{"shop": 3}},
			iceberg.Properties{"eventlake.source.shop": "3,2000000"}},
		{"counts add up, last seen moves forward only", iceberg.Properties{
			"eventlake.source.shop": "10,1000", "eventlake.source.late": "1,9000000"},
			SourceCounts{Events: map[string]int64{"shop": 5, "late": 2}},
			iceberg.Properties{"eventlake.source.shop": "15,2000000", "eventlake.source.late": "3,9000000"}},
		{"zero counts are no update", iceberg.Properties{}, SourceCounts{Events: map[string]int64{"idle": 0}}, iceberg.Properties{}},
		{"a value set by hand that does not parse counts from zero", iceberg.Properties{"eventlake.source.shop": "many"},
			SourceCounts{Events: map[string]int64{"shop": 2}}, iceberg.Properties{"eventlake.source.shop": "2,2000000"}},
		{"a full table counts new sources together, known ones still apart", full(MaxSources),
			SourceCounts{Events: map[string]int64{"new-1": 2, "new-2": 3, "s0007": 4}},
			iceberg.Properties{PropSourceOther: "5,2000000", SourceKey("s0007"): "5,2000000"}},
		{"the last free slot goes to the first new source in order", full(MaxSources - 1),
			SourceCounts{Events: map[string]int64{"b": 2, "a": 3}, Other: 1},
			iceberg.Properties{"eventlake.source.a": "3,2000000", PropSourceOther: "3,2000000"}},
		{"the byte budget holds long sources back", func() iceberg.Properties {
			// Filled to 40 bytes short of the budget: room for a short
			// source, not for a long one.
			p, size := iceberg.Properties{}, 0
			for i := 0; size+len(SourceKey(long+"000")+"1,1000") <= MaxSourceBytes-400; i++ {
				k := SourceKey(fmt.Sprintf("%s%03d", long, i))
				p[k] = "1,1000"
				size += len(k) + len("1,1000")
			}
			pad := MaxSourceBytes - size - 40 - len(PropSourcePrefix+"1,1000")
			p[SourceKey(strings.Repeat("f", pad))] = "1,1000"
			return p
		}(), SourceCounts{Events: map[string]int64{long + "new": 7, "s": 1}},
			iceberg.Properties{"eventlake.source.s": "1,2000000", PropSourceOther: "7,2000000"}},
		{"the other count adds up", iceberg.Properties{PropSourceOther: "4,1000"}, SourceCounts{Other: 6},
			iceberg.Properties{PropSourceOther: "10,2000000"}},
	} {
		got := MergeSources(tc.have, tc.batch, at)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s:\n got %v\nwant %v", tc.name, got, tc.want)
		}
	}
}

func TestSourcesOf(t *testing.T) {
	p := iceberg.Properties{
		PropTopic:                  "orders",
		SourceKey("shop eu"):       "12,1767225600000",
		SourceKey("billing"):       "3,1767225500000",
		"eventlake.source.broken":  "x,y",
		PropSourceOther:            "9,1767225700000",
		PropTypePrefix + "a.typed": "1",
	}
	got, other := SourcesOf(p)
	want := []SourceSeen{
		{Source: "billing", Events: 3, LastSeen: time.UnixMilli(1767225500000).UTC()},
		{Source: "shop eu", Events: 12, LastSeen: time.UnixMilli(1767225600000).UTC()},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sources %v, want %v", got, want)
	}
	if other.Events != 9 || other.LastSeen.UnixMilli() != 1767225700000 {
		t.Errorf("other %+v, want 9 events last seen at 1767225700000", other)
	}
}

// TestAppendCountingSources: the source counts are set by the commit
// that appends the rows (a transaction may carry SetProperties with
// AddDataFiles), and a writer that loses the race adds its counts to the
// winner's instead of overwriting them.
func TestAppendCountingSources(t *testing.T) {
	dir := t.TempDir()
	cat := testCatalog(t, dir)
	ctx := context.Background()
	a := NewCommitter(cat, CommitConfig{Writer: "a"}, CommitHooks{}, nil, nil)
	b := NewCommitter(cat, CommitConfig{Writer: "b"}, CommitHooks{}, nil, nil)
	stale, err := cat.LoadTable(ctx, "events_raw")
	if err != nil {
		t.Fatal(err)
	}
	t1, t2 := time.UnixMilli(1_000_000), time.UnixMilli(2_000_000)
	won, err := b.Commit(ctx, Change{Table: "events_raw", Task: "test", Offsets: offsets(1, 7), Fence: Offsets{},
		Stage: AppendCountingSources([]iceberg.DataFile{dataFile(t, stale, 7)},
			SourceCounts{Events: map[string]int64{"shop": 4, "billing": 3}}, t2)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(won.Metadata().Snapshots()); n != 1 {
		t.Fatalf("%d snapshots after one commit, want 1", n)
	}
	got, err := a.Commit(ctx, Change{Table: "events_raw", Task: "test", Base: stale, Offsets: offsets(0, 5), Fence: Offsets{},
		Stage: AppendCountingSources([]iceberg.DataFile{dataFile(t, stale, 5)},
			SourceCounts{Events: map[string]int64{"shop": 5}, Other: 1}, t1)})
	if err != nil {
		t.Fatal(err)
	}
	sources, other := SourcesOf(got.Properties())
	want := fmt.Sprint([]SourceSeen{
		{Source: "billing", Events: 3, LastSeen: t2.UTC()},
		{Source: "shop", Events: 9, LastSeen: t2.UTC()},
	})
	if fmt.Sprint(sources) != want || other.Events != 1 {
		t.Fatalf("sources %v other %+v, want %s and 1 other", sources, other, want)
	}
	if n := len(got.Metadata().Snapshots()); n != 2 {
		t.Fatalf("%d snapshots after two commits, want 2", n)
	}
	if got.Properties()[PropTopic] != "events" {
		t.Fatalf("the table's own properties were lost: %v", got.Properties())
	}
}
