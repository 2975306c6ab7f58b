package readmodel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"
)

// kind is how a value of a column is held in a Value.
type kind uint8

const (
	kString  kind = iota // B
	kInt                 // I: int, long, date (days), timestamps (micros)
	kDecimal             // D, at the column's scale
	kFloat               // F
	kBool                // I: 0 or 1
)

// kindOf says how values of t are held, and a decimal's scale.
func kindOf(t iceberg.Type) (kind, int32, bool) {
	switch tt := t.(type) {
	case iceberg.StringType:
		return kString, 0, true
	case iceberg.Int32Type, iceberg.Int64Type, iceberg.DateType, iceberg.TimestampType, iceberg.TimestampTzType:
		return kInt, 0, true
	case iceberg.DecimalType:
		return kDecimal, int32(tt.Scale()), true
	case iceberg.Float32Type, iceberg.Float64Type:
		return kFloat, 0, true
	case iceberg.BooleanType:
		return kBool, 0, true
	}
	return 0, 0, false
}

// Value is one value of a source column (or of a key). B may alias the
// decoder's or a record's memory: State copies what it keeps.
type Value struct {
	Null bool
	I    int64
	F    float64
	D    decimal128.Num
	B    []byte
}

// compare orders two non-null values of kind k.
func compare(k kind, a, b Value) int {
	switch k {
	case kString:
		return bytes.Compare(a.B, b.B)
	case kInt, kBool:
		switch {
		case a.I < b.I:
			return -1
		case a.I > b.I:
			return 1
		}
		return 0
	case kDecimal:
		return a.D.Cmp(b.D)
	default:
		switch {
		case a.F < b.F:
			return -1
		case a.F > b.F:
			return 1
		}
		return 0
	}
}

// tri is SQL's three-valued truth.
type tri uint8

const (
	triFalse tri = iota
	triTrue
	triNull
)

type exprOp uint8

const (
	opAnd exprOp = iota
	opOr
	opNot
	opCmp
	opIn
	opIsNull
	opNotNull
)

// expr is a compiled WHERE clause.
type expr struct {
	op     exprOp
	kids   []*expr
	in     int    // opCmp, opIn, opIs*: the input compared
	k      kind   // its kind
	cmp    string // opCmp: = <> < <= > >=
	consts []Value
	negate bool // NOT IN
}

func (e *expr) eval(vals []Value) tri {
	switch e.op {
	case opAnd:
		out := triTrue
		for _, k := range e.kids {
			switch k.eval(vals) {
			case triFalse:
				return triFalse
			case triNull:
				out = triNull
			}
		}
		return out
	case opOr:
		out := triFalse
		for _, k := range e.kids {
			switch k.eval(vals) {
			case triTrue:
				return triTrue
			case triNull:
				out = triNull
			}
		}
		return out
	case opNot:
		switch e.kids[0].eval(vals) {
		case triTrue:
			return triFalse
		case triFalse:
			return triTrue
		}
		return triNull
	case opIsNull:
		return truth(vals[e.in].Null)
	case opNotNull:
		return truth(!vals[e.in].Null)
	case opCmp:
		v := vals[e.in]
		if v.Null {
			return triNull
		}
		c := compare(e.k, v, e.consts[0])
		switch e.cmp {
		case "=":
			return truth(c == 0)
		case "<>":
			return truth(c != 0)
		case "<":
			return truth(c < 0)
		case "<=":
			return truth(c <= 0)
		case ">":
			return truth(c > 0)
		default:
			return truth(c >= 0)
		}
	default: // opIn
		v := vals[e.in]
		if v.Null {
			return triNull
		}
		for _, c := range e.consts {
			if compare(e.k, v, c) == 0 {
				return truth(!e.negate)
			}
		}
		return truth(e.negate)
	}
}

