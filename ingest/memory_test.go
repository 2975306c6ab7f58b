package ingest

import "testing"

func TestCountingAllocatorRecycles(t *testing.T) {
	a := newCountingAllocator(1 << 20)
	b := a.Allocate(200 << 10)
	if got := a.Held(); got != int64(cap(b)) {
		t.Fatalf("held %d after allocating %d", got, cap(b))
	}
	for i := range b {
		b[i] = 0xff
	}
	a.Free(b)
	if a.Held() != 0 {
		t.Fatalf("held %d after freeing everything", a.Held())
	}
	// A buffer of about the same size is taken back, zeroed up to its
	// capacity (a caller may grow it in place).
	c := a.Allocate(180 << 10)
	if &c[0] != &b[0] {
		t.Fatal("a freed buffer of about the size asked for was not reused")
	}
	if len(c) != 180<<10 {
		t.Fatalf("len %d, asked for %d", len(c), 180<<10)
	}
	for i, v := range c[:cap(c)] {
		if v != 0 {
			t.Fatalf("reused buffer not zeroed at %d", i)
		}
	}
	if a.Held() != int64(cap(c)) {
		t.Fatalf("held %d, the reused buffer has %d bytes", a.Held(), cap(c))
	}
	// Far smaller requests do not take a large buffer.
	a.Free(c)
	if d := a.Allocate(100 << 10); &d[0] == &c[0] {
		t.Fatal("a buffer twice the size asked for was reused")
	}
	// Growth in place keeps the contents; growth beyond keeps them too.
	e := a.Allocate(64 << 10)
	e[0] = 7
	e = a.Reallocate(1<<20, e)
	if e[0] != 7 || len(e) != 1<<20 {
		t.Fatal("reallocate lost the contents")
	}
}

func TestCountingAllocatorKeepsAtMostMaxFree(t *testing.T) {
	a := newCountingAllocator(256 << 10)
	bufs := [][]byte{a.Allocate(128 << 10), a.Allocate(128 << 10), a.Allocate(128 << 10)}
	for _, b := range bufs {
		a.Free(b)
	}
	if a.freeBytes > 256<<10 {
		t.Fatalf("kept %d bytes, at most %d allowed", a.freeBytes, 256<<10)
	}
	if len(a.free) != 2 {
		t.Fatalf("kept %d buffers, want 2", len(a.free))
	}
	// Small buffers are left to the Go allocator.
	a = newCountingAllocator(1 << 20)
	a.Free(a.Allocate(1 << 10))
	if len(a.free) != 0 {
		t.Fatal("a small buffer was kept")
	}
}

func TestCountingAllocatorFilesCountedNotRecycled(t *testing.T) {
	a := newCountingAllocator(1 << 20)
	f := a.files()
	b := f.Allocate(128 << 10)
	if a.Held() != int64(cap(b)) {
		t.Fatalf("held %d after a writer allocated %d", a.Held(), cap(b))
	}
	b = f.Reallocate(256<<10, b)
	if a.Held() != int64(cap(b)) {
		t.Fatalf("held %d after a writer grew its buffer to %d", a.Held(), cap(b))
	}
	f.Free(b)
	if a.Held() != 0 || len(a.free) != 0 {
		t.Fatalf("held %d, kept %d buffers after a writer freed its buffer; want 0, 0", a.Held(), len(a.free))
	}
}
