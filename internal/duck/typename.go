package duck

import (
	"fmt"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// TypeName writes a DuckDB type as DuckDB names result columns
// (DECIMAL(18,2), VARCHAR[], TIMESTAMP WITH TIME ZONE ...).
func TypeName(info duckdb.TypeInfo) string {
	switch d := info.Details().(type) {
	case *duckdb.DecimalDetails:
		return fmt.Sprintf("DECIMAL(%d,%d)", d.Width, d.Scale)
	case *duckdb.ListDetails:
		return TypeName(d.Child) + "[]"
	case *duckdb.ArrayDetails:
		return fmt.Sprintf("%s[%d]", TypeName(d.Child), d.Size)
	}
	if info.Alias() != "" {
		return info.Alias()
	}
	if n, ok := TypeNames[info.InternalType()]; ok {
		return n
	}
	return "VARCHAR"
}

// TypeNames are the names of DuckDB's types without parameters.
var TypeNames = map[duckdb.Type]string{
	duckdb.TYPE_BOOLEAN: "BOOLEAN", duckdb.TYPE_TINYINT: "TINYINT", duckdb.TYPE_SMALLINT: "SMALLINT",
	duckdb.TYPE_INTEGER: "INTEGER", duckdb.TYPE_BIGINT: "BIGINT", duckdb.TYPE_UTINYINT: "UTINYINT",
	duckdb.TYPE_USMALLINT: "USMALLINT", duckdb.TYPE_UINTEGER: "UINTEGER", duckdb.TYPE_UBIGINT: "UBIGINT",
	duckdb.TYPE_HUGEINT: "HUGEINT", duckdb.TYPE_FLOAT: "FLOAT", duckdb.TYPE_DOUBLE: "DOUBLE",
	duckdb.TYPE_VARCHAR: "VARCHAR", duckdb.TYPE_DECIMAL: "DECIMAL", duckdb.TYPE_BLOB: "BLOB",
	duckdb.TYPE_TIMESTAMP_TZ: "TIMESTAMP WITH TIME ZONE", duckdb.TYPE_TIMESTAMP: "TIMESTAMP",
	duckdb.TYPE_TIMESTAMP_S: "TIMESTAMP_S", duckdb.TYPE_TIMESTAMP_MS: "TIMESTAMP_MS", duckdb.TYPE_TIMESTAMP_NS: "TIMESTAMP_NS",
	duckdb.TYPE_DATE: "DATE", duckdb.TYPE_TIME: "TIME", duckdb.TYPE_TIME_TZ: "TIMETZ", duckdb.TYPE_INTERVAL: "INTERVAL",
	duckdb.TYPE_UUID: "UUID", duckdb.TYPE_STRUCT: "STRUCT", duckdb.TYPE_MAP: "MAP", duckdb.TYPE_ENUM: "ENUM",
}
