package streamer

import "testing"

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
