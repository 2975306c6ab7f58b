package query

import (
	"math/big"
	"testing"
)

func TestFormatDecimal(t *testing.T) {
	cases := []struct {
		unscaled string
		scale    int
		want     string
	}{
		{"1230", 2, "12.30"},
		{"30", 2, "0.30"},
		{"5", 2, "0.05"},
		{"-5", 2, "-0.05"},
		{"0", 2, "0.00"},
		{"-123456", 2, "-1234.56"},
		{"100000000000000000000000000000000001", 2, "1000000000000000000000000000000000.01"},
		{"42", 0, "42"},
		{"-42", 0, "-42"},
		{"1", 6, "0.000001"},
	}
	for _, c := range cases {
		v, _ := new(big.Int).SetString(c.unscaled, 10)
		if got := formatDecimal(v, c.scale); got != c.want {
			t.Errorf("formatDecimal(%s, %d) = %q, want %q", c.unscaled, c.scale, got, c.want)
		}
	}
}

func TestListElem(t *testing.T) {
	for in, want := range map[string]string{"DATE[]": "DATE", "DECIMAL(4,2)[3]": "DECIMAL(4,2)", "INTEGER[][]": "INTEGER[]", "VARCHAR": ""} {
		if got := listElem(in); got != want {
			t.Errorf("listElem(%q) = %q, want %q", in, got, want)
		}
	}
}
