package readmodel

import (
	"encoding/json"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"
)

// RowJSON writes answer rows as JSON objects: the bytes json.Marshal
// writes for the map of a row's column names to its Output values (keys
// sorted, strings HTML-escaped, numbers as encoding/json formats them),
// without the map, the boxed values and reflection. A day of one-minute
// buckets is 1,440 rows: encoding them is most of an answer's time.
type RowJSON struct {
	m    *Model
	cols []rowJSONCol
	// every says the columns are all of OutColumns: the rows' encoding
	// is cached on them (Row.json).
	every bool
}

type rowJSONCol struct {
	out int    // the column's index in OutColumns
	key []byte // "name": as encoding/json writes it
}

// RowJSON returns the writer of rows holding the columns outs (indexes in
// OutColumns; the answer of a query with group= leaves keys out).
func (m *Model) RowJSON(outs []int) *RowJSON {
	all := m.OutColumns()
	e := &RowJSON{m: m, every: len(outs) == len(all)}
	for i, o := range outs {
		e.every = e.every && o == i
		e.cols = append(e.cols, rowJSONCol{out: o, key: append(AppendJSONString(nil, all[o].Name), ':')})
	}
	// encoding/json sorts a map's keys as strings.
	slices.SortStableFunc(e.cols, func(a, b rowJSONCol) int { return strings.Compare(all[a.out].Name, all[b.out].Name) })
	return e
}

// Append appends r's object to dst. It fails where json.Marshal fails: on
// a NaN or infinite double. The row must not change meanwhile (the hot
// tier answers with copies of its changing rows).
func (e *RowJSON) Append(dst []byte, r *Row) ([]byte, error) {
	if !e.every {
		return e.append(dst, r)
	}
	if b := r.json.Load(); b != nil {
		return append(dst, *b...), nil
	}
	start := len(dst)
	dst, err := e.append(dst, r)
	if err != nil {
		return nil, err
	}
	b := slices.Clone(dst[start:])
	r.json.Store(&b)
	return dst, nil
}

func (e *RowJSON) append(dst []byte, r *Row) ([]byte, error) {
	dst = append(dst, '{')
	var err error
	for i, c := range e.cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, c.key...)
		if dst, err = e.m.AppendOutputJSON(dst, r, c.out); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// AppendOutputJSON appends Output(r)[col] as json.Marshal writes it (an
// error for a NaN or infinite double).
func (m *Model) AppendOutputJSON(dst []byte, r *Row, col int) ([]byte, error) {
	switch {
	case col == 0:
		return appendQuotedTime(dst, r.Bucket), nil
	case col <= len(m.Keys):
		return appendValueJSON(dst, m.Keys[col-1].Type, r.Keys[col-1])
	}
	i := col - 1 - len(m.Keys)
	a, acc := m.Aggs[i], &r.Accs[i]
	switch a.Kind {
	case AggCount, AggCountCol:
		return strconv.AppendInt(dst, acc.N, 10), nil
	case AggDistinct:
		var est uint64
		if acc.Sk != nil {
			est = acc.Sk.Estimate()
		}
		return strconv.AppendUint(dst, est, 10), nil
	case AggSum:
		if !acc.Set {
			return append(dst, "null"...), nil
		}
		switch sumKindOf(a.Type) {
		case sumDecimal:
			dst = append(dst, '"')
			dst = appendDecimal(dst, acc.D, decimalScale(a.Type))
			return append(dst, '"'), nil
		case sumInt:
			dst = append(dst, '"')
			dst = strconv.AppendInt(dst, acc.I, 10)
			return append(dst, '"'), nil
		}
		return appendFloatJSON(dst, acc.F)
	case AggMin, AggMax, AggArgMax, AggArgMin:
		if !acc.Set {
			return append(dst, "null"...), nil
		}
		return appendValueJSON(dst, a.Type, Value{I: acc.I, F: acc.F, D: acc.D, B: acc.B})
	case AggAvg:
		if !acc.Set || acc.N == 0 {
			return append(dst, "null"...), nil
		}
		if sumKindOf(a.Type) == sumFloat {
			return appendFloatJSON(dst, acc.F/float64(acc.N))
		}
		dst = append(dst, '"')
		dst = appendDecimal(dst, avgDecimal(a.Type, *acc), int32(avgScale(a.Type)))
		return append(dst, '"'), nil
	}
	return append(dst, "null"...), nil
}

