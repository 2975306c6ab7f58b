package pgwire

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5/pgtype"
)

// pgType is the Postgres type a DuckDB type is sent as.
type pgType struct {
	oid uint32
	// name is the type as format_type() writes it: "bigint",
	// "numeric(18,2)", "text[]".
	name string
	// conv turns a value of duckdb-go into one that psql-wire's pgtype map
	// encodes for oid, in text as Postgres writes it and in binary. nil
	// stays nil (NULL).
	conv func(driver.Value) (any, error)
	// zero is a non-nil value of what conv returns, for array plans.
	zero any
}

// Postgres type OIDs (pg_type.dat).
const (
	oidBool        = 16
	oidBytea       = 17
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidInterval    = 1186
	oidNumeric     = 1700
	oidUUID        = 2950
	oidChar        = 18
)

// arrayOIDs are the array types of the element types above.
var arrayOIDs = map[uint32]uint32{
	oidBool: 1000, oidBytea: 1001, oidInt2: 1005, oidInt4: 1007, oidInt8: 1016, oidText: 1009,
	oidJSON: 199, oidFloat4: 1021, oidFloat8: 1022, oidDate: 1182, oidTime: 1183, oidTimestamp: 1115,
	oidTimestamptz: 1185, oidInterval: 1187, oidNumeric: 1231, oidUUID: 2951,
}

var (
	typeBool        = pgType{oid: oidBool, name: "boolean", conv: convBool, zero: false}
	typeInt2        = pgType{oid: oidInt2, name: "smallint", conv: convInt(func(i int64) any { return int16(i) }), zero: int16(0)}
	typeInt4        = pgType{oid: oidInt4, name: "integer", conv: convInt(func(i int64) any { return int32(i) }), zero: int32(0)}
	typeInt8        = pgType{oid: oidInt8, name: "bigint", conv: convInt(func(i int64) any { return i }), zero: int64(0)}
	typeFloat4      = pgType{oid: oidFloat4, name: "real", conv: convFloat(32), zero: floatCell{bits: 32}}
	typeFloat8      = pgType{oid: oidFloat8, name: "double precision", conv: convFloat(64), zero: floatCell{bits: 64}}
	typeText        = pgType{oid: oidText, name: "text", conv: convText, zero: ""}
	typeBytea       = pgType{oid: oidBytea, name: "bytea", conv: convBytea, zero: []byte{}}
	typeDate        = pgType{oid: oidDate, name: "date", conv: convDate, zero: pgtype.Date{}}
	typeTime        = pgType{oid: oidTime, name: "time without time zone", conv: convTime, zero: timeCell{}}
	typeTimestamp   = pgType{oid: oidTimestamp, name: "timestamp without time zone", conv: convTimestamp, zero: pgtype.Timestamp{}}
	typeTimestamptz = pgType{oid: oidTimestamptz, name: "timestamp with time zone", conv: convTimestamptz, zero: tstzCell{}}
	typeInterval    = pgType{oid: oidInterval, name: "interval", conv: convInterval, zero: intervalCell{}}
	typeUUID        = pgType{oid: oidUUID, name: "uuid", conv: convUUID, zero: pgtype.UUID{}}
	typeJSON        = pgType{oid: oidJSON, name: "json", conv: convJSON, zero: ""}
	typeNumeric     = pgType{oid: oidNumeric, name: "numeric", conv: convNumeric, zero: numericCell{}}
	typeOID         = pgType{oid: oidOID, name: "oid", conv: convInt(func(i int64) any { return uint32(i) }), zero: uint32(0)}
)

