package sessionwin

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// BenchmarkAdd measures one event: joining an open session of one of 100,000
// active keys, arriving out of order within the lateness, and opening a
// new session in a full engine (evicting one).
func BenchmarkAdd(b *testing.B) {
	const active = 100_000
	keys := make([]string, active)
	for i := range keys {
		keys[i] = userKey(i)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	c := Contribution{Orders: 1, Revenue: decimal128.FromI64(1250)}
	cfg := Config{Gap: 30 * time.Minute, Lateness: 2 * time.Minute, MaxOpen: active}
	// full returns an engine holding a session of each active key, so that
	// the loops measure steady state, not the first insertions.
	full := func(b *testing.B) *Engine {
		e := mustNew(b, cfg, nil)
		for i, k := range keys {
			e.Add(nil, k, base+int64(i), c)
		}
		return e
	}
	start := base + active // the loops' first event time

	b.Run("join_random", func(b *testing.B) {
		e := full(b)
		r := rand.New(rand.NewPCG(1, 2))
		var out []Session
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			out, _ = e.Add(out[:0], keys[r.IntN(active)], start+int64(i), c)
		}
	})
	b.Run("join_round_robin", func(b *testing.B) {
		// The worst order for the heap: every event extends the session
		// with the oldest end.
		e := full(b)
		var out []Session
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			out, _ = e.Add(out[:0], keys[i%active], start+int64(i), c)
		}
	})
	b.Run("out_of_order", func(b *testing.B) {
		e := full(b)
		var out []Session
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			// Up to a minute early, some events extending their session's
			// start, some falling inside it.
			ts := start + int64(i)*1000 - int64(i*7919%60)*1_000_000
			out, _ = e.Add(out[:0], keys[i%active], ts, c)
		}
	})
	b.Run("new_key_evicting", func(b *testing.B) {
		fresh := make([]string, 1_000_000)
		for i := range fresh {
			fresh[i] = userKey(active + i)
		}
		e := full(b)
		var out []Session
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			out, _ = e.Add(out[:0], fresh[i%len(fresh)], start+int64(i), c)
		}
	})
}
