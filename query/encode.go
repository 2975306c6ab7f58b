package query

import (
	"bytes"
	"database/sql/driver"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Timestamp layouts of JSON values: RFC 3339 in UTC with a fixed number of
// fractional digits.
const (
	layoutMicros = "2006-01-02T15:04:05.000000Z07:00"
	layoutNanos  = "2006-01-02T15:04:05.000000000Z07:00"
)

// encodeValue turns a value read from DuckDB into one that encodes to
// JSON without losing anything:
//
//   - DECIMAL: an exact string with all scale digits ("12.30")
//   - TIMESTAMP, TIMESTAMPTZ: RFC 3339 UTC with microseconds
//     (nanoseconds for TIMESTAMP_NS); DATE "2006-01-02"; TIME "15:04:05.000000"
//   - BLOB: base64 (standard, padded); UUID: its canonical text
//   - HUGEINT and other big integers: JSON numbers with every digit
//   - NaN and infinities: the strings "NaN", "Infinity", "-Infinity"
//   - INTERVAL: {"months":m,"days":d,"micros":u}
//   - LIST/ARRAY: arrays; STRUCT: objects; MAP: objects with keys as
//     text, in map order; UNION: the member's value
//
// typ is DuckDB's type name of the value, which nested values inherit
// only for lists (inside structs and maps, a DATE reads as a timestamp).
func encodeValue(v any, typ string) any {
	switch x := v.(type) {
	case nil:
		return nil
	case duckdb.Decimal:
		return formatDecimal(x.Value, int(x.Scale))
	case *duckdb.Decimal:
		return formatDecimal(x.Value, int(x.Scale))
	case time.Time:
		switch typ {
		case "DATE":
			return x.Format(time.DateOnly)
		case "TIME":
			return x.Format("15:04:05.000000")
		case "TIMETZ":
			return x.Format("15:04:05.000000Z07:00")
		case "TIMESTAMP_NS":
			return x.UTC().Format(layoutNanos)
		}
		return x.UTC().Format(layoutMicros)
	case []byte:
		if typ == "UUID" && len(x) == 16 {
			return formatUUID(x)
		}
		return base64.StdEncoding.EncodeToString(x)
	case *big.Int:
		return json.Number(x.String())
	case float64:
		return encodeFloat(x)
	case float32:
		return encodeFloat(float64(x))
	case duckdb.Interval:
		return map[string]int64{"months": int64(x.Months), "days": int64(x.Days), "micros": x.Micros}
	case []any:
		elem := listElem(typ)
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = encodeValue(e, elem)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = encodeValue(e, "")
		}
		return out
	case duckdb.OrderedMap:
		return encodeMap(&x)
	case *duckdb.OrderedMap:
		return encodeMap(x)
	case duckdb.Union:
		return encodeValue(x.Value, "")
	case duckdb.UUID:
		return formatUUID(x[:])
	case string, bool, int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return x
	}
	return fmt.Sprint(v)
}

// listElem is the element type of a LIST (T[]) or ARRAY (T[n]) type.
func listElem(typ string) string {
	if strings.HasSuffix(typ, "]") {
		if i := strings.LastIndexByte(typ, '['); i > 0 {
			return typ[:i]
		}
	}
	return ""
}

func encodeFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// formatDecimal renders an unscaled value with exactly scale fractional
// digits: (1230, 2) -> "12.30".
func formatDecimal(unscaled *big.Int, scale int) string {
	if unscaled == nil {
		return "0"
	}
	digits := new(big.Int).Abs(unscaled).String()
	sign := ""
	if unscaled.Sign() < 0 {
		sign = "-"
	}
	if scale <= 0 {
		return sign + digits
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
}

func formatUUID(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// orderedObject is a JSON object that keeps its keys in order.
type orderedObject struct {
	keys   []string
	values []any
}

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(o.values[i])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func encodeMap(m *duckdb.OrderedMap) orderedObject {
	keys, values := m.Keys(), m.Values()
	o := orderedObject{keys: make([]string, len(keys)), values: make([]any, len(values))}
	for i, k := range keys {
		switch ek := encodeValue(k, "").(type) {
		case string:
			o.keys[i] = ek
		case json.Number:
			o.keys[i] = string(ek)
		default:
			kb, err := json.Marshal(ek)
			if err != nil {
				kb = []byte(fmt.Sprint(k))
			}
			o.keys[i] = string(kb)
		}
		o.values[i] = encodeValue(values[i], "")
	}
	return o
}

// valueSize is about how many bytes v, a value read from DuckDB, takes in
// an answer (as JSON after encodeValue; about as much as Postgres text):
// exact for strings without escapes, an upper bound for numbers and
// times. It is what query.max_answer_bytes counts, whatever the protocol.
func valueSize(v any) int64 {
	switch x := v.(type) {
	case nil:
		return 4
	case string:
		return int64(len(x)) + 3 // quotes and a comma
	case []byte:
		return int64(base64.StdEncoding.EncodedLen(len(x))) + 3
	case bool:
		return 6
	case time.Time:
		return 40
	case duckdb.Decimal, *duckdb.Decimal, *big.Int:
		return 44
	case []any:
		n := int64(2)
		for _, e := range x {
			n += valueSize(e)
		}
		return n
	case map[string]any:
		n := int64(2)
		for k, e := range x {
			n += int64(len(k)) + 3 + valueSize(e)
		}
		return n
	case duckdb.OrderedMap:
		return orderedMapSize(&x)
	case *duckdb.OrderedMap:
		return orderedMapSize(x)
	case duckdb.Union:
		return valueSize(x.Value)
	}
	return 24 // numbers, intervals, UUIDs
}

func orderedMapSize(m *duckdb.OrderedMap) int64 {
	n := int64(2)
	values := m.Values()
	for i, k := range m.Keys() {
		n += valueSize(k) + 1 + valueSize(values[i])
	}
	return n
}

// rowSize is valueSize of a row.
func rowSize(row []driver.Value) int64 {
	var n int64
	for _, v := range row {
		n += valueSize(v)
	}
	return n
}