func truth(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

var comparisons = map[string]string{
	"COMPARE_EQUAL": "=", "COMPARE_NOTEQUAL": "<>", "COMPARE_LESSTHAN": "<", "COMPARE_LESSTHANOREQUALTO": "<=",
	"COMPARE_GREATERTHAN": ">", "COMPARE_GREATERTHANOREQUALTO": ">=",
}

var flipped = map[string]string{"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

// compileWhere compiles the form's WHERE: AND, OR, NOT, comparisons of a
// column with a constant, [NOT] IN lists of constants, BETWEEN and IS
// [NOT] NULL.
func compileWhere(n *node, col func(*node) (int, iceberg.Type, error), fail func(format string, args ...any) error) (*expr, error) {
	leaf := func(c *node) (int, kind, int32, iceberg.Type, error) {
		idx, t, err := col(c)
		if err != nil {
			return 0, 0, 0, nil, err
		}
		k, scale, ok := kindOf(t)
		if !ok || !keyType(t) && k != kFloat {
			return 0, 0, 0, nil, fail("%s is %s, which the form does not compare", c.ColumnNames[len(c.ColumnNames)-1], t)
		}
		return idx, k, scale, t, nil
	}
	switch {
	case n.Class == "CONJUNCTION":
		op := opAnd
		if n.Type == "CONJUNCTION_OR" {
			op = opOr
		}
		e := &expr{op: op}
		for _, c := range n.Children {
			k, err := compileWhere(c, col, fail)
			if err != nil {
				return nil, err
			}
			e.kids = append(e.kids, k)
		}
		return e, nil
	case n.Class == "OPERATOR" && n.Type == "OPERATOR_NOT" && len(n.Children) == 1:
		k, err := compileWhere(n.Children[0], col, fail)
		if err != nil {
			return nil, err
		}
		return &expr{op: opNot, kids: []*expr{k}}, nil
	case n.Class == "OPERATOR" && (n.Type == "OPERATOR_IS_NULL" || n.Type == "OPERATOR_IS_NOT_NULL") && len(n.Children) == 1:
		idx, k, _, _, err := leaf(n.Children[0])
		if err != nil {
			return nil, err
		}
		op := opIsNull
		if n.Type == "OPERATOR_IS_NOT_NULL" {
			op = opNotNull
		}
		return &expr{op: op, in: idx, k: k}, nil
	case n.Class == "OPERATOR" && (n.Type == "COMPARE_IN" || n.Type == "COMPARE_NOT_IN") && len(n.Children) >= 2:
		idx, k, scale, t, err := leaf(n.Children[0])
		if err != nil {
			return nil, err
		}
		e := &expr{op: opIn, in: idx, k: k, negate: n.Type == "COMPARE_NOT_IN"}
		for _, c := range n.Children[1:] {
			v, err := constantOf(c, k, scale, t)
			if err != nil {
				return nil, fail("IN list: %v", err)
			}
			e.consts = append(e.consts, v)
		}
		return e, nil
	case n.Class == "COMPARISON":
		op, ok := comparisons[n.Type]
		if !ok {
			return nil, fail("%s is not part of the form (comparisons are = <> < <= > >=)", strings.ToLower(n.Type))
		}
		c, k := n.Left, n.Right
		if c == nil || c.Class != "COLUMN_REF" {
			c, k, op = n.Right, n.Left, flipped[op]
		}
		for _, side := range []*node{n.Left, n.Right} {
			if side != nil && side.Class == "FUNCTION" {
				return nil, fail("function %s is not part of the form: compare columns with constants (compute expressions when you query the model)", side.FunctionName)
			}
		}
		if c == nil || c.Class != "COLUMN_REF" {
			return nil, fail("compare a column with a constant (column %s constant); expressions are not part of the form", op)
		}
		idx, kd, scale, t, err := leaf(c)
		if err != nil {
			return nil, err
		}
		v, err := constantOf(k, kd, scale, t)
		if err != nil {
			return nil, fail("%s %s ...: %v", c.ColumnNames[len(c.ColumnNames)-1], op, err)
		}
		return &expr{op: opCmp, in: idx, k: kd, cmp: op, consts: []Value{v}}, nil
	case n.Class == "BETWEEN" && n.Input != nil:
		idx, k, scale, t, err := leaf(n.Input)
		if err != nil {
			return nil, err
		}
		lo, err := constantOf(n.Lower, k, scale, t)
		if err != nil {
			return nil, fail("BETWEEN: %v", err)
		}
		hi, err := constantOf(n.Upper, k, scale, t)
		if err != nil {
			return nil, fail("BETWEEN: %v", err)
		}
		return &expr{op: opAnd, kids: []*expr{
			{op: opCmp, in: idx, k: k, cmp: ">=", consts: []Value{lo}},
			{op: opCmp, in: idx, k: k, cmp: "<=", consts: []Value{hi}},
		}}, nil
	case n.Class == "FUNCTION":
		return nil, fail("function %s is not part of the form: compare columns with constants (compute expressions when you query the model)", n.FunctionName)
	case n.Class == "COLUMN_REF":
		return nil, fail("a bare column is not a condition: compare it (%s = true)", strings.Join(n.ColumnNames, "."))
	}
	return nil, fail("%s is not part of the form: use comparisons of columns with constants, IN, BETWEEN, IS NULL, AND, OR and NOT", strings.ToLower(n.Type))
}

// timeLayouts are the literal forms of timestamps in WHERE.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"}

// constantOf reads a constant compared with a column of kind k (and, for
// decimals, scale), exactly: a constant the column cannot equal exactly
// (more decimals than its scale, a fraction for an integer) is refused.
func constantOf(n *node, k kind, scale int32, t iceberg.Type) (Value, error) {
	cast := ""
	for n != nil && n.Class == "CAST" {
		if n.CastType != nil {
			cast = n.CastType.ID
		}
		n = n.Child
	}
	if n == nil || n.Class != "CONSTANT" || n.Value == nil {
		return Value{}, fmt.Errorf("expected a constant")
	}
	c := n.Value
	if c.IsNull {
		return Value{}, fmt.Errorf("a comparison with NULL is never true; use IS NULL")
	}
	raw := string(c.Value)
	var str string
	isStr := c.Type.ID == "VARCHAR"
	if isStr {
		_ = json.Unmarshal(c.Value, &str)
	}
	switch k {
	case kString:
		if !isStr {
			return Value{}, fmt.Errorf("the column is text: compare it with a quoted string")
		}
		return Value{B: []byte(str)}, nil
	case kBool:
		if isStr && cast == "BOOLEAN" || isStr {
			switch strings.ToLower(str) {
			case "t", "true":
				return Value{I: 1}, nil
			case "f", "false":
				return Value{I: 0}, nil
			}
		}
		if c.Type.ID == "BOOLEAN" {
			if raw == "true" {
				return Value{I: 1}, nil
			}
			return Value{I: 0}, nil
		}
		return Value{}, fmt.Errorf("the column is boolean: compare it with true or false")
	case kInt:
		switch t.(type) {
		case iceberg.DateType:
			if !isStr {
				return Value{}, fmt.Errorf("the column is a date: compare it with '2026-11-26'")
			}
			d, err := time.Parse("2006-01-02", str)
			if err != nil {
				return Value{}, fmt.Errorf("%q is not a date like 2026-11-26", str)
			}
			return Value{I: d.Unix() / 86400}, nil
		case iceberg.TimestampType, iceberg.TimestampTzType:
			if !isStr {
				return Value{}, fmt.Errorf("the column is a timestamp: compare it with '2026-11-26T10:00:00Z'")
			}
			for _, l := range timeLayouts {
				if ts, err := time.Parse(l, str); err == nil {
					return Value{I: ts.UnixMicro()}, nil
				}
			}
			return Value{}, fmt.Errorf("%q is not a timestamp like 2026-11-26T10:00:00Z", str)
		}
		d, sc, err := numeric(c)
		if err != nil {
			return Value{}, err
		}
		if sc > 0 {
			return Value{}, fmt.Errorf("the column holds integers: %s is not one", raw)
		}
		if !d.FitsInPrecision(18) {
			return Value{}, fmt.Errorf("%s is out of the column's range", raw)
		}
		return Value{I: int64(d.LowBits())}, nil
	case kDecimal:
		d, sc, err := numeric(c)
		if err != nil {
			return Value{}, err
		}
		if sc > scale {
			return Value{}, fmt.Errorf("%s has more decimals than the column (scale %d)", raw, scale)
		}
		return Value{D: d.IncreaseScaleBy(scale - sc)}, nil
	default: // kFloat
		if isStr {
			return Value{}, fmt.Errorf("the column is a number: compare it with a number")
		}
		f, err := strconv.ParseFloat(raw, 64)
		if c.Type.ID == "DECIMAL" && c.Type.TypeInfo != nil {
			f /= pow10f(c.Type.TypeInfo.Scale)
		}
		if err != nil {
			return Value{}, fmt.Errorf("%s is not a number", raw)
		}
		return Value{F: f}, nil
	}
}

func pow10f(n int) float64 {
	f := 1.0
	for range n {
		f *= 10
	}
	return f
}

// numeric reads an integer or decimal constant as an unscaled decimal and
// its scale.
func numeric(c *constant) (decimal128.Num, int32, error) {
	raw := string(c.Value)
	switch c.Type.ID {
	case "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT":
		b, ok := new(big.Int).SetString(raw, 10)
		if !ok {
			return decimal128.Num{}, 0, fmt.Errorf("%s is not an integer", raw)
		}
		d := decimal128.FromBigInt(b)
		return d, 0, nil
	case "DECIMAL":
		b, ok := new(big.Int).SetString(raw, 10)
		if !ok || c.Type.TypeInfo == nil {
			return decimal128.Num{}, 0, fmt.Errorf("%s is not a decimal", raw)
		}
		return decimal128.FromBigInt(b), int32(c.Type.TypeInfo.Scale), nil
	}
	return decimal128.Num{}, 0, fmt.Errorf("expected a number, got %s", strings.ToLower(c.Type.ID))
}