// scalarTypes maps DuckDB's type names and aliases (upper case) to
// Postgres types. Unsigned types go to the next wider signed type.
var scalarTypes = map[string]pgType{
	"BOOLEAN": typeBool, "BOOL": typeBool, "LOGICAL": typeBool,
	"TINYINT": typeInt2, "INT1": typeInt2, "SMALLINT": typeInt2, "INT2": typeInt2, "SHORT": typeInt2, "UTINYINT": typeInt2,
	"INTEGER": typeInt4, "INT4": typeInt4, "INT": typeInt4, "SIGNED": typeInt4, "USMALLINT": typeInt4,
	"BIGINT": typeInt8, "INT8": typeInt8, "LONG": typeInt8, "UINTEGER": typeInt8,
	"UBIGINT": typeNumeric, "HUGEINT": typeNumeric, "INT128": typeNumeric, "UHUGEINT": typeNumeric, "BIGNUM": typeNumeric, "VARINT": typeNumeric,
	"FLOAT": typeFloat4, "FLOAT4": typeFloat4, "REAL": typeFloat4,
	"DOUBLE": typeFloat8, "FLOAT8": typeFloat8,
	"VARCHAR": typeText, "TEXT": typeText, "STRING": typeText, "CHAR": typeText, "BPCHAR": typeText, "NVARCHAR": typeText,
	"BLOB": typeBytea, "BYTEA": typeBytea, "BINARY": typeBytea, "VARBINARY": typeBytea,
	"DATE":      typeDate,
	"TIME":      typeTime,
	"INTERVAL":  typeInterval,
	"TIMESTAMP": typeTimestamp, "DATETIME": typeTimestamp, "TIMESTAMP_US": typeTimestamp, "TIMESTAMP_MS": typeTimestamp,
	"TIMESTAMP_S": typeTimestamp, "TIMESTAMP_NS": typeTimestamp, "TIMESTAMP WITHOUT TIME ZONE": typeTimestamp,
	"TIMESTAMPTZ": typeTimestamptz, "TIMESTAMP WITH TIME ZONE": typeTimestamptz,
	"UUID": typeUUID,
	"JSON": typeJSON,
}

// typeOf is the Postgres type of a DuckDB type name. Types without a
// Postgres counterpart (STRUCT, MAP, UNION, ENUM, TIME WITH TIME ZONE,
// nested lists ...) are sent as text.
func typeOf(duck string) pgType {
	t := strings.ToUpper(strings.TrimSpace(duck))
	if strings.HasSuffix(t, "]") {
		if i := strings.LastIndexByte(t, '['); i > 0 {
			elem := typeOf(t[:i])
			arr, ok := arrayOIDs[elem.oid]
			if !ok || strings.HasSuffix(strings.TrimSpace(t[:i]), "]") {
				return pgType{oid: oidText, name: "text", conv: convText, zero: ""}
			}
			return pgType{oid: arr, name: elem.name + "[]", conv: convList(elem), zero: listValue{}}
		}
	}
	if pt, ok := scalarTypes[t]; ok {
		return pt
	}
	if p, s, ok := decimalArgs(t); ok {
		return pgType{oid: oidNumeric, name: fmt.Sprintf("numeric(%d,%d)", p, s), conv: convNumeric, zero: numericCell{}}
	}
	if strings.HasPrefix(t, "VARCHAR(") || strings.HasPrefix(t, "CHAR(") {
		return typeText
	}
	return pgType{oid: oidText, name: "text", conv: convText, zero: ""}
}

// decimalArgs parses DECIMAL(p,s) and NUMERIC(p,s).
func decimalArgs(t string) (p, s int, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(t, "DECIMAL("):
		rest = t[len("DECIMAL("):]
	case strings.HasPrefix(t, "NUMERIC("):
		rest = t[len("NUMERIC("):]
	default:
		return 0, 0, t == "DECIMAL" || t == "NUMERIC"
	}
	rest = strings.TrimSuffix(rest, ")")
	ps, ss, _ := strings.Cut(rest, ",")
	p, err1 := strconv.Atoi(strings.TrimSpace(ps))
	s, err2 := strconv.Atoi(strings.TrimSpace(ss))
	if err1 != nil {
		return 0, 0, false
	}
	if err2 != nil {
		s = 0
	}
	return p, s, true
}

func convBool(v driver.Value) (any, error) {
	if b, ok := v.(bool); ok {
		return b, nil
	}
	return nil, fmt.Errorf("boolean column holds %T", v)
}

func toInt64(v driver.Value) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case int:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	}
	return 0, false
}

func convInt(narrow func(int64) any) func(driver.Value) (any, error) {
	return func(v driver.Value) (any, error) {
		i, ok := toInt64(v)
		if !ok {
			return nil, fmt.Errorf("integer column holds %T", v)
		}
		return narrow(i), nil
	}
}

func convFloat(bits int) func(driver.Value) (any, error) {
	return func(v driver.Value) (any, error) {
		switch x := v.(type) {
		case float64:
			return floatCell{f: x, bits: bits}, nil
		case float32:
			return floatCell{f: float64(x), bits: bits}, nil
		}
		if i, ok := toInt64(v); ok {
			return floatCell{f: float64(i), bits: bits}, nil
		}
		return nil, fmt.Errorf("floating point column holds %T", v)
	}
}

func convText(v driver.Value) (any, error) { return formatText(v), nil }

func convBytea(v driver.Value) (any, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case string:
		return []byte(x), nil
	}
	return nil, fmt.Errorf("blob column holds %T", v)
}

