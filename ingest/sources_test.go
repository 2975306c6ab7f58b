package ingest

import (
	"fmt"
	"testing"

	"github.com/eventlake/eventlake/lake"
)

func TestSourceCounter(t *testing.T) {
	var c sourceCounter
	for _, s := range []string{"shop", "billing", "shop", "shop"} {
		c.add([]byte(s))
	}
	if got := fmt.Sprint(c.counts()); got != fmt.Sprint(lake.SourceCounts{Events: map[string]int64{"shop": 3, "billing": 1}}) {
		t.Fatalf("counts %s", got)
	}

	// A source of the last batch is counted again without allocating.
	c.reset()
	shop := []byte("shop")
	if n := testing.AllocsPerRun(100, func() { c.add(shop) }); n != 0 {
		t.Errorf("counting a known source allocates %v times", n)
	}
	if got := c.counts(); len(got.Events) != 1 || got.Events["shop"] != 101 || got.Other != 0 {
		t.Fatalf("after reset: %+v, want shop only (billing was not seen)", got)
	}

	// A batch counts at most lake.MaxSources sources apart; the entries
	// of the last batch that this one does not count are dropped.
	c.reset()
	for i := range lake.MaxSources + 5 {
		c.add(fmt.Appendf(nil, "s%d", i))
	}
	c.add([]byte("s1"))
	c.add([]byte("shop")) // kept at zero from the last batch, but the batch is full
	got := c.counts()
	if len(got.Events) != lake.MaxSources || got.Other != 6 || got.Events["s1"] != 2 {
		t.Fatalf("%d sources, %d other, s1=%d; want %d, 6, 2", len(got.Events), got.Other, got.Events["s1"], lake.MaxSources)
	}
	c.reset()
	if len(c.n) != lake.MaxSources {
		t.Fatalf("%d entries kept after a full batch, want %d", len(c.n), lake.MaxSources)
	}
	c.reset()
	if len(c.n) != 0 || !c.counts().Empty() {
		t.Fatalf("%d entries kept after an empty batch, want 0", len(c.n))
	}
}
