package readmodel

import (
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"
)

// OutColumn is one column of a model's answers.
type OutColumn struct {
	Name string `json:"name"`
	// Type is the SQL type of the values (as DuckDB names it); JSON
	// carries decimals, longs and timestamps as strings.
	Type string `json:"type"`
	// Kind is bucket, key or the aggregate (count, sum, ...).
	Kind string `json:"kind"`
}

// AvgExtraScale is how many more decimal places an average of decimals
// (or integers) has than its input.
const AvgExtraScale = 4

// OutColumns are the columns of the model's answers: the bucket, the keys
// and one per aggregate (its final value: an average, an estimate).
func (m *Model) OutColumns() []OutColumn {
	out := []OutColumn{{Name: m.Bucket.Name, Type: "TIMESTAMP WITH TIME ZONE", Kind: "bucket"}}
	for _, k := range m.Keys {
		out = append(out, OutColumn{Name: k.Name, Type: sqlType(k.Type), Kind: "key"})
	}
	for _, a := range m.Aggs {
		c := OutColumn{Name: a.Name, Kind: a.Kind.String()}
		switch a.Kind {
		case AggCount, AggCountCol, AggDistinct:
			c.Type = "BIGINT"
		case AggSum:
			c.Type = sqlType(SumType(a.Type))
		case AggMin, AggMax, AggArgMax, AggArgMin:
			c.Type = sqlType(a.Type)
		case AggAvg:
			if sumKindOf(a.Type) == sumFloat {
				c.Type = "DOUBLE"
			} else {
				c.Type = sqlType(iceberg.DecimalTypeOf(38, avgScale(a.Type)))
			}
		}
		out = append(out, c)
	}
	return out
}

func avgScale(t iceberg.Type) int {
	if d, ok := t.(iceberg.DecimalType); ok {
		return d.Scale() + AvgExtraScale
	}
	return AvgExtraScale
}

func sqlType(t iceberg.Type) string {
	switch tt := t.(type) {
	case iceberg.StringType:
		return "VARCHAR"
	case iceberg.Int32Type:
		return "INTEGER"
	case iceberg.Int64Type:
		return "BIGINT"
	case iceberg.DecimalType:
		return "DECIMAL(" + strconv.Itoa(tt.Precision()) + "," + strconv.Itoa(tt.Scale()) + ")"
	case iceberg.Float32Type:
		return "FLOAT"
	case iceberg.Float64Type:
		return "DOUBLE"
	case iceberg.BooleanType:
		return "BOOLEAN"
	case iceberg.DateType:
		return "DATE"
	case iceberg.TimestampType:
		return "TIMESTAMP"
	case iceberg.TimestampTzType:
		return "TIMESTAMP WITH TIME ZONE"
	}
	return t.String()
}

// Output is a row's answer, one JSON value per OutColumns: timestamps in
// RFC 3339, decimals and longs of keys and sums as strings (exact, and
// safe from JavaScript's 53-bit numbers), counts as numbers, NULL as nil.
func (m *Model) Output(r *Row) []any {
	out := make([]any, 0, 1+len(m.Keys)+len(m.Aggs))
	out = append(out, formatTime(r.Bucket))
	for i, k := range m.Keys {
		out = append(out, formatValue(k.Type, r.Keys[i]))
	}
	for i, a := range m.Aggs {
		acc := r.Accs[i]
		switch a.Kind {
		case AggCount, AggCountCol:
			out = append(out, acc.N)
		case AggDistinct:
			var est uint64
			if acc.Sk != nil {
				est = acc.Sk.Estimate()
			}
			out = append(out, est)
		case AggSum:
			if !acc.Set {
				out = append(out, nil)
				continue
			}
			out = append(out, formatSum(a.Type, acc))
		case AggMin, AggMax, AggArgMax, AggArgMin:
			if !acc.Set {
				out = append(out, nil)
				continue
			}
			out = append(out, formatValue(a.Type, Value{I: acc.I, F: acc.F, D: acc.D, B: acc.B}))
		case AggAvg:
			if !acc.Set || acc.N == 0 {
				out = append(out, nil)
				continue
			}
			out = append(out, formatAvg(a.Type, acc))
		}
	}
	return out
}

func formatTime(us int64) string {
	var buf [40]byte
	return string(appendTime(buf[:0], us))
}

func formatSum(t iceberg.Type, acc Acc) any {
	switch sumKindOf(t) {
	case sumDecimal:
		return formatDecimal(acc.D, decimalScale(t))
	case sumInt:
		return strconv.FormatInt(acc.I, 10)
	}
	return acc.F
}

// formatAvg divides exactly and rounds half away from zero to the
// average's scale.
func formatAvg(t iceberg.Type, acc Acc) any {
	if sumKindOf(t) == sumFloat {
		return acc.F / float64(acc.N)
	}
	return formatDecimal(avgDecimal(t, acc), int32(avgScale(t)))
}

// formatDecimal is d.ToString(scale), faster.
func formatDecimal(d decimal128.Num, scale int32) string {
	var buf [48]byte
	return string(appendDecimal(buf[:0], d, scale))
}

func formatValue(t iceberg.Type, v Value) any {
	if v.Null {
		return nil
	}
	switch tt := t.(type) {
	case iceberg.StringType:
		return string(v.B)
	case iceberg.Int32Type:
		return v.I
	case iceberg.Int64Type:
		return strconv.FormatInt(v.I, 10)
	case iceberg.DecimalType:
		return formatDecimal(v.D, int32(tt.Scale()))
	case iceberg.BooleanType:
		return v.I != 0
	case iceberg.DateType:
		return time.Unix(v.I*86400, 0).UTC().Format("2006-01-02")
	case iceberg.TimestampType, iceberg.TimestampTzType:
		return formatTime(v.I)
	case iceberg.Float32Type, iceberg.Float64Type:
		return v.F
	}
	return nil
}

// ParseKey reads a key value given as text (a query parameter) as a
// Value of the key's type.
func ParseKey(t iceberg.Type, s string) (Value, bool) {
	k, scale, _ := kindOf(t)
	switch k {
	case kString:
		return Value{B: []byte(s)}, true
	case kBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return Value{}, false
		}
		if b {
			return Value{I: 1}, true
		}
		return Value{}, true
	case kDecimal:
		d, err := decimal128.FromString(s, 38, scale)
		return Value{D: d}, err == nil
	case kFloat:
		f, err := strconv.ParseFloat(s, 64)
		return Value{F: f}, err == nil
	}
	switch t.(type) {
	case iceberg.DateType:
		d, err := time.Parse("2006-01-02", s)
		return Value{I: d.Unix() / 86400}, err == nil
	case iceberg.TimestampType, iceberg.TimestampTzType:
		ts, err := time.Parse(time.RFC3339Nano, s)
		return Value{I: ts.UnixMicro()}, err == nil
	}
	i, err := strconv.ParseInt(s, 10, 64)
	return Value{I: i}, err == nil
}

// Equal reports whether two non-null key values of type t are equal.
func Equal(t iceberg.Type, a, b Value) bool {
	if a.Null || b.Null {
		return a.Null == b.Null
	}
	k, _, _ := kindOf(t)
	return compare(k, a, b) == 0
}
