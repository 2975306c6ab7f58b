package gen

import (
	"bytes"
	"testing"

	"github.com/eventlake/eventlake/internal/envelope"
)

func TestDeterministicAndDecodable(t *testing.T) {
	cfg := Config{Seed: 7, LateFraction: 0.05, InventoryFraction: 0.2, MalformedFraction: 0.05}
	a, b := New(cfg), New(cfg)
	var dec envelope.Decoder
	var ev envelope.Event
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
		err := dec.Decode(ma.Value, &ev)
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
			if !ev.IsOrder || ev.Order.AmountCents != ma.AmountCents || ev.TsMicros != ma.TsMicros || string(ev.EventID) != ma.EventID {
				t.Fatalf("decoded order differs from ground truth: %+v vs %+v", ev.Order, ma)
			}
		case KindInventory:
			if err != nil || !ev.IsInventory {
				t.Fatalf("inventory rejected: %v: %s", err, ma.Value)
			}
		}
	}
	if kinds[KindInventory] < 800 || kinds[KindMalformed] < 150 || late < 150 {
		t.Fatalf("unexpected mix: %v late=%d", kinds, late)
	}
}
