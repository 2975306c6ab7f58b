package schema

// decimal is the exact value of a JSON number: mant × 10^exp, with mant's
// trailing zeros moved into exp. Only the first 19 significant digits fit in
// mant; more set overflow, which is fine because nothing decoded here needs
// more than 19 (int64) or 18 (decimal(18,2)) of them.
type decimal struct {
	neg      bool
	overflow bool   // more than 19 significant digits; mant is meaningless
	mant     uint64 // significant digits, without leading or trailing zeros
	digits   int64  // number of digits in mant (0 when the value is zero)
	exp      int64  // power of ten of mant's last digit
}

// maxExp caps a parsed exponent, so that absurd ones (1e999999999999)
// cannot overflow the arithmetic; anything this large is out of range.
const maxExp = 1 << 40

// parseDecimal parses a number that matches the JSON number grammar
// (checked by the scanner, or by isJSONNumber for strings).
func parseDecimal(b []byte) decimal {
	var d decimal
	i := 0
	if i < len(b) && b[i] == '-' {
		d.neg = true
		i++
	}
	var pending int64 // zeros seen since the last non-zero digit
	digit := func(c byte) {
		if c == '0' {
			if d.digits > 0 {
				pending++
			}
			return
		}
		if d.digits+pending+1 > 19 {
			d.overflow = true
		} else {
			for ; pending > 0; pending-- {
				d.mant *= 10
				d.digits++
			}
			d.mant = d.mant*10 + uint64(c-'0')
		}
		d.digits += pending + 1
		pending = 0
	}
	for i < len(b) && isDigit(b[i]) {
		digit(b[i])
		i++
	}
	if i < len(b) && b[i] == '.' {
		i++
		for i < len(b) && isDigit(b[i]) {
			digit(b[i])
			d.exp--
			i++
		}
	}
	d.exp += pending
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		neg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			neg = b[i] == '-'
			i++
		}
		var e int64
		for ; i < len(b) && isDigit(b[i]); i++ {
			if e < maxExp {
				e = e*10 + int64(b[i]-'0')
			}
		}
		if neg {
			e = -e
		}
		d.exp += e
	}
	return d
}

// pow10 holds 10^0 .. 10^19, all of which fit in a uint64.
var pow10 = func() (t [20]uint64) {
	t[0] = 1
	for i := 1; i < len(t); i++ {
		t[i] = t[i-1] * 10
	}
	return t
}()

// int64 returns the value as an int64, or why it is not one.
func (d decimal) int64() (int64, string) {
	if d.digits == 0 {
		return 0, ""
	}
	if d.exp < 0 {
		return 0, "is not an integer"
	}
	if d.overflow || d.digits+d.exp > 19 {
		return 0, "is out of range for int64"
	}
	u := d.mant * pow10[d.exp] // < 10^19 < 2^64
	switch {
	case !d.neg && u <= 1<<63-1:
		return int64(u), ""
	case d.neg && u <= 1<<63:
		return -int64(u), "" // -(1<<63) wraps to itself, which is right
	}
	return 0, "is out of range for int64"
}

// plainNumber parses the common case of a JSON number (grammar checked
// before): no exponent and at most 18 digits. It returns the digits as an
// integer, how many of them are before the point (0 for "0.x") and how
// many after it; ok is false for any other number.
func plainNumber(b []byte) (mant int64, intDigits, frac int, ok bool) {
	i, neg := 0, false
	if len(b) > 0 && b[0] == '-' {
		neg, i = true, 1
	}
	digits := 0
	for ; i < len(b) && isDigit(b[i]); i++ {
		mant = mant*10 + int64(b[i]-'0')
		digits++
	}
	intDigits = digits
	if mant == 0 {
		intDigits = 0 // "0" or "0.x": no integer digits
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && isDigit(b[i]); i++ {
			mant = mant*10 + int64(b[i]-'0')
			digits++
			frac++
		}
	}
	if i != len(b) || digits == 0 || digits > 18 {
		return 0, 0, 0, false
	}
	if neg {
		mant = -mant
	}
	return mant, intDigits, frac, true
}

// isJSONNumber reports whether b is exactly one JSON number.
func isJSONNumber(b []byte) bool {
	s := scanner{b: b}
	return s.num() && s.i == len(b)
}
