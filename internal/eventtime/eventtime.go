// Package eventtime holds the event-time arithmetic that ingest, the hot
// tier and the query service must do alike: the minute of an event, and
// floor division that stays right for times before 1970.
package eventtime

// MicrosPerMinute is one minute in microseconds, the unit of event time.
const MicrosPerMinute = int64(60_000_000)

// FloorDiv divides rounding toward negative infinity.
func FloorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