func convDate(v driver.Value) (any, error) {
	t, ok := v.(time.Time)
	if !ok {
		return nil, fmt.Errorf("date column holds %T", v)
	}
	return pgtype.Date{Time: time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), Valid: true}, nil
}

func convTime(v driver.Value) (any, error) {
	t, ok := v.(time.Time)
	if !ok {
		return nil, fmt.Errorf("time column holds %T", v)
	}
	us := int64(t.Hour())*3600e6 + int64(t.Minute())*60e6 + int64(t.Second())*1e6 + int64(t.Nanosecond())/1e3
	return timeCell{us: us}, nil
}

func convTimestamp(v driver.Value) (any, error) {
	t, ok := v.(time.Time)
	if !ok {
		return nil, fmt.Errorf("timestamp column holds %T", v)
	}
	// DuckDB's TIMESTAMP is a wall clock; duckdb-go returns it as UTC.
	return pgtype.Timestamp{Time: t.UTC().Truncate(time.Microsecond), Valid: true}, nil
}

func convTimestamptz(v driver.Value) (any, error) {
	t, ok := v.(time.Time)
	if !ok {
		return nil, fmt.Errorf("timestamptz column holds %T", v)
	}
	return tstzCell{t: t}, nil
}

func convInterval(v driver.Value) (any, error) {
	i, ok := v.(duckdb.Interval)
	if !ok {
		return nil, fmt.Errorf("interval column holds %T", v)
	}
	return intervalCell{months: i.Months, days: i.Days, micros: i.Micros}, nil
}

func convUUID(v driver.Value) (any, error) {
	var u pgtype.UUID
	switch x := v.(type) {
	case []byte:
		if len(x) != 16 {
			return nil, fmt.Errorf("uuid column holds %d bytes", len(x))
		}
		copy(u.Bytes[:], x)
	case [16]byte:
		u.Bytes = x
	case duckdb.UUID:
		u.Bytes = x
	case string:
		if err := u.Scan(x); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("uuid column holds %T", v)
	}
	u.Valid = true
	return u, nil
}

// convJSON writes JSON text: duckdb-go decodes JSON values, so they are
// encoded again.
func convJSON(v driver.Value) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode json value: %w", err)
	}
	return string(b), nil
}

func convNumeric(v driver.Value) (any, error) {
	switch x := v.(type) {
	case duckdb.Decimal:
		if x.Value == nil {
			return nil, fmt.Errorf("decimal without a value")
		}
		return numericCell{n: new(big.Int).Set(x.Value), scale: int32(x.Scale)}, nil
	case *big.Int:
		return numericCell{n: new(big.Int).Set(x)}, nil
	case uint64:
		return numericCell{n: new(big.Int).SetUint64(x)}, nil
	}
	if i, ok := toInt64(v); ok {
		return numericCell{n: big.NewInt(i)}, nil
	}
	return nil, fmt.Errorf("numeric column holds %T", v)
}

// convList converts a DuckDB list into an array of elem.
func convList(elem pgType) func(driver.Value) (any, error) {
	return func(v driver.Value) (any, error) {
		items, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("list column holds %T", v)
		}
		out := listValue{elems: make([]any, len(items)), zero: elem.zero}
		for i, it := range items {
			if it == nil {
				continue
			}
			c, err := elem.conv(it)
			if err != nil {
				return nil, err
			}
			out.elems[i] = c
		}
		return out, nil
	}
}

// convert applies t to v, keeping NULL.
func (t pgType) convert(v driver.Value) (any, error) {
	if v == nil {
		return nil, nil
	}
	return t.conv(v)
}

// formatText writes a value of a type without a Postgres counterpart.
func formatText(v driver.Value) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case time.Time:
		return x.Format("2006-01-02 15:04:05.999999999Z07:00")
	case duckdb.Decimal:
		return decimalString(x.Value, int32(x.Scale))
	case map[string]any, []any, duckdb.OrderedMap:
		if b, err := json.Marshal(x); err == nil {
			return string(b)
		}
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// numericCell is an exact decimal: n * 10^-scale.
type numericCell struct {
	n     *big.Int
	scale int32
}

func (c numericCell) NumericValue() (pgtype.Numeric, error) {
	if c.n == nil {
		return pgtype.Numeric{}, nil
	}
	return pgtype.Numeric{Int: c.n, Exp: -c.scale, Valid: true}, nil
}

func (c numericCell) TextValue() (pgtype.Text, error) {
	if c.n == nil {
		return pgtype.Text{}, nil
	}
	return pgtype.Text{String: decimalString(c.n, c.scale), Valid: true}, nil
}

