package demo

import (
	"bytes"
	"testing"

	"github.com/eventlake/eventlake/schema"
)

func TestDeterministicAndDecodable(t *testing.T) {
	cfg := Config{Seed: 7, LateFraction: 0.05, InventoryFraction: 0.2, MalformedFraction: 0.05}
	a, b := New(cfg), New(cfg)
	c := schema.Contract{}
	c.Defaults()
	set := schema.NewSet(schema.ShippedVersions(), nil)
	dec := schema.NewDecoder(c, schema.Fixed{S: set})
	var ev schema.Event
	kinds := map[Kind]int{}
	late := 0
	for range 5000 {
		ma, mb := a.Next(), b.Next()
		if !bytes.Equal(ma.Value, mb.Value) || ma.Topic != mb.Topic {
			t.Fatal("same seed produced different streams")
		}
		kinds[ma.Kind]++
		if ma.Late {
			late++
		}
		err := dec.Decode(ma.Value, ma.TsMicros+1000, &ev)
		switch ma.Kind {
		case KindMalformed:
			if err == nil {
				t.Fatalf("malformed message accepted: %q", ma.Value)
			}
			if err.Reason != ma.Reason {
				t.Fatalf("reason %s, generator expected %s for %q", err.Reason, ma.Reason, ma.Value)
			}
		case KindOrder:
			if err != nil {
				t.Fatalf("order rejected: %v: %s", err, ma.Value)
			}
			amount, _ := ev.Decimal(ev.Version.Column("amount"))
			if ev.Version.Subject != TypeOrderCreated || amount.LowBits() != uint64(ma.AmountCents) || ev.TsMicros != ma.TsMicros || string(ev.EventID) != ma.EventID {
				t.Fatalf("decoded order differs from ground truth: %v %v vs %+v", ev.Version, amount, ma)
			}
		case KindInventory:
			if err != nil || ev.Version.Subject != TypeInventoryUpdated {
				t.Fatalf("inventory rejected: %v: %s", err, ma.Value)
			}
		}
	}
	if kinds[KindInventory] < 800 || kinds[KindMalformed] < 150 || late < 150 {
		t.Fatalf("unexpected mix: %v late=%d", kinds, late)
	}
}
