package streamer

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"testing/synctest"
	"time"
)

func TestHubResume(t *testing.T) {
	h := newHub(4, nil)
	h.publish([]Update{{Minute: "a"}, {Minute: "b"}, {Minute: "c"}})
	// A client that saw update 1 gets 2 and 3.
	s, backlog, ok := h.subscribe(1, true)
	if !ok || len(backlog) != 2 || backlog[0].Seq != 2 || backlog[1].Seq != 3 {
		t.Fatalf("resume after 1: ok=%v backlog=%+v", ok, backlog)
	}
	h.publish([]Update{{Minute: "d"}})
	if u := <-s.ch; u.Seq != 4 || u.Minute != "d" {
		t.Fatalf("live update %+v", u)
	}
	h.unsubscribe(s)
	// Updates 1..2 are evicted from a ring of 4 after 6 updates: a client
	// that saw 1 is told it missed some.
	h.publish([]Update{{Minute: "e"}, {Minute: "f"}})
	if _, backlog, ok := h.subscribe(1, true); ok || len(backlog) != 4 || backlog[0].Seq != 3 {
		t.Fatalf("resume after an evicted id: ok=%v backlog=%+v", ok, backlog)
	}
	// A client that saw everything gets nothing old.
	if _, backlog, ok := h.subscribe(6, true); !ok || len(backlog) != 0 {
		t.Fatalf("resume at the head: ok=%v backlog=%+v", ok, backlog)
	}
}

func TestSlowClientIsDropped(t *testing.T) {
	dropped := 0
	h := newHub(10, func() { dropped++ })
	s, _, _ := h.subscribe(0, false)
	for i := 0; i < cap(s.ch)+1; i++ {
		h.publish([]Update{{Minute: "m"}})
	}
	select {
	case <-s.gone:
	default:
		t.Fatal("a client whose buffer overflowed was not dropped")
	}
	if dropped != 1 || h.clients() != 0 {
		t.Fatalf("dropped=%d clients=%d", dropped, h.clients())
	}
}

func TestFormatCents(t *testing.T) {
	for c, want := range map[int64]string{0: "0.00", 5: "0.05", 1234: "12.34", -5: "-0.05", -100: "-1.00"} {
		if got := formatCents(c); got != want {
			t.Errorf("formatCents(%d) = %s, want %s", c, got, want)
		}
	}
}

// recv takes what a client has been sent so far (call after
// synctest.Wait: nothing more is on its way).
func recv(s *sub) []Update {
	var out []Update
	for {
		select {
		case u := <-s.ch:
			out = append(out, u)
		default:
			return out
		}
	}
}

// startFlusher runs c's flusher until stop (or the end of the test) and
// fails the test if it returns an error.
func startFlusher(t *testing.T, c *coalescer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.run(ctx); err != nil {
			t.Error(err)
		}
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// TestCoalesceInterval: a key quiet for an interval is sent at once;
// its changes within an interval of that message are held and sent once,
// with the key's latest value, when the interval has passed, numbered
// then; a key whose last update turns final is sent final; what is held
// when the flusher stops is still sent.
func TestCoalesceInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 250 * time.Millisecond
		h := newHub(100, nil)
		coalesced := 0
		c := newCoalescer(h.publish, interval, func(n int) { coalesced += n })
		s, _, _ := h.subscribe(0, false)
		stop := startFlusher(t, c)

		time.Sleep(interval / 5)
		c.add([]Update{{Minute: "b", OrderCount: 1}})
		c.add([]Update{{Minute: "a", OrderCount: 1}, {Minute: "b", OrderCount: 2}})
		for i := int64(2); i <= 50; i++ {
			c.add([]Update{{Minute: "c", OrderCount: i}, {Minute: "a", OrderCount: i}})
		}
		c.add([]Update{{Minute: "a", OrderCount: 50, Final: true}})
		synctest.Wait()
		// The first change of each quiet key, at once.
		want := []Update{{Seq: 1, Minute: "b", OrderCount: 1}, {Seq: 2, Minute: "a", OrderCount: 1}, {Seq: 3, Minute: "c", OrderCount: 2}}
		if got := recv(s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("at once sent\n%+v\nwant\n%+v", got, want)
		}
		time.Sleep(interval * 3 / 4)
		synctest.Wait()
		if got := recv(s); len(got) != 0 {
			t.Fatalf("sent within the interval of the last messages: %+v", got)
		}
		time.Sleep(interval / 2)
		synctest.Wait()
		want = []Update{
			{Seq: 4, Minute: "b", OrderCount: 2},
			{Seq: 5, Minute: "a", OrderCount: 50, Final: true},
			{Seq: 6, Minute: "c", OrderCount: 50},
		}
		if got := recv(s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after the interval sent\n%+v\nwant\n%+v", got, want)
		}
		// 1 + 2 + 49*2 + 1 updates published, 6 sent.
		if coalesced != 102-6 {
			t.Fatalf("coalesced %d, want %d", coalesced, 102-6)
		}
		// A quiet interval sends nothing.
		time.Sleep(interval)
		synctest.Wait()
		if got := recv(s); len(got) != 0 {
			t.Fatalf("a quiet interval sent %+v", got)
		}
		// Stopping sends what is held.
		c.add([]Update{{Minute: "d", OrderCount: 1}, {Minute: "d", OrderCount: 2}})
		stop()
		if got := recv(s); len(got) != 2 || got[0].Seq != 7 || got[1].Seq != 8 || got[1].OrderCount != 2 {
			t.Fatalf("final flush sent %+v", got)
		}
	})
}

