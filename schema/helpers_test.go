package schema

import (
	"fmt"
	"strings"
	"time"

	"github.com/eventlake/eventlake/schema/registry"
)

// testRecordTs is the Kafka timestamp of test records: two hours after the
// events' usual time, so that max_future does not interfere.
var testRecordTs = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixMicro()

// moneySchema has a decimal without bounds, for precision tests.
const moneySchema = `{"type":"object","properties":{"amount":{"type":["number","string"],"x-eventlake-type":"decimal(18,2)"}},"required":["amount"]}`

// testVersions are the shipped schemas plus money.test.
func testVersions() []registry.Version {
	vs := ShippedVersions()
	return append(vs, registry.Version{Subject: "money.test", Version: 1, ID: 100, Type: registry.TypeJSON, Schema: moneySchema})
}

func testSet() *Set { return NewSet(testVersions(), nil) }

// testDecoder decodes with the shipped schemas and the default contract;
// maxBytes 0 means no practical limit.
func testDecoder(maxBytes int) *Decoder {
	c := Contract{MaxMessageBytes: maxBytes}
	if maxBytes == 0 {
		c.MaxMessageBytes = 1 << 30
	}
	c.Defaults()
	return NewDecoder(c, Fixed{testSet()})
}

// permissiveDecoder accepts any event time (for timestamp parsing tests):
// pass permissiveRecordTs as the record time.
func permissiveDecoder() *Decoder {
	c := Contract{MaxMessageBytes: 1 << 30}
	c.Defaults()
	c.MinEventTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	return NewDecoder(c, Fixed{testSet()})
}

// permissiveRecordTs is a record time after every valid event time.
var permissiveRecordTs = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).UnixMicro()

// cols renders named payload columns of ev: name=value, null as <null>.
func cols(ev *Event, names ...string) string {
	var parts []string
	for _, n := range names {
		v := "<null>"
		if ev.Version != nil {
			if i := ev.Version.Column(n); i >= 0 && ev.vals[i].gen == ev.gen {
				switch c := ev.Version.Columns[i]; c.kind {
				case colString, colJSON:
					v = fmt.Sprintf("%q", ev.vals[i].b)
				case colLong, colTimestamp, colBool:
					v = fmt.Sprint(ev.vals[i].i)
				case colDouble:
					v = fmt.Sprint(ev.vals[i].f)
				case colDecimal:
					v = ev.vals[i].d.ToString(int32(c.Type.(interface{ Scale() int }).Scale()))
				}
			}
		}
		parts = append(parts, n+"="+v)
	}
	return strings.Join(parts, " ")
}

// validJSON reports whether b is exactly one well-formed JSON value, with
// optional surrounding whitespace. Bytes >= 0x80 are not checked.
func validJSON(b []byte) bool {
	var s scanner
	s.reset(b)
	s.skipWS()
	if _, ok := s.value(0); !ok {
		return false
	}
	s.skipWS()
	return s.i == len(b)
}
