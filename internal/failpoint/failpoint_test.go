package failpoint

import "testing"

func TestParseAndHit(t *testing.T) {
	s, err := Parse("a=2, b")
	if err != nil {
		t.Fatal(err)
	}
	kills := 0
	s.killFn = func() { kills++ }
	s.Hit("a")
	if kills != 0 {
		t.Fatalf("killed on first hit of a=2")
	}
	s.Hit("a")
	s.Hit("a")
	s.Hit("b")
	s.Hit("c")
	if kills != 2 {
		t.Fatalf("kills = %d, want 2 (a once at its 2nd hit, b once)", kills)
	}
	var nilSet *Set
	nilSet.Hit("a") // must not panic
	for _, bad := range []string{"a=0", "a=x", "=1"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if s, err := Parse(""); s != nil || err != nil {
		t.Errorf("Parse(\"\") = %v, %v", s, err)
	}
}