// TestCoalesceBurst: a burst over several intervals is sent at most once
// per key per interval, each key ends with its last value, sequence
// numbers have no gap, and a client resuming from an id in the middle
// gets exactly the rest.
func TestCoalesceBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 250 * time.Millisecond
		h := newHub(10_000, nil)
		coalesced := 0
		c := newCoalescer(h.publish, interval, func(n int) { coalesced += n })
		s, _, _ := h.subscribe(0, false)
		stop := startFlusher(t, c)

		type sent struct {
			at time.Time
			u  Update
		}
		var got []sent
		keys := []string{"10:00", "10:01", "10:02"}
		last := map[string]int64{}
		published := 0
		start := time.Now()
		for i := int64(1); i <= 400; i++ {
			// Three keys at uneven rates: 10:00 every step, 10:01 every
			// other, 10:02 every seventh.
			var us []Update
			for j, k := range keys {
				if i%[]int64{1, 2, 7}[j] == 0 {
					us = append(us, Update{Minute: k, OrderCount: i, Revenue: fmt.Sprintf("%d.00", i)})
					last[k] = i
				}
			}
			published += len(us)
			c.add(us)
			time.Sleep(5 * time.Millisecond) // 400 steps: 2 s, 8 intervals
			synctest.Wait()
			for _, u := range recv(s) {
				got = append(got, sent{time.Now(), u})
			}
		}
		stop()
		for _, u := range recv(s) {
			got = append(got, sent{time.Now(), u})
		}
		elapsed := time.Since(start)

		perFlush := map[string]bool{} // receive time (one per flush in a bubble) + key
		final := map[string]Update{}
		for i, g := range got {
			if g.u.Seq != uint64(i+1) {
				t.Fatalf("message %d has seq %d", i, g.u.Seq)
			}
			k := g.at.Sub(start).String() + " " + g.u.key()
			if perFlush[k] {
				t.Fatalf("key %s sent twice in one interval (at %s)", g.u.key(), g.at.Sub(start))
			}
			perFlush[k] = true
			final[g.u.Minute] = g.u
		}
		for _, k := range keys {
			if u := final[k]; u.OrderCount != last[k] || u.Revenue != fmt.Sprintf("%d.00", last[k]) {
				t.Errorf("key %s ends with %+v, want %d", k, u, last[k])
			}
		}
		if bound := len(keys) * (int(elapsed/interval) + 1); len(got) > bound {
			t.Errorf("%d messages in %s, more than %d keys x %d flushes", len(got), elapsed, len(keys), bound)
		}
		if coalesced != published-len(got) {
			t.Errorf("coalesced %d, want %d published - %d sent", coalesced, published, len(got))
		}

		// Resume from an id in the middle: exactly the rest, as sent.
		mid := len(got) / 2
		_, backlog, ok := h.subscribe(got[mid-1].u.Seq, true)
		if !ok || len(backlog) != len(got)-mid {
			t.Fatalf("resume after %d: ok=%v, %d updates, want %d", got[mid-1].u.Seq, ok, len(backlog), len(got)-mid)
		}
		for i, u := range backlog {
			if !reflect.DeepEqual(u, got[mid+i].u) {
				t.Fatalf("resumed update %d is %+v, was sent as %+v", i, u, got[mid+i].u)
			}
		}
	})
}

// TestCoalesceOff: with interval 0 every update is sent at once, and
// there is no flusher.
func TestCoalesceOff(t *testing.T) {
	h := newHub(100, nil)
	c := newCoalescer(h.publish, 0, func(int) { t.Error("coalesced with coalescing off") })
	s, _, _ := h.subscribe(0, false)
	for i := int64(1); i <= 10; i++ {
		c.add([]Update{{Minute: "a", OrderCount: i}})
	}
	got := recv(s)
	if len(got) != 10 {
		t.Fatalf("sent %d of 10 updates", len(got))
	}
	for i, u := range got {
		if u.Seq != uint64(i+1) || u.OrderCount != int64(i+1) {
			t.Fatalf("update %d: %+v", i, u)
		}
	}
	if err := c.run(t.Context()); err != nil {
		t.Fatal(err)
	}
}
