package schema

// parseTimestamp parses the RFC 3339 profile the envelope uses,
//
//	YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+hh:mm|-hh:mm)
//
// and returns microseconds since the Unix epoch (UTC), with sub-microsecond
// digits truncated (rounded down, as time.Time.UnixMicro does).
//
// It does not fall back to time.Parse: time.Parse(time.RFC3339Nano, ...)
// also accepts one-digit hours, a comma before the fraction, more than 9
// fraction digits, year 0000 and offsets of 24h and more, none of which is
// RFC 3339 or wanted here. Tests check that every timestamp accepted here is
// accepted by time.Parse with the same instant.
func parseTimestamp(s []byte) (int64, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	century, yy := digits2(s[0], s[1]), digits2(s[2], s[3])
	year := century*100 + yy
	month := digits2(s[5], s[6])
	day := digits2(s[8], s[9])
	hour := digits2(s[11], s[12])
	minute := digits2(s[14], s[15])
	sec := digits2(s[17], s[18])
	if century < 0 || yy < 0 || year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return 0, false // negative values come from non-digits
	}

	i := 19
	var micros int64
	if s[i] == '.' {
		i++
		n := 0
		for i < len(s) && isDigit(s[i]) {
			if n < 6 {
				micros = micros*10 + int64(s[i]-'0')
			}
			n++
			i++
		}
		if n == 0 || n > 9 {
			return 0, false
		}
		for ; n < 6; n++ {
			micros *= 10
		}
	}

	var offset int64 // seconds east of UTC
	switch {
	case i == len(s)-1 && s[i] == 'Z':
	case i == len(s)-6 && (s[i] == '+' || s[i] == '-') && s[i+3] == ':':
		oh, om := digits2(s[i+1], s[i+2]), digits2(s[i+4], s[i+5])
		if oh < 0 || oh > 23 || om < 0 || om > 59 {
			return 0, false
		}
		offset = oh*3600 + om*60
		if s[i] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}

	secs := daysFromCivil(year, month, day)*86400 + hour*3600 + minute*60 + sec - offset
	return secs*1_000_000 + micros, true
}

// digits2 returns the value of two decimal digits, or a negative number if
// either is not a digit.
func digits2(a, b byte) int64 {
	if !isDigit(a) || !isDigit(b) {
		return -1000
	}
	return int64(a-'0')*10 + int64(b-'0')
}

func daysIn(month, year int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the number of days from 1970-01-01 to the given
// proleptic Gregorian date, for years >= 1 (H. Hinnant's days_from_civil).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400 // y >= 0 here
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