// appendValueJSON appends the JSON of formatValue(t, v).
func appendValueJSON(dst []byte, t iceberg.Type, v Value) ([]byte, error) {
	if v.Null {
		return append(dst, "null"...), nil
	}
	switch tt := t.(type) {
	case iceberg.StringType:
		return AppendJSONString(dst, v.B), nil
	case iceberg.Int32Type:
		return strconv.AppendInt(dst, v.I, 10), nil
	case iceberg.Int64Type:
		dst = append(dst, '"')
		dst = strconv.AppendInt(dst, v.I, 10)
		return append(dst, '"'), nil
	case iceberg.DecimalType:
		dst = append(dst, '"')
		dst = appendDecimal(dst, v.D, int32(tt.Scale()))
		return append(dst, '"'), nil
	case iceberg.BooleanType:
		return strconv.AppendBool(dst, v.I != 0), nil
	case iceberg.DateType:
		dst = append(dst, '"')
		dst = time.Unix(v.I*86400, 0).UTC().AppendFormat(dst, "2006-01-02")
		return append(dst, '"'), nil
	case iceberg.TimestampType, iceberg.TimestampTzType:
		return appendQuotedTime(dst, v.I), nil
	case iceberg.Float32Type, iceberg.Float64Type:
		return appendFloatJSON(dst, v.F)
	}
	return append(dst, "null"...), nil
}

func appendQuotedTime(dst []byte, us int64) []byte {
	dst = append(dst, '"')
	dst = appendTime(dst, us)
	return append(dst, '"')
}

// appendTime appends formatTime(us).
func appendTime(dst []byte, us int64) []byte {
	return time.UnixMicro(us).UTC().AppendFormat(dst, time.RFC3339Nano)
}

func decimalScale(t iceberg.Type) int32 {
	if d, ok := t.(iceberg.DecimalType); ok {
		return int32(d.Scale())
	}
	return 0
}

// appendDecimal appends n.ToString(scale) (scale >= 0): without big.Int
// when n fits in 64 bits, as sums and averages of a day's orders do.
func appendDecimal(dst []byte, n decimal128.Num, scale int32) []byte {
	neg := n.Sign() < 0
	abs := n
	if neg {
		abs = n.Negate()
	}
	if scale < 0 || abs.HighBits() != 0 {
		return append(dst, n.ToString(scale)...)
	}
	var buf [24]byte
	digits := strconv.AppendUint(buf[:0], abs.LowBits(), 10)
	if neg {
		dst = append(dst, '-')
	}
	places := int(scale)
	switch {
	case places == 0:
		return append(dst, digits...)
	case len(digits) <= places:
		dst = append(dst, '0', '.')
		for range places - len(digits) {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	at := len(digits) - places
	dst = append(dst, digits[:at]...)
	dst = append(dst, '.')
	return append(dst, digits[at:]...)
}

// avgDecimal is the average of a decimal or integer avg's state at
// avgScale: the exact quotient rounded half away from zero.
func avgDecimal(t iceberg.Type, acc Acc) decimal128.Num {
	inScale := int(decimalScale(t))
	sum := acc.D
	if sumKindOf(t) == sumInt {
		sum = decimal128.FromI64(acc.I)
	}
	shift := avgScale(t) - inScale // AvgExtraScale
	if q, ok := avgInt64(sum, acc.N, shift); ok {
		return decimal128.FromI64(q)
	}
	return avgBig(sum, acc.N, shift)
}

// avgBig is sum * 10^shift / n rounded half away from zero, in big.Int:
// what avgInt64 computes when it fits 64 bits.
func avgBig(sum decimal128.Num, n int64, shift int) decimal128.Num {
	num := sum.BigInt()
	num.Mul(num, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(shift)), nil))
	den := big.NewInt(n)
	q, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	// Round half away from zero: |2 rem| >= den.
	if new(big.Int).Abs(new(big.Int).Mul(rem, big.NewInt(2))).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return decimal128.FromBigInt(q)
}

// avgInt64 is avgDecimal's division in int64, when sum * 10^shift fits
// (false: it may not).
func avgInt64(sum decimal128.Num, n int64, shift int) (int64, bool) {
	if n <= 0 || shift < 0 || shift > 18 {
		return 0, false
	}
	s, ok := int64Of(sum)
	if !ok {
		return 0, false
	}
	mul := int64(1)
	for range shift {
		mul *= 10
	}
	if s > math.MaxInt64/mul || s < -math.MaxInt64/mul {
		return 0, false
	}
	num := s * mul
	q, rem := num/n, num%n // truncated, as big.Int's QuoRem
	if rem < 0 {
		rem = -rem
	}
	if rem >= n-rem { // |2 rem| >= n, without overflow
		if num < 0 {
			q--
		} else {
			q++
		}
	}
	return q, true
}

// int64Of is n as an int64, if it fits.
func int64Of(n decimal128.Num) (int64, bool) {
	hi, lo := n.HighBits(), n.LowBits()
	switch {
	case hi == 0 && lo <= math.MaxInt64:
		return int64(lo), true
	case hi == -1 && lo > math.MaxInt64:
		return int64(lo), true
	}
	return 0, false
}

// appendFloatJSON appends f as json.Marshal writes a float64 (an error
// for NaN and infinities, which JSON cannot hold).
func appendFloatJSON(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 is written e-9.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// AppendJSONString appends s as json.Marshal writes a string: quoted,
// with <, > and & escaped as well.
func AppendJSONString[T []byte | string](dst []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(string(s)) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
