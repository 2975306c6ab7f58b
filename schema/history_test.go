package schema

import (
	"fmt"
	"testing"

	"github.com/eventlake/eventlake/schema/registry"
)

// TestHistory: each version is listed with the columns it added to the
// type's tables (a nested object's columns flattened, a property that
// comes back after a version without it not added twice) and those it
// no longer has; a version that does not compile is left out.
func TestHistory(t *testing.T) {
	obj := func(props string) string { return `{"type":"object","properties":{` + props + `}}` }
	set := NewSet([]registry.Version{
		jsonVersion("pay.done", 1, 20, obj(`"id":{"type":"string"},"amount":{"type":"number"}`)),
		jsonVersion("pay.done", 2, 21, obj(`"id":{"type":"string"},"amount":{"type":"number"},"card":{"type":"object","properties":{"brand":{"type":"string"}}}`)),
		jsonVersion("pay.done", 3, 22, obj(`"id":{"type":"string"},"note":{"type":"string"}`)),
		jsonVersion("pay.done", 4, 23, obj(`"id":{"type":"integer"}`)), // id changes type: does not compile
		jsonVersion("pay.done", 5, 24, obj(`"id":{"type":"string"},"amount":{"type":"number"},"note":{"type":"string"}`)),
		jsonVersion("other", 1, 30, obj(`"x":{"type":"string"}`)),
	}, nil)
	got := set.Subject("pay.done").History()
	want := []VersionChange{
		{Version: 1, ID: 20, Added: []string{"id", "amount"}},
		{Version: 2, ID: 21, Added: []string{"card_brand"}},
		{Version: 3, ID: 22, Added: []string{"note"}, Dropped: []string{"amount", "card_brand"}},
		{Version: 5, ID: 24, Dropped: nil},
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("history\n got %+v\nwant %+v", got, want)
	}
}
