package audit

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// FuzzScan: whatever bytes follow the whole frames of a segment (a crash
// can leave anything there), scanning keeps every whole frame, ends at a
// frame boundary inside the data, and never panics.
func FuzzScan(f *testing.F) {
	f.Add(uint8(3), []byte{})
	f.Add(uint8(1), []byte{0, 0, 0, 0})
	f.Add(uint8(0), bytes.Repeat([]byte{0xff}, 40))
	f.Add(uint8(2), appendFrame(nil, 2, []byte(`{"a":1}`))[:10])
	f.Add(uint8(2), appendFrame(nil, 7, []byte(`{"a":1}`))) // a whole frame out of sequence
	f.Fuzz(func(t *testing.T, k uint8, tail []byte) {
		var prefix []byte
		for i := range uint64(k) {
			prefix = appendFrame(prefix, 5+i, fmt.Appendf(nil, `{"i":%d}`, i))
		}
		data := append(append([]byte(nil), prefix...), tail...)
		n, end, err := scan(bytes.NewReader(data), 5)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("scan: %v", err)
		}
		if n < uint64(k) || end < int64(len(prefix)) || end > int64(len(data)) {
			t.Fatalf("scan kept %d frames ending at %d of %d bytes; %d whole frames end at %d", n, end, len(data), k, len(prefix))
		}
	})
}
