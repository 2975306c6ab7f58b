package ingest

import "testing"

// TestItems: items keep their order and place across chunks.
func TestItems(t *testing.T) {
	for _, n := range []int{0, 1, itemChunk - 1, itemChunk, itemChunk + 1, 3*itemChunk + 7} {
		var l items
		for i := range n {
			l.add(item{row: int64(i)})
		}
		if l.len() != n {
			t.Fatalf("%d added, len %d", n, l.len())
		}
		for i := range n {
			if got := l.at(i).row; got != int64(i) {
				t.Fatalf("%d added: item %d is %d", n, i, got)
			}
		}
		if n > 0 {
			l.at(n - 1).present = true
			if !l.at(n - 1).present {
				t.Fatalf("%d added: at does not point into the list", n)
			}
		}
	}
}
