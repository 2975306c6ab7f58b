package ingest

import (
	"fmt"
	"testing"
)

func TestDedupe(t *testing.T) {
	d := newDedupe(3)
	for _, id := range []string{"a", "b"} {
		if d.seen([]byte(id)) {
			t.Fatalf("%s reported as seen on first sight", id)
		}
	}
	if !d.seen([]byte("a")) {
		t.Fatal("a not reported as duplicate")
	}
	d.commit()
	if d.seen([]byte("c")) || d.seen([]byte("d")) { // d evicts a
		t.Fatal("new ids reported as seen")
	}
	if d.seen([]byte("a")) { // a was evicted, is re-added (evicting b)
		t.Fatal("evicted id still remembered")
	}
	d.rollback() // forgets a, d, c (pending)
	if d.len() != 0 {
		// b was evicted by the pending a; the ring is empty after rollback.
		t.Fatalf("len after rollback = %d, want 0", d.len())
	}
	for _, id := range []string{"c", "d"} {
		if d.seen([]byte(id)) {
			t.Fatalf("%s still remembered after rollback", id)
		}
	}
	var nilD *dedupe
	if nilD.seen([]byte("x")) || nilD.seen([]byte("x")) {
		t.Fatal("disabled dedupe dropped an event")
	}
}

func TestDedupeRollbackKeepsCommitted(t *testing.T) {
	d := newDedupe(100)
	for i := range 10 {
		d.seen([]byte(fmt.Sprint(i)))
	}
	d.commit()
	for i := 10; i < 20; i++ {
		d.seen([]byte(fmt.Sprint(i)))
	}
	d.rollback()
	for i := range 20 {
		got := d.seen([]byte(fmt.Sprint(i)))
		if want := i < 10; got != want {
			t.Fatalf("id %d: seen=%v want %v", i, got, want)
		}
	}
}
