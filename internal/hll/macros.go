package hll

// DuckDBMacros returns the statements that define the SQL functions over
// sketch columns (list<int> of packed registers, see Registers), for
// DuckDB 1.5 with no extension:
//
//   - hll_count(sketch): aggregate; the estimated number of distinct items
//     of the union of the sketches of the rows it aggregates, as Merge
//     then Estimate give it in Go: SELECT hll_count(users_hll) FROM t
//     WHERE minute >= ... [GROUP BY ...].
//   - hll_merge(sketch): aggregate; the union of the rows' sketches, a
//     sketch (to store a rollup).
//   - hll_estimate(sketch): scalar; the estimate of one sketch, or of any
//     list of packed registers (an index may repeat: the highest rank
//     wins, so hll_estimate(a || b) counts the union of a and b).
//
// A NULL sketch is empty; hll_count and hll_estimate of no sketch are 0,
// hll_merge of none is []. A register outside the packed range (as
// FromRegisters refuses) fails the statement.
//
// The macros read nothing but their argument. The estimate adds the
// number of registers of each rank, times 2^-rank, from rank 53 down to
// 0, as Estimate does: the same float64 operations in the same order, so
// the same integer.
//
// Each statement is CREATE OR REPLACE MACRO (in the default schema, so
// every connection of the database sees it): run them before locking the
// configuration or refusing writes.
func DuckDBMacros() []string {
	return []string{macroEstimate(), macroMerge(), macroCount}
}

// validSQL is true for a packed register p that FromRegisters accepts.
const validSQL = `coalesce(p BETWEEN 0 AND 262143 AND (p & 63) BETWEEN 1 AND 53, false)`

// registersSQL turns the packed registers of a list into rows: reg, the
// highest packed register of each index (index<<6 | its highest rank),
// and bad, the number of invalid entries. It does no arithmetic that an
// invalid entry could make fail: the macros fail with their own error.
func registersSQL(list string) string {
	return `SELECT max(p) AS reg, count_if(NOT ` + validSQL + `) AS bad FROM unnest(` + list + `) AS u(p) GROUP BY p >> 6`
}

const errRange = `a register is out of range: a sketch holds index<<6 | rank, index 0..4095, rank 1..53`

// macroEstimate is Estimate in SQL. The constant is alphaMM (the test
// checks that it parses to the same float64); 10240 is 2.5*m.
func macroEstimate() string {
	return `CREATE OR REPLACE MACRO hll_estimate(sketch) AS (
  SELECT CASE
    WHEN bad > 0 THEN error('hll_estimate: ` + errRange + `')
    WHEN raw <= 10240 AND zeros > 0 THEN CAST(floor(CAST(4096 AS DOUBLE) * ln(CAST(4096 AS DOUBLE) / CAST(zeros AS DOUBLE)) + 0.5) AS BIGINT)
    ELSE CAST(floor(raw + 0.5) AS BIGINT)
  END
  FROM (
    SELECT bad, zeros, CAST('12098218.894406674' AS DOUBLE) / list_reduce(
      list_append(
        list_transform(range(53, 0, -1), lambda k: CAST(coalesce(counts[k], 0) AS DOUBLE) / CAST(CAST(1 AS BIGINT) << k AS DOUBLE)),
        CAST(zeros AS DOUBLE)),
      lambda a, b: a + b) AS raw
    FROM (
      SELECT coalesce(sum(bad), 0) AS bad, 4096 - count(*) AS zeros, histogram(reg & 63) AS counts
      FROM (` + registersSQL("sketch") + `)
    )
  )
)`
}

// macroMerge is Merge in SQL, as an aggregate: the highest packed
// register of each index, in ascending order.
func macroMerge() string {
	return `CREATE OR REPLACE MACRO hll_merge(sketch) AS (
  SELECT CASE
    WHEN coalesce(sum(bad), 0) > 0 THEN error('hll_merge: ` + errRange + `')
    ELSE coalesce(list(CAST(reg AS INTEGER) ORDER BY reg), CAST([] AS INTEGER[]))
  END
  FROM (` + registersSQL("flatten(list(sketch))") + `)
)`
}

// macroCount is Merge then Estimate, as an aggregate.
const macroCount = `CREATE OR REPLACE MACRO hll_count(sketch) AS hll_estimate(flatten(list(sketch)))`