// decimalString writes n * 10^-scale with exactly scale fraction digits,
// as Postgres writes numeric(p,s).
func decimalString(n *big.Int, scale int32) string {
	s := new(big.Int).Abs(n).String()
	if scale > 0 {
		if len(s) <= int(scale) {
			s = strings.Repeat("0", int(scale)-len(s)+1) + s
		}
		s = s[:len(s)-int(scale)] + "." + s[len(s)-int(scale):]
	}
	if n.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// floatCell is a float4 or float8, written in text as Postgres 12+ does:
// the shortest text that reads back exactly.
type floatCell struct {
	f    float64
	bits int
}

func (c floatCell) Float64Value() (pgtype.Float8, error) {
	return pgtype.Float8{Float64: c.f, Valid: true}, nil
}

func (c floatCell) TextValue() (pgtype.Text, error) {
	var s string
	switch {
	case math.IsNaN(c.f):
		s = "NaN"
	case math.IsInf(c.f, 1):
		s = "Infinity"
	case math.IsInf(c.f, -1):
		s = "-Infinity"
	default:
		// Postgres writes the shortest digits, in plain notation when
		// the decimal exponent is in [-4, 15) and as 1e+20 otherwise.
		s = strconv.FormatFloat(c.f, 'e', -1, c.bits)
		if exp, err := strconv.Atoi(s[strings.IndexByte(s, 'e')+1:]); err == nil && exp >= -4 && exp < 15 {
			s = strconv.FormatFloat(c.f, 'f', -1, c.bits)
		}
	}
	return pgtype.Text{String: s, Valid: true}, nil
}

// tstzCell is a timestamptz, written in text in UTC with a +00 offset
// (the session's TimeZone is always UTC).
type tstzCell struct{ t time.Time }

func (c tstzCell) TimestamptzValue() (pgtype.Timestamptz, error) {
	return pgtype.Timestamptz{Time: c.t, Valid: true}, nil
}

func (c tstzCell) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: c.t.UTC().Format("2006-01-02 15:04:05.999999") + "+00", Valid: true}, nil
}

// timeCell is a time of day, written in text without trailing zeros.
type timeCell struct{ us int64 }

func (c timeCell) TimeValue() (pgtype.Time, error) {
	return pgtype.Time{Microseconds: c.us, Valid: true}, nil
}

func (c timeCell) TextValue() (pgtype.Text, error) {
	s := fmt.Sprintf("%02d:%02d:%02d", c.us/3600e6, c.us/60e6%60, c.us/1e6%60)
	if frac := c.us % 1e6; frac != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
	}
	return pgtype.Text{String: s, Valid: true}, nil
}

// intervalCell is an interval, written in text in Postgres' default
// IntervalStyle: "1 year 2 mons 3 days 04:05:06.5".
type intervalCell struct {
	months, days int32
	micros       int64
}

func (c intervalCell) IntervalValue() (pgtype.Interval, error) {
	return pgtype.Interval{Months: c.months, Days: c.days, Microseconds: c.micros, Valid: true}, nil
}

func (c intervalCell) TextValue() (pgtype.Text, error) {
	var parts []string
	unit := func(n int64, one, many string) {
		if n == 0 {
			return
		}
		u := many
		if n == 1 || n == -1 {
			u = one
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, u))
	}
	unit(int64(c.months/12), "year", "years")
	unit(int64(c.months%12), "mon", "mons")
	unit(int64(c.days), "day", "days")
	if c.micros != 0 || len(parts) == 0 {
		us := c.micros
		sign := ""
		if us < 0 {
			sign, us = "-", -us
		}
		s := fmt.Sprintf("%s%02d:%02d:%02d", sign, us/3600e6, us/60e6%60, us/1e6%60)
		if frac := us % 1e6; frac != 0 {
			s += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
		}
		parts = append(parts, s)
	}
	return pgtype.Text{String: strings.Join(parts, " "), Valid: true}, nil
}

// listValue is a one-dimensional array; nil elements are NULL.
type listValue struct {
	elems []any
	zero  any
}

func (l listValue) Dimensions() []pgtype.ArrayDimension {
	if len(l.elems) == 0 {
		return []pgtype.ArrayDimension{}
	}
	return []pgtype.ArrayDimension{{Length: int32(len(l.elems)), LowerBound: 1}}
}

func (l listValue) Index(i int) any { return l.elems[i] }
func (l listValue) IndexType() any  { return l.zero }
