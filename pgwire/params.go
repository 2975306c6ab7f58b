package pgwire

import (
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	wire "github.com/jeroenrinzema/psql-wire"
)

// paramOIDs are the parameter types announced for a statement: what the
// client declared in Parse, else the type DuckDB inferred, else 0
// (unspecified: the client sends text and DuckDB casts it).
func paramOIDs(declared []uint32, params []string) []uint32 {
	out := make([]uint32, len(params))
	for i, t := range params {
		if i < len(declared) && declared[i] != 0 {
			out[i] = declared[i]
			continue
		}
		if t != "" {
			out[i] = typeOf(t).oid
		}
	}
	return out
}

// decodeArgs turns bound parameters into values for DuckDB. Text values
// of types DuckDB parses the same way (numbers, dates, text) stay text,
// so that DuckDB casts them to the parameter's type; bytea and binary
// values are decoded with pgx's codecs.
func decodeArgs(tm *pgtype.Map, oids []uint32, params []wire.Parameter) ([]any, error) {
	args := make([]any, len(params))
	for i, p := range params {
		v := p.Value()
		if v == nil {
			continue
		}
		var oid uint32
		if i < len(oids) {
			oid = oids[i]
		}
		if p.Format() == wire.TextFormat && oid != oidBytea && oid != oidBool {
			args[i] = string(v)
			continue
		}
		if oid == 0 {
			return nil, errorf("08P01", "parameter $%d is binary but its type is not known; declare its type or send it as text", i+1)
		}
		typ, ok := tm.TypeForOID(oid)
		if !ok {
			return nil, errorf("0A000", "parameter $%d has type oid %d, which this server cannot read", i+1, oid)
		}
		dv, err := typ.Codec.DecodeValue(tm, oid, int16(p.Format()), v)
		if err != nil {
			return nil, errorf("22P02", "parameter $%d: %v", i+1, err)
		}
		if args[i], err = normalizeArg(dv); err != nil {
			return nil, errorf("22P02", "parameter $%d: %v", i+1, err)
		}
	}
	return args, nil
}

// normalizeArg maps pgx's decoded values to what duckdb-go binds.
func normalizeArg(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, []byte, int64, float64, time.Time:
		return x, nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case float32:
		return float64(x), nil
	case uint32:
		return int64(x), nil
	case pgtype.Numeric:
		if !x.Valid {
			return nil, nil
		}
		if x.NaN || x.InfinityModifier != pgtype.Finite {
			return nil, fmt.Errorf("numeric NaN and infinity are not supported")
		}
		return numericText(x), nil
	case [16]uint8:
		return pgtype.UUID{Bytes: x, Valid: true}.String(), nil
	case pgtype.Time:
		return time.UnixMicro(x.Microseconds).UTC().Format("15:04:05.999999"), nil
	case pgtype.Interval:
		return fmt.Sprintf("%d months %d days %d microseconds", x.Months, x.Days, x.Microseconds), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalizeArg(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	return nil, fmt.Errorf("values of Go type %T are not supported", v)
}

// numericText writes a pgtype.Numeric exactly.
func numericText(n pgtype.Numeric) string {
	i := n.Int
	if i == nil {
		i = new(big.Int)
	}
	if n.Exp >= 0 {
		m := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n.Exp)), nil)
		return new(big.Int).Mul(i, m).String()
	}
	return decimalString(i, -n.Exp)
}
