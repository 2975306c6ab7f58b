package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// env builds an envelope from the members of a valid generic event, with
// overrides given as key, raw-JSON pairs. A raw value of "-" drops the
// member; keys not in the base are appended in order.
func env(over ...string) []byte {
	keys := []string{"event_id", "source", "type", "timestamp", "payload"}
	vals := map[string]string{
		"event_id":  `"e-1"`,
		"source":    `"shop"`,
		"type":      `"page.viewed"`,
		"timestamp": `"2026-11-26T10:00:00Z"`,
		"payload":   `{}`,
	}
	for i := 0; i+1 < len(over); i += 2 {
		if _, ok := vals[over[i]]; !ok {
			keys = append(keys, over[i])
		}
		vals[over[i]] = over[i+1]
	}
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for _, k := range keys {
		if vals[k] == "-" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", k, vals[k])
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// obj builds a JSON object from key, raw-JSON pairs, with the same "-"
// convention as env, starting from base.
func obj(base []string, over ...string) string {
	return string(env(append(append([]string{"event_id", "-", "source", "-", "type", "-", "timestamp", "-", "payload", "-"}, base...), over...)...))
}

var orderBase = []string{
	"order_id", `"o-1"`, "user_id", `"u-1"`, "product_id", `"p-1"`, "quantity", `2`, "amount", `12.5`,
}

var inventoryBase = []string{"product_id", `"p-1"`, "warehouse", `"w-1"`, "stock", `10`}

func order(over ...string) []byte {
	return env("type", `"order.created"`, "payload", obj(orderBase, over...))
}

func inventory(over ...string) []byte {
	return env("type", `"inventory.updated"`, "payload", obj(inventoryBase, over...))
}

// manyKeys is a payload object with n keys k0..k{n-1} and dup repeated
// at the end.
func manyKeys(n int, dup string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		fmt.Fprintf(&b, `"k%d":%d,`, i, i)
	}
	b.WriteString(strconv.Quote(dup) + ":0}")
	return b.String()
}

func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name     string
		msg      []byte
		maxBytes int
		reason   Reason
		detail   string // substring of Detail
	}{
		{"empty", nil, 0, ReasonEmpty, "empty"},
		{"empty non-nil", []byte{}, 0, ReasonEmpty, "empty"},
		{"oversize", env(), 20, ReasonOversize, "limit of 20"},
		{"oversize before utf8", []byte("\xff\xff\xff"), 2, ReasonOversize, ""},
		{"invalid utf8 alone", []byte("\xff"), 0, ReasonInvalidUTF8, "offset 0"},
		{"invalid utf8 in string", env("event_id", "\"a\xc3\x28\""), 0, ReasonInvalidUTF8, "offset 14"},
		{"invalid utf8 before syntax", []byte("{\xff"), 0, ReasonInvalidUTF8, ""},
		{"surrogate encoded as utf8", env("event_id", "\"\xed\xa0\x80\""), 0, ReasonInvalidUTF8, ""},

		{"whitespace only", []byte(" \n\t"), 0, ReasonNotJSON, "end of input"},
		{"unterminated object", []byte(`{`), 0, ReasonNotJSON, ""},
		{"unterminated envelope", env()[:30], 0, ReasonNotJSON, ""},
		{"trailing garbage", append(env(), 'x'), 0, ReasonNotJSON, "data after the JSON value"},
		{"two objects", append(env(), env()...), 0, ReasonNotJSON, "data after"},
		{"trailing comma", []byte(`{"a":1,}`), 0, ReasonNotJSON, "want a string key"},
		{"missing colon", []byte(`{"a" 1}`), 0, ReasonNotJSON, "want ':'"},
		{"single quotes", []byte(`{'a':1}`), 0, ReasonNotJSON, ""},
		{"unquoted key", []byte(`{a:1}`), 0, ReasonNotJSON, ""},
		{"bad literal", []byte(`nul`), 0, ReasonNotJSON, "invalid literal"},
		{"bad literal in object", env("x", `tru`), 0, ReasonNotJSON, "invalid literal"},
		{"leading zero", env("x", `01`), 0, ReasonNotJSON, "leading zero"},
		{"bare minus", env("x", `[-]`), 0, ReasonNotJSON, "invalid number"},
		{"no fraction digits", env("x", `1.`), 0, ReasonNotJSON, "decimal point"},
		{"no exponent digits", env("x", `1e+`), 0, ReasonNotJSON, "exponent"},
		{"leading plus", env("x", `+1`), 0, ReasonNotJSON, ""},
		{"leading dot", env("x", `.5`), 0, ReasonNotJSON, ""},
		{"hex number", env("x", `0x10`), 0, ReasonNotJSON, ""},
		{"NaN", env("x", `NaN`), 0, ReasonNotJSON, ""},
		{"control char in string", env("event_id", "\"a\tb\""), 0, ReasonNotJSON, "control character"},
		{"bad escape", env("event_id", `"a\qb"`), 0, ReasonNotJSON, "invalid escape"},
		{"short unicode escape", env("event_id", `"\u12"`), 0, ReasonNotJSON, `\u escape`},
		{"bad hex in escape", env("event_id", `"\u12g4"`), 0, ReasonNotJSON, `\u escape`},
		{"unterminated string", []byte(`{"event_id":"abc`), 0, ReasonNotJSON, "unterminated string"},
		{"backslash at end", []byte(`{"event_id":"abc\`), 0, ReasonNotJSON, "unterminated string"},
		{"unclosed array", env("x", `[1,2`), 0, ReasonNotJSON, ""},
		{"mismatched brackets", env("x", `[1,2}`), 0, ReasonNotJSON, "want ',' or ']'"},
		{"extra close", []byte(`{"a":1}}`), 0, ReasonNotJSON, "data after"},
		{"array trailing comma", env("x", `[1,]`), 0, ReasonNotJSON, ""},
		{"missing comma", []byte(`{"a":1 "b":2}`), 0, ReasonNotJSON, "want ',' or '}'"},
		{"byte order mark", append([]byte("\ufeff"), env()...), 0, ReasonNotJSON, ""},
		{"nul byte", append(env(), 0), 0, ReasonNotJSON, ""},
		{"too deep", env("x", nested(maxDepth)), 0, ReasonNotJSON, "nesting deeper than 64"},
		{"too deep in payload", env("payload", `{"a":`+nested(maxDepth-1)+`}`), 0, ReasonNotJSON, "nesting deeper"},
		{"too deep objects", []byte(strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1)), 0, ReasonNotJSON, "nesting deeper"},
		{"too deep top array", []byte(nested(maxDepth + 1)), 0, ReasonNotJSON, "nesting deeper"},
		// Syntax is checked on the whole message before any field.
		{"syntax error after bad field", []byte(`{"event_id":5,"x":}`), 0, ReasonNotJSON, ""},
		{"syntax error in unknown member", env("event_id", `""`, "x", `[1 2]`), 0, ReasonNotJSON, ""},

		{"array", []byte(`[]`), 0, ReasonNotObject, "message is an array, want an object"},
		{"array then garbage", []byte(`[] x`), 0, ReasonNotJSON, "data after"},
		{"array of objects", []byte(` [1,{"a":2}] `), 0, ReasonNotObject, "array"},
		{"string", []byte(`"x"`), 0, ReasonNotObject, "string"},
		{"number", []byte(`12`), 0, ReasonNotObject, "number"},
		{"true", []byte(`true`), 0, ReasonNotObject, "boolean"},
		{"null", []byte("\nnull\n"), 0, ReasonNotObject, "null"},

		{"event_id missing", env("event_id", "-"), 0, ReasonMissingEventID, "missing"},
		{"event_id empty", env("event_id", `""`), 0, ReasonMissingEventID, "empty"},
		{"event_id number", env("event_id", `5`), 0, ReasonMissingEventID, "number"},
		{"event_id null", env("event_id", `null`), 0, ReasonMissingEventID, "null"},
		{"event_id object", env("event_id", `{}`), 0, ReasonMissingEventID, "object"},
		{"empty object", []byte(`{}`), 0, ReasonMissingEventID, ""},
		{"event_id checked first", env("event_id", "-", "source", "-", "payload", "-"), 0, ReasonMissingEventID, ""},

		{"source missing", env("source", "-"), 0, ReasonBadEnvelope, "source is missing"},
		{"source empty", env("source", `""`), 0, ReasonBadEnvelope, "source is empty"},
		{"source number", env("source", `1`), 0, ReasonBadEnvelope, "source is a number"},
		{"type missing", env("type", "-"), 0, ReasonBadEnvelope, "type is missing"},
		{"type empty", env("type", `""`), 0, ReasonBadEnvelope, "type is empty"},
		{"type array", env("type", `["order.created"]`), 0, ReasonBadEnvelope, "type is an array"},
		{"metadata string", env("metadata", `"x"`), 0, ReasonBadEnvelope, "metadata is a string"},
		{"metadata array", env("metadata", `[]`), 0, ReasonBadEnvelope, "metadata is an array"},
		{"metadata false", env("metadata", `false`), 0, ReasonBadEnvelope, "boolean"},
		{"trace_id number", env("metadata", `{"trace_id":1}`), 0, ReasonBadEnvelope, "metadata.trace_id is a number"},
		{"span_id object", env("metadata", `{"trace_id":"t","span_id":{}}`), 0, ReasonBadEnvelope, "metadata.span_id is an object"},

		{"timestamp missing", env("timestamp", "-"), 0, ReasonBadTimestamp, "missing"},
		{"timestamp number", env("timestamp", `1764151200`), 0, ReasonBadTimestamp, "number"},
		{"timestamp null", env("timestamp", `null`), 0, ReasonBadTimestamp, "null"},
		{"timestamp not rfc3339", env("timestamp", `"yesterday"`), 0, ReasonBadTimestamp, `"yesterday" is not RFC 3339`},

		{"payload missing", env("payload", "-"), 0, ReasonBadPayload, "payload is missing"},
		{"payload null", env("payload", `null`), 0, ReasonBadPayload, "null"},
		{"payload array", env("payload", `[{}]`), 0, ReasonBadPayload, "array"},
		{"payload string", env("payload", `"{}"`), 0, ReasonBadPayload, "string"},
		{"envelope checked before payload", env("source", "-", "payload", "-"), 0, ReasonBadEnvelope, ""},

		{"order_id missing", order("order_id", "-"), 0, ReasonSchema, `payload/order_id: required property is missing (order.created v1)`},
		{"order_id empty", order("order_id", `""`), 0, ReasonSchema, `payload/order_id: "" is shorter than 1 characters`},
		{"order_id number", order("order_id", `17`), 0, ReasonSchema, `payload/order_id: is a number, want a string`},
		{"order_id too long", order("order_id", `"`+strings.Repeat("o", 129)+`"`), 0, ReasonSchema, `payload/order_id: is 129 characters, longer than 128`},
		{"user_id missing", order("user_id", "-"), 0, ReasonSchema, `payload/user_id: required property is missing`},
		{"user_id null", order("user_id", `null`), 0, ReasonSchema, `payload/user_id: is null, which the schema does not allow`},
		{"product_id missing", order("product_id", "-"), 0, ReasonSchema, `payload/product_id`},
		{"quantity missing", order("quantity", "-"), 0, ReasonSchema, `payload/quantity: required property is missing`},
		{"quantity string", order("quantity", `"2"`), 0, ReasonSchema, `payload/quantity: is a string, want a number`},
		{"quantity fraction", order("quantity", `1.5`), 0, ReasonSchema, `payload/quantity: 1.5 is not an integer`},
		{"quantity small exponent", order("quantity", `15e-1`), 0, ReasonSchema, "not an integer"},
		{"quantity zero", order("quantity", `0`), 0, ReasonSchema, "payload/quantity: 0 is less than the minimum 1"},
		{"quantity negative", order("quantity", `-5`), 0, ReasonSchema, "-5 is less than the minimum 1"},
		{"quantity over the maximum", order("quantity", `1000001`), 0, ReasonSchema, "1000001 is more than the maximum 1000000"},
		{"quantity too big", order("quantity", `9223372036854775808`), 0, ReasonOutOfRange, "payload/quantity: 9223372036854775808 is out of range for a 64-bit integer"},
		{"quantity too small", order("quantity", `-9223372036854775809`), 0, ReasonOutOfRange, "out of range for a 64-bit integer"},
		{"quantity 1e19", order("quantity", `1e19`), 0, ReasonOutOfRange, "out of range"},
		{"quantity huge exponent", order("quantity", `1e999999999999999999999`), 0, ReasonOutOfRange, "out of range"},
		{"quantity many digits", order("quantity", `123456789012345678901234567890`), 0, ReasonOutOfRange, "out of range"},
		{"amount missing", order("amount", "-"), 0, ReasonSchema, `payload/amount: required property is missing`},
		{"amount bool", order("amount", `true`), 0, ReasonSchema, `payload/amount: is a boolean, want a string or a number`},
		{"amount 3 decimals", order("amount", `12.345`), 0, ReasonSchema, `payload/amount: 12.345 has more than 2 decimal places (order.created v1)`},
		{"amount 1e-3", order("amount", `1e-3`), 0, ReasonSchema, "1e-3 has more than 2 decimal places"},
		{"amount string 3 decimals", order("amount", `"0.001"`), 0, ReasonSchema, "more than 2 decimal places"},
		{"amount tiny", order("amount", `1e-999999999999`), 0, ReasonSchema, "more than 2 decimal places"},
		{"amount negative", order("amount", `-0.01`), 0, ReasonSchema, "-0.01 is less than the minimum 0"},
		{"amount over the maximum", order("amount", `100000000.01`), 0, ReasonSchema, "100000000.01 is more than the maximum 100000000"},
		{"amount that overflowed sums", order("amount", `9999999999999999.99`), 0, ReasonSchema, "is more than the maximum"},
		{"amount 10^16", order("amount", `10000000000000000`), 0, ReasonOutOfRange, "out of range for decimal(18,2)"},
		{"amount 1e16", order("amount", `1e16`), 0, ReasonOutOfRange, "out of range"},
		{"amount huge", order("amount", `1e400`), 0, ReasonOutOfRange, "out of range"},
		{"amount huge negative", order("amount", `-99999999999999999999.99`), 0, ReasonOutOfRange, "out of range"},
		{"amount many digits", order("amount", `1.00000000000000000000001`), 0, ReasonSchema, "decimal places"},
		{"amount not a number", order("amount", `"abc"`), 0, ReasonSchema, `"abc" is not a decimal number`},
		{"amount empty string", order("amount", `""`), 0, ReasonSchema, "not a decimal number"},
		{"amount leading space", order("amount", `" 12"`), 0, ReasonSchema, "not a decimal number"},
		{"amount plus", order("amount", `"+12"`), 0, ReasonSchema, "not a decimal number"},
		{"amount comma", order("amount", `"12,50"`), 0, ReasonSchema, "not a decimal number"},
		{"amount long string truncated", order("amount", `"`+strings.Repeat("9", 100)+`"`), 0, ReasonOutOfRange, "999..."},
		{"fields checked in order", order("order_id", "-", "amount", "-"), 0, ReasonSchema, `payload/order_id`},
		{"field nested deeper does not count", order("order_id", "-", "x", `{"order_id":"o"}`), 0, ReasonSchema, `payload/order_id: required property is missing`},
		{"inventory product_id missing", inventory("product_id", "-"), 0, ReasonSchema, `payload/product_id: required property is missing (inventory.updated v1)`},
		{"inventory product_id empty", inventory("product_id", `""`), 0, ReasonSchema, `payload/product_id: "" is shorter`},
		{"inventory warehouse number", inventory("warehouse", `3`), 0, ReasonSchema, `payload/warehouse: is a number, want a string or null`},
		{"inventory stock missing", inventory("stock", "-"), 0, ReasonSchema, `payload/stock: required property is missing`},
		{"inventory stock string", inventory("stock", `"10"`), 0, ReasonSchema, `payload/stock: is a string, want a number`},
		{"inventory stock fraction", inventory("stock", `10.5`), 0, ReasonSchema, `payload/stock: 10.5 is not an integer`},
		{"inventory negative stock", inventory("stock", `-1`), 0, ReasonSchema, `payload/stock: -1 is less than the minimum 0`},
		{"inventory delta fraction", inventory("delta", `0.5`), 0, ReasonSchema, `payload/delta: 0.5 is not an integer`},
		{"inventory delta string", inventory("delta", `"-1"`), 0, ReasonSchema, `payload/delta: is a string, want a number or null`},

		// The envelope contract beyond JSON.
		{"duplicate top-level key", []byte(`{"event_id":"a","source":"s","type":"t","timestamp":"2026-11-26T10:00:00Z","payload":{},"event_id":"b"}`), 0, ReasonDuplicateKey, `key "event_id" occurs twice`},
		{"duplicate payload key", env("type", `"order.created"`, "payload", `{"order_id":"o","user_id":"u","product_id":"p","quantity":1,"amount":999999.00,"amount":1.00}`), 0, ReasonDuplicateKey, `key "amount" occurs twice`},
		{"duplicate key deep inside", env("payload", `{"x":[{"y":{"k":1,"z":2,"k":3}}]}`), 0, ReasonDuplicateKey, `key "k"`},
		{"duplicate key once escaped", env("payload", `{"ab":1,"a\u0062":2}`), 0, ReasonDuplicateKey, `key "ab"`},
		{"duplicate top-level key once escaped", []byte(`{"event_id":"a","source":"s","type":"t","timestamp":"2026-11-26T10:00:00Z","payload":{},"event\u005fid":"b"}`), 0, ReasonDuplicateKey, `key "event_id" occurs twice`},
		{"duplicate unknown top-level key", []byte(`{"x":1,"event_id":"a","source":"s","type":"t","timestamp":"2026-11-26T10:00:00Z","payload":{},"x":2}`), 0, ReasonDuplicateKey, `key "x" occurs twice`},
		{"duplicate payload key out of order", env("type", `"order.created"`, "payload", `{"amount":1.00,"order_id":"o","user_id":"u","product_id":"p","quantity":1,"amount":2.00}`), 0, ReasonDuplicateKey, `key "amount" occurs twice`},
		{"duplicate payload key once escaped", env("type", `"order.created"`, "payload", `{"order_id":"o","user_id":"u","product_id":"p","quantity":1,"amount":1.00,"order\u005fid":"q"}`), 0, ReasonDuplicateKey, `key "order_id" occurs twice`},
		{"duplicate unknown payload key", env("type", `"order.created"`, "payload", `{"note":"a","order_id":"o","user_id":"u","product_id":"p","quantity":1,"amount":1.00,"note":"b"}`), 0, ReasonDuplicateKey, `key "note" occurs twice`},
		{"duplicate metadata key", env("metadata", `{"trace_id":"a","trace_id":"b"}`), 0, ReasonDuplicateKey, `"trace_id"`},
		{"duplicate among many keys", env("payload", manyKeys(200, "k7")), 0, ReasonDuplicateKey, `"k7"`},
		{"duplicate syntax error first", []byte(`{"a":1,"a":2,}`), 0, ReasonNotJSON, ""},
		{"lone high surrogate", env("event_id", `"a\ud800"`), 0, ReasonLoneSurrogate, "half of a UTF-16 surrogate pair"},
		{"lone low surrogate", env("payload", `{"n":"\udc00x"}`), 0, ReasonLoneSurrogate, ""},
		{"high surrogate then a letter", env("payload", `{"n":"\ud83d\u0041"}`), 0, ReasonLoneSurrogate, ""},
		{"reversed pair", env("payload", `{"n":"\ude00\ud83d"}`), 0, ReasonLoneSurrogate, ""},
		{"surrogate in a key", env("payload", `{"\ud800":1}`), 0, ReasonLoneSurrogate, ""},
		{"nul escape in payload", env("payload", `{"n":"a\u0000b"}`), 0, ReasonNULCharacter, `\u0000`},
		{"nul escape in event_id", env("event_id", `"e\u0000"`), 0, ReasonNULCharacter, ""},
		{"newline in event_id", env("event_id", `"e\n1"`), 0, ReasonBadIdentifier, "event_id holds a control character"},
		{"tab in source", env("source", `"s\t"`), 0, ReasonBadIdentifier, "source holds"},
		{"delete char in type", env("type", `"t\u007f"`), 0, ReasonBadIdentifier, "type holds"},
		{"raw delete char in type", env("type", "\"t\x7f\""), 0, ReasonBadIdentifier, "type holds a control character (byte 127 at offset 1)"},
		{"raw delete char in event_id", env("event_id", "\"e\x7fe\""), 0, ReasonBadIdentifier, "event_id holds"},
		{"raw delete char in trace_id", env("metadata", "{\"trace_id\":\"\x7f\"}"), 0, ReasonBadIdentifier, "metadata.trace_id holds"},
		{"control char in trace_id", env("metadata", `{"trace_id":"\u0001"}`), 0, ReasonBadIdentifier, "metadata.trace_id"},
		{"event_id too long", env("event_id", `"`+strings.Repeat("x", 257)+`"`), 0, ReasonIDTooLong, "event_id is 257 bytes, more than the limit of 256"},
		{"700 KB event_id", env("event_id", `"`+strings.Repeat("x", 700<<10)+`"`), 0, ReasonIDTooLong, "event_id"},
		{"type too long", env("type", `"`+strings.Repeat("t", 300)+`"`), 0, ReasonIDTooLong, "type is 300 bytes"},
		{"event time in year 9999", env("timestamp", `"9999-12-31T23:59:59Z"`), 0, ReasonFutureTime, "more than 1h0m0s after the record's Kafka timestamp"},
		{"event time in year 2100", env("timestamp", `"2100-01-01T00:00:00Z"`), 0, ReasonFutureTime, ""},
		{"event time just past max_future", env("timestamp", `"2026-11-26T13:00:00.000001Z"`), 0, ReasonFutureTime, ""},
		{"event time before 1970", env("timestamp", `"1969-12-31T23:59:59Z"`), 0, ReasonTooOld, "before the earliest accepted event time 1970-01-01T00:00:00Z"},
		{"type case mismatch", env("type", `"ORDER.CREATED"`, "payload", obj(orderBase)), 0, ReasonUnknownType, `did you mean "order.created"`},
		{"unregistered version pinned", env("type", `"order.created"`, "payload", obj(orderBase), "metadata", `{"schema_version":7}`), 0, ReasonUnknownVersion, "schema_version 7 of order.created is not registered"},
		{"bad schema_version", env("metadata", `{"schema_version":"2"}`), 0, ReasonBadEnvelope, "schema_version is a string"},
		{"zero schema_version", env("metadata", `{"schema_version":0}`), 0, ReasonBadEnvelope, "not a version number"},
		{"framed value too short", []byte{0, 0, 1}, 0, ReasonBadFraming, "magic byte 0"},
		{"framed with an unknown schema id", append([]byte{0, 0, 0, 3, 0xe7}, env()...), 0, ReasonUnknownID, "schema id 999"},
		{"framed with another type's schema", append([]byte{0, 0, 0, 0, 1}, order()...), 0, ReasonSchemaMismatch, `framed with schema id 1 (inventory.updated v1) but its type is "order.created"`},
		{"framed against its pin", append([]byte{0, 0, 0, 0, 2}, env("type", `"order.created"`, "payload", obj(orderBase), "metadata", `{"schema_version":2}`)...), 0, ReasonSchemaMismatch, "contradicts"},
	}
	seen := map[Reason]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testDecoder(tt.maxBytes)
			var ev Event
			err := d.Decode(tt.msg, testRecordTs, &ev)
			if err == nil {
				t.Fatalf("Decode(%q) accepted, want %s", tt.msg, tt.reason)
			}
			if err.Reason != tt.reason || !strings.Contains(err.Detail, tt.detail) {
				t.Fatalf("Decode(%q) = %v, want %s with detail containing %q", tt.msg, err, tt.reason, tt.detail)
			}
			if err.Error() != string(err.Reason)+": "+err.Detail {
				t.Errorf("Error() = %q", err.Error())
			}
			seen[err.Reason] = true
		})
	}
	for _, r := range Reasons {
		if !seen[r] && r != ReasonSchemaConflict && r != ReasonBadFraming {
			t.Errorf("no test rejects with %s", r)
		}
	}
}

// evWant is the expected view of a decoded Event, as strings.
type evWant struct {
	eventID, source, typ string
	ts                   string // RFC 3339, compared as an instant
	payload, metadata    string
	traceID, spanID      *string
}

func ptr(s string) *string { return &s }

func checkEvent(t *testing.T, ev *Event, w evWant) {
	t.Helper()
	if w.ts == "" {
		w.ts = "2026-11-26T10:00:00Z"
	}
	ts, err := time.Parse(time.RFC3339Nano, w.ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want string
	}{
		{"EventID", string(ev.EventID), w.eventID},
		{"Source", string(ev.Source), w.source},
		{"Type", string(ev.Type), w.typ},
		{"Payload", string(ev.Payload), w.payload},
		{"Metadata", string(ev.Metadata), w.metadata},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if ev.TsMicros != ts.UnixMicro() {
		t.Errorf("TsMicros = %d, want %d", ev.TsMicros, ts.UnixMicro())
	}
	if (w.metadata == "") != (ev.Metadata == nil) {
		t.Errorf("Metadata = %#v, want nil iff absent", ev.Metadata)
	}
	for _, c := range []struct {
		name string
		got  []byte
		want *string
	}{{"TraceID", ev.TraceID, w.traceID}, {"SpanID", ev.SpanID, w.spanID}} {
		switch {
		case c.want == nil && c.got != nil:
			t.Errorf("%s = %q, want nil", c.name, c.got)
		case c.want != nil && (c.got == nil || string(c.got) != *c.want):
			t.Errorf("%s = %q, want %q", c.name, c.got, *c.want)
		}
	}
}

func TestDecodeEnvelope(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want evWant
	}{
		{
			name: "minimal",
			msg:  string(env()),
			want: evWant{eventID: "e-1", source: "shop", typ: "page.viewed", payload: "{}"},
		},
		{
			name: "any key order, whitespace everywhere",
			msg: " \r\n\t{ \"payload\" :\t{ \"a\" : [ 1 , 2 ] } ,\n \"timestamp\":\"2026-11-26T10:00:00Z\" , " +
				"\"type\" : \"t\" , \"source\":\"s\",\"event_id\"\n:\n\"x\"\n}\n\t ",
			want: evWant{eventID: "x", source: "s", typ: "t", payload: `{ "a" : [ 1 , 2 ] }`},
		},
		{
			name: "escapes in strings",
			msg:  string(env("event_id", `"q\"b\\s\/!"`, "source", `"caf\u00e9 \u65E5\u672c"`)),
			want: evWant{eventID: "q\"b\\s/!", source: "café 日本", typ: "page.viewed", payload: "{}"},
		},
		{
			name: "surrogate pair",
			msg:  string(env("event_id", `"\ud83d\ude00 ok"`)),
			want: evWant{eventID: "😀 ok", source: "shop", typ: "page.viewed", payload: "{}"},
		},
		{
			name: "raw unicode",
			msg:  string(env("event_id", `"événement-😀"`, "source", `"日本"`)),
			want: evWant{eventID: "événement-😀", source: "日本", typ: "page.viewed", payload: "{}"},
		},
		{
			name: "escaped keys match",
			msg:  `{"event\u005fid":"e","\u0073ource":"s","type":"t","timestamp":"2026-11-26T10:00:00Z","p\u0061yload":{}}`,
			want: evWant{eventID: "e", source: "s", typ: "t", payload: "{}"},
		},
		{
			name: "escaped timestamp",
			msg:  string(env("timestamp", `"2026-11-26T10:00:00\u005a"`)),
			want: evWant{eventID: "e-1", source: "shop", typ: "page.viewed", payload: "{}"},
		},
		{
			name: "unknown members ignored",
			msg: string(env("schema_version", `3`, "tags", `["a",{"b":[null,true,false,-1.5e3]}]`, "extra", `{"event_id":"nested"}`,
				"nothing", `null`)),
			want: evWant{eventID: "e-1", source: "shop", typ: "page.viewed", payload: "{}"},
		},
		{
			name: "nested payload kept verbatim",
			msg:  string(env("payload", `{"items":[{"sku":"a","qty":1},{"sku":"b\n","qty":2}],"note":"x\"y","n":{"m":{"o":[]}}}`)),
			want: evWant{eventID: "e-1", source: "shop", typ: "page.viewed",
				payload: `{"items":[{"sku":"a","qty":1},{"sku":"b\n","qty":2}],"note":"x\"y","n":{"m":{"o":[]}}}`},
		},
		{
			name: "metadata with trace context",
			msg:  string(env("metadata", `{"trace_id":"4bf92f3577b34da6","span_id":"00f067aa","baggage":{"k":"v"}}`)),
			want: evWant{eventID: "e-1", source: "shop", typ: "page.viewed", payload: "{}",
				metadata: `{"trace_id":"4bf92f3577b34da6","span_id":"00f067aa","baggage":{"k":"v"}}`,
				traceID:  ptr("4bf92f3577b34da6"), spanID: ptr("00f067aa")},
		},
		{
			name: "metadata empty object",
			msg:  string(env("metadata", `{}`)),
			want: evWant{eventID: "e-1", source: "shop", typ: "page.viewed", payload: "{}", metadata: "{}"},
		},
		{
			name: "metadata null",
			msg:  string(env("metadata", `null`)),
			want: evWant{eventID: "e-1", source: "shop", typ: "page.viewed", payload: "{}"},
		},
		{
			name: "trace ids null or empty",
			msg:  string(env("metadata", `{"trace_id":null,"span_id":""}`)),
			want: evWant{eventID: "e-1", source: "shop", typ: "page.viewed", payload: "{}",
				metadata: `{"trace_id":null,"span_id":""}`, spanID: ptr("")},
		},
		{
			name: "escaped trace id",
			msg:  string(env("metadata", `{"trace_id":"a\u0062c","span_id":"d\"e"}`)),
			want: evWant{eventID: "e-1", source: "shop", typ: "page.viewed", payload: "{}",
				metadata: `{"trace_id":"a\u0062c","span_id":"d\"e"}`, traceID: ptr("abc"), spanID: ptr(`d"e`)},
		},
		{
			name: "deepest nesting allowed",
			msg:  string(env("x", nested(maxDepth-1))),
			want: evWant{eventID: "e-1", source: "shop", typ: "page.viewed", payload: "{}"},
		},
		{
			name: "untyped event with order-like payload",
			msg:  string(env("type", `"order.cancelled"`, "payload", `{"amount":1.2345}`)),
			want: evWant{eventID: "e-1", source: "shop", typ: "order.cancelled", payload: `{"amount":1.2345}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testDecoder(0)
			var ev Event
			if err := d.Decode([]byte(tt.msg), testRecordTs, &ev); err != nil {
				t.Fatalf("Decode(%q): %v", tt.msg, err)
			}
			checkEvent(t, &ev, tt.want)
			if ev.Version != nil {
				t.Errorf("Version = %v, want none (an unregistered type)", ev.Version)
			}
		})
	}
}

func TestDecodeOrder(t *testing.T) {
	names := []string{"order_id", "user_id", "product_id", "quantity", "amount"}
	tests := []struct {
		name string
		msg  []byte
		want string
	}{
		{"basic", order(), `order_id="o-1" user_id="u-1" product_id="p-1" quantity=2 amount=12.50`},
		{"escaped ids", order("order_id", `"o\u002d9"`, "user_id", `"\u00fc"`, "product_id", `"p\\1"`),
			`order_id="o-9" user_id="ü" product_id="p\\1" quantity=2 amount=12.50`},
		{"keys in any order, extra keys", env("type", `"order.created"`, "payload",
			`{"amount":"1.00","currency":"EUR","lines":[{"amount":1.234}],"quantity":7,"product_id":"p","user_id":"u","order_id":"o"}`),
			`order_id="o" user_id="u" product_id="p" quantity=7 amount=1.00`},
		{"quantity 5.0", order("quantity", `5.0`), `order_id="o-1" user_id="u-1" product_id="p-1" quantity=5 amount=12.50`},
		{"quantity 5e0", order("quantity", `5e0`), `order_id="o-1" user_id="u-1" product_id="p-1" quantity=5 amount=12.50`},
		{"quantity 50e-1", order("quantity", `50e-1`), `order_id="o-1" user_id="u-1" product_id="p-1" quantity=5 amount=12.50`},
		{"quantity 1E+2", order("quantity", `1E+2`), `order_id="o-1" user_id="u-1" product_id="p-1" quantity=100 amount=12.50`},
		{"quantity at the maximum", order("quantity", `1000000`), `order_id="o-1" user_id="u-1" product_id="p-1" quantity=1000000 amount=12.50`},
		{"amount zero", order("amount", `0`), `order_id="o-1" user_id="u-1" product_id="p-1" quantity=2 amount=0.00`},
		{"amount at the maximum", order("amount", `"100000000.00"`), `order_id="o-1" user_id="u-1" product_id="p-1" quantity=2 amount=100000000.00`},
		{"pinned version", env("type", `"order.created"`, "payload", obj(orderBase), "metadata", `{"schema_version":1}`),
			`order_id="o-1" user_id="u-1" product_id="p-1" quantity=2 amount=12.50`},
		{"framed with its schema id", append([]byte{0, 0, 0, 0, 2}, order()...),
			`order_id="o-1" user_id="u-1" product_id="p-1" quantity=2 amount=12.50`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testDecoder(0)
			var ev Event
			if err := d.Decode(tt.msg, testRecordTs, &ev); err != nil {
				t.Fatalf("Decode(%s): %v", tt.msg, err)
			}
			if ev.Version == nil || ev.Version.Subject != "order.created" || ev.Version.Version != 1 {
				t.Fatalf("Version = %v, want order.created v1", ev.Version)
			}
			if got := cols(&ev, names...); got != tt.want {
				t.Errorf("columns = %s\nwant      %s", got, tt.want)
			}
		})
	}
}

func TestDecodeAmount(t *testing.T) {
	tests := []struct {
		amount string // raw JSON
		want   string
	}{
		{`12`, "12.00"}, {`12.5`, "12.50"}, {`12.50`, "12.50"}, {`"12.34"`, "12.34"}, {`"12.50"`, "12.50"},
		{`"12"`, "12.00"}, {`-0.01`, "-0.01"}, {`"-0.01"`, "-0.01"}, {`1e2`, "100.00"}, {`1E2`, "100.00"},
		{`1e1`, "10.00"}, {`"1e1"`, "10.00"}, {`1.2e1`, "12.00"}, {`1234e-2`, "12.34"}, {`0.5e-1`, "0.05"},
		{`1.000`, "1.00"}, {`1.2300000`, "1.23"}, {`0`, "0.00"}, {`-0`, "0.00"}, {`0.00`, "0.00"},
		{`0.000e5`, "0.00"}, {`0e-999`, "0.00"}, {`100`, "100.00"}, {`100.05`, "100.05"}, {`0.10`, "0.10"},
		{`"\u0031\u0032.5"`, "12.50"},
		{`9999999999999999.99`, "9999999999999999.99"},
		{`-9999999999999999.99`, "-9999999999999999.99"},
		{`999999999999999999e-2`, "9999999999999999.99"},
		{`1000000000000000`, "1000000000000000.00"},
		{`0.0000000000000000000000000000000000000001e38`, "0.01"},
	}
	for _, tt := range tests {
		t.Run(tt.amount, func(t *testing.T) {
			d := testDecoder(0)
			var ev Event
			msg := env("type", `"money.test"`, "payload", `{"amount":`+tt.amount+`}`)
			if err := d.Decode(msg, testRecordTs, &ev); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := cols(&ev, "amount"); got != "amount="+tt.want {
				t.Errorf("%s, want amount=%s", got, tt.want)
			}
		})
	}
}

func TestDecodeInventory(t *testing.T) {
	names := []string{"product_id", "warehouse", "stock", "delta"}
	tests := []struct {
		name string
		msg  []byte
		want string
	}{
		{"basic", inventory(), `product_id="p-1" warehouse="w-1" stock=10 delta=<null>`},
		{"with delta", inventory("delta", `-3`), `product_id="p-1" warehouse="w-1" stock=10 delta=-3`},
		{"zero delta", inventory("delta", `0`), `product_id="p-1" warehouse="w-1" stock=10 delta=0`},
		{"null delta", inventory("delta", `null`), `product_id="p-1" warehouse="w-1" stock=10 delta=<null>`},
		{"no warehouse", inventory("warehouse", "-"), `product_id="p-1" warehouse=<null> stock=10 delta=<null>`},
		{"null warehouse", inventory("warehouse", `null`), `product_id="p-1" warehouse=<null> stock=10 delta=<null>`},
		{"escaped warehouse", inventory("warehouse", `"m\u00fcnchen"`), `product_id="p-1" warehouse="münchen" stock=10 delta=<null>`},
		{"stock 1e3", inventory("stock", `1e3`), `product_id="p-1" warehouse="w-1" stock=1000 delta=<null>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testDecoder(0)
			var ev Event
			if err := d.Decode(tt.msg, testRecordTs, &ev); err != nil {
				t.Fatalf("Decode(%s): %v", tt.msg, err)
			}
			if got := cols(&ev, names...); got != tt.want {
				t.Errorf("columns = %s\nwant      %s", got, tt.want)
			}
		})
	}
}

func TestDecodeTimestamp(t *testing.T) {
	accept := []string{
		"2026-11-26T10:00:00Z",
		"2026-11-26T10:00:00.1Z",
		"2026-11-26T10:00:00.12Z",
		"2026-11-26T10:00:00.123Z",
		"2026-11-26T10:00:00.1234Z",
		"2026-11-26T10:00:00.12345Z",
		"2026-11-26T10:00:00.123456Z",
		"2026-11-26T10:00:00.1234567Z",
		"2026-11-26T10:00:00.12345678Z",
		"2026-11-26T10:00:00.123456789Z",
		"2026-11-26T10:00:00.999999999Z",
		"2026-11-26T10:00:00.000000001Z",
		"2026-11-26T10:00:00+05:30",
		"2026-11-26T10:00:00.5-08:00",
		"2026-11-26T10:00:00-00:00",
		"2026-11-26T10:00:00+00:00",
		"2026-11-26T23:59:59+23:59",
		"2026-11-26T00:00:00-23:59",
		"2024-02-29T12:00:00Z",
		"2000-02-29T12:00:00Z",
		"1970-01-01T00:00:00Z",
		"1969-12-31T23:59:59.9999999Z",
		"1969-12-31T23:59:59.0000001Z",
		"1900-01-01T00:00:00Z",
		"0001-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999Z",

		"2026-01-31T00:00:00Z",
		"2026-04-30T00:00:00Z",
		"2026-12-31T00:00:00Z",
	}
	for _, ts := range accept {
		t.Run(ts, func(t *testing.T) {
			want, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				t.Fatalf("time.Parse: %v", err)
			}
			d := permissiveDecoder()
			var ev Event
			if err := d.Decode(env("timestamp", strconv.Quote(ts)), permissiveRecordTs, &ev); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if ev.TsMicros != want.UnixMicro() {
				t.Errorf("TsMicros = %d, want %d (%v)", ev.TsMicros, want.UnixMicro(), time.UnixMicro(ev.TsMicros).UTC())
			}
		})
	}

	reject := []string{
		"",
		"2026-11-26",
		"2026-11-26T10:00:00",
		"2026-11-26T10:00Z",
		"2026-11-26 10:00:00Z",
		"2026-11-26t10:00:00Z",
		"2026-11-26T10:00:00z",
		"2026-11-26T10:00:00.Z",
		"2026-11-26T10:00:00.1234567891Z", // 10 fraction digits
		"2026-11-26T10:00:00,5Z",
		"2026-11-26T10:00:00+24:00",
		"2026-11-26T10:00:00+23:60",
		"2026-11-26T10:00:00+0100",
		"2026-11-26T10:00:00+01",
		"2026-11-26T10:00:00+01:00:00",
		"2026-11-26T10:00:00 Z",
		" 2026-11-26T10:00:00Z",
		"2026-11-26T10:00:00Z ",
		"2026-11-26T10:00:00ZZ",
		"2026-11-26T1:00:00Z",
		"2026-11-26T24:00:00Z",
		"2026-11-26T10:60:00Z",
		"2026-11-26T23:59:60Z",
		"2026-02-29T00:00:00Z",
		"1900-02-29T00:00:00Z",
		"2026-04-31T00:00:00Z",
		"2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z",
		"2026-01-00T00:00:00Z",
		"2026-01-32T00:00:00Z",
		"0000-01-01T00:00:00Z",
		"20x6-11-26T10:00:00Z",
		"2-026-11-26T10:00:00Z",
		"12026-11-26T10:00:00Z",
		"-2026-11-26T10:00:00Z",
		"+2026-11-26T10:00:00Z",
		"2026-11-26T10:00:00.12a4Z",
		"2026-11-26T10:00:00+1a:00",
		"2026/11/26T10:00:00Z",
		"1764151200",
		"2026-11-26T10:00:00.123456789\u00e9",
	}
	for _, ts := range reject {
		t.Run("reject "+ts, func(t *testing.T) {
			d := permissiveDecoder()
			var ev Event
			err := d.Decode(env("timestamp", strconv.Quote(ts)), permissiveRecordTs, &ev)
			if err == nil || err.Reason != ReasonBadTimestamp {
				t.Fatalf("Decode = %v, want %s", err, ReasonBadTimestamp)
			}
		})
	}
}

// TestDecodeResets checks that nothing of one event leaks into the next.
func TestDecodeResets(t *testing.T) {
	d := testDecoder(0)
	var ev Event
	msgs := [][]byte{
		order("order_id", `"o\u0031"`),
		inventory("delta", `4`),
		env("metadata", `{"trace_id":"t"}`),
		env(),
		env("type", `"order.created"`, "payload", `{}`), // rejected: fields
		env(),
	}
	for i, msg := range msgs {
		err := d.Decode(msg, testRecordTs, &ev)
		switch i {
		case 0:
			if err != nil || cols(&ev, "order_id") != `order_id="o1"` {
				t.Fatalf("order: %v %s", err, cols(&ev, "order_id"))
			}
		case 1:
			if err != nil || ev.Version.Subject != "inventory.updated" || cols(&ev, "delta", "order_id") != `delta=4 order_id=<null>` {
				t.Fatalf("inventory: %v %s", err, cols(&ev, "delta", "order_id"))
			}
		case 2:
			if err != nil || ev.Version != nil || string(ev.TraceID) != "t" {
				t.Fatalf("generic: %v %+v", err, ev)
			}
		case 3:
			if err != nil || ev.Metadata != nil || ev.TraceID != nil {
				t.Fatalf("no metadata: %v %+v", err, ev)
			}
		case 4:
			if err == nil || string(ev.EventID) != "e-1" {
				t.Fatalf("rejected order: %v %+v, want rejection with EventID kept", err, ev)
			}
		case 5:
			want := Event{}
			d2 := testDecoder(0)
			if err := d2.Decode(msg, testRecordTs, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ev, want) || ev.Version != nil {
				t.Fatalf("after rejection: %+v, want %+v", ev, want)
			}
		}
	}
}

// TestDecodeGenerationWraps: values are outdated by a generation count
// rather than cleared; when the count wraps, the values of the event
// before must still not show through.
func TestDecodeGenerationWraps(t *testing.T) {
	d := testDecoder(0)
	var ev Event
	if err := d.Decode(inventory("delta", `4`), testRecordTs, &ev); err != nil || cols(&ev, "delta") != "delta=4" {
		t.Fatalf("first: %v %s", err, cols(&ev, "delta"))
	}
	d.gen = ^uint32(0) // the next Decode wraps to the first event's generation
	if err := d.Decode(inventory("delta", `null`), testRecordTs, &ev); err != nil || cols(&ev, "delta") != "delta=<null>" {
		t.Fatalf("after the wrap: %v %s, want delta null", err, cols(&ev, "delta"))
	}
}

// TestDecodeScratch checks that several escaped strings of one event do not
// overwrite each other, also when the scratch buffer has to grow.
func TestDecodeScratch(t *testing.T) {
	long := strings.Repeat(`\u00e9`, 100)
	d := testDecoder(0)
	var ev Event
	msg := order("order_id", `"a\nb"`, "user_id", `"`+long+`"`, "product_id", `"c\td"`)
	msg = bytes.Replace(msg, []byte(`"e-1"`), []byte(`"\u0065-1"`), 1)
	for range 3 {
		if err := d.Decode(msg, testRecordTs, &ev); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("order_id=%q user_id=%q product_id=%q", "a\nb", strings.Repeat("é", 100), "c\td")
		if string(ev.EventID) != "e-1" || cols(&ev, "order_id", "user_id", "product_id") != want {
			t.Fatalf("got %q %s", ev.EventID, cols(&ev, "order_id", "user_id", "product_id"))
		}
		// Slices are capped, so appending to one cannot clobber another.
		if cap(ev.EventID) != len(ev.EventID) || cap(ev.Source) != len(ev.Source) || cap(ev.Payload) != len(ev.Payload) {
			t.Fatalf("slices not capped")
		}
	}
}

// TestDecodeAllocs guards the zero-allocation promise on the common path.
func TestDecodeAllocs(t *testing.T) {
	msgs := [][]byte{benchEnvelope(), inventory("delta", `1`), order("order_id", `"\u00e9\n"`)}
	for _, msg := range msgs {
		d := testDecoder(0)
		var ev Event
		allocs := testing.AllocsPerRun(100, func() {
			if err := d.Decode(msg, testRecordTs, &ev); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Decode(%s) allocates %v times per call, want 0", msg, allocs)
		}
	}
}

// TestRoundTrip encodes random envelopes with AppendJSON and decodes them.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Identifiers hold no control characters (the contract refuses them);
	// payload strings may, but no NUL.
	idAlphabet := []rune("abcXYZ019-_.:/ \"\\é日😀\u2028\ufffd")
	strAlphabet := append([]rune("\n\t\r\x01\x1f\x7f"), idAlphabet...)
	randFrom := func(alphabet []rune, minLen int) string {
		n := minLen + rng.IntN(12)
		r := make([]rune, n)
		for i := range r {
			r[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(r)
	}
	randID := func(minLen int) string { return randFrom(idAlphabet, minLen) }
	randStr := func(minLen int) string { return randFrom(strAlphabet, minLen) }
	d := permissiveDecoder()
	var ev Event
	var buf []byte
	for i := range 2000 {
		e := Envelope{
			EventID:   randID(1),
			Source:    randID(1),
			Timestamp: time.Unix(rng.Int64N(253402300799-(-62135596800))-62135596800, rng.Int64N(1e9)),
		}
		if rng.IntN(4) == 0 {
			e.Timestamp = e.Timestamp.In(time.FixedZone("", (rng.IntN(48)-24)*1800))
		}
		var want string
		var names []string
		switch rng.IntN(3) {
		case 0:
			e.Type = "order.created"
			names = []string{"order_id", "user_id", "product_id", "quantity", "amount"}
			oid, uid, pid := randStr(1), randStr(1), randStr(1)
			qty, cents := 1+rng.Int64N(1_000_000), rng.Int64N(10_000_000_001)
			p := []byte(`{"order_id":`)
			p = AppendString(p, oid)
			p = append(p, `,"user_id":`...)
			p = AppendString(p, uid)
			p = append(p, `,"product_id":`...)
			p = AppendString(p, pid)
			p = append(p, `,"quantity":`...)
			p = strconv.AppendInt(p, qty, 10)
			p = append(p, `,"amount":`...)
			amount := string(AppendDecimal2(nil, cents))
			if rng.IntN(2) == 0 {
				p = append(p, amount...)
			} else {
				p = append(p, '"')
				p = append(p, amount...)
				p = append(p, '"')
			}
			e.Payload = append(p, '}')
			want = fmt.Sprintf("order_id=%q user_id=%q product_id=%q quantity=%d amount=%s", oid, uid, pid, qty, amount)
		case 1:
			e.Type = "inventory.updated"
			names = []string{"product_id", "warehouse", "stock", "delta"}
			pid, stock := randStr(1), rng.Int64N(1e6)
			wh, delta := "<null>", "<null>"
			p := []byte(`{"product_id":`)
			p = AppendString(p, pid)
			if rng.IntN(2) == 0 {
				w := randStr(1)
				wh = strconv.Quote(w)
				p = append(p, `,"warehouse":`...)
				p = AppendString(p, w)
			}
			p = append(p, `,"stock":`...)
			p = strconv.AppendInt(p, stock, 10)
			if rng.IntN(2) == 0 {
				dl := rng.Int64N(200) - 100
				delta = strconv.FormatInt(dl, 10)
				p = append(p, `,"delta":`...)
				p = strconv.AppendInt(p, dl, 10)
			}
			e.Payload = append(p, '}')
			want = fmt.Sprintf("product_id=%q warehouse=%s stock=%d delta=%s", pid, wh, stock, delta)
		default:
			e.Type = randID(1)
			if rng.IntN(2) == 0 {
				e.Payload = append(AppendString([]byte(`{"k":`), randStr(0)), `,"a":[1,2.5,null,{"b":false}]}`...)
			}
		}
		if rng.IntN(3) > 0 {
			e.Metadata.TraceID = randID(0)
			e.Metadata.SpanID = randID(0)
		}

		buf = e.AppendJSON(buf[:0])
		if err := d.Decode(buf, permissiveRecordTs, &ev); err != nil {
			t.Fatalf("#%d: Decode(%s): %v", i, buf, err)
		}
		wantPayload := string(e.Payload)
		if wantPayload == "" {
			wantPayload = "{}"
		}
		wantTs := e.Timestamp.UTC().Truncate(time.Microsecond) // AppendJSON writes microseconds
		if string(ev.EventID) != e.EventID || string(ev.Source) != e.Source || string(ev.Type) != e.Type ||
			ev.TsMicros != wantTs.UnixMicro() || string(ev.Payload) != wantPayload {
			t.Fatalf("#%d: Decode(%s) = %+v", i, buf, ev)
		}
		if (e.Metadata != Metadata{}) {
			if string(ev.TraceID) != e.Metadata.TraceID || string(ev.SpanID) != e.Metadata.SpanID || ev.TraceID == nil || ev.SpanID == nil {
				t.Fatalf("#%d: trace %q %q, want %q %q", i, ev.TraceID, ev.SpanID, e.Metadata.TraceID, e.Metadata.SpanID)
			}
		} else if ev.TraceID != nil || ev.SpanID != nil || string(ev.Metadata) != "{}" {
			t.Fatalf("#%d: metadata %q trace %q span %q, want {} and nil", i, ev.Metadata, ev.TraceID, ev.SpanID)
		}
		if names == nil {
			if ev.Version != nil {
				t.Fatalf("#%d: type %q decoded with %v", i, e.Type, ev.Version)
			}
			continue
		}
		if got := cols(&ev, names...); got != want {
			t.Fatalf("#%d: %s\nwant %s", i, got, want)
		}
	}
}

// TestValidJSONMatchesEncodingJSON compares the scanner's verdict with
// json.Valid on hand-picked documents and on random mutations of them.
func TestValidJSONMatchesEncodingJSON(t *testing.T) {
	corpus := []string{
		``, ` `, `{}`, `[]`, `""`, `0`, `-0`, `1`, `-1`, `0.5`, `-0.5e-7`, `1E+2`, `1e02`, `123456789012345678901234567890`,
		`true`, `false`, `null`, ` null `, "\t{}\n", `{"a":1}`, `{"a":[1,2,{"b":null}]}`, `[[[[[]]]]]`,
		`{"":""}`, `{"a":"\"\\\/\b\f\n\r\t\u0000\uFFFF\ud800\udc00"}`, `"\ud800"`, `"\udc00\ud800"`,
		`{"a":1,"a":2}`, `[1,[2,[3,[4,{"x":[5]}]]]]`, `"é日😀"`, "\"\xff\xfe\"", "[\"\x80\"]",
		`{`, `}`, `[`, `]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a":1 "b":2}`, `[1 2]`,
		`01`, `-`, `-01`, `1.`, `.1`, `1e`, `1e+`, `+1`, `0x1`, `Infinity`, `NaN`, `tru`, `nul`, `falsey`, `True`,
		`"abc`, `"\x"`, `"\u12"`, `"\u12G4"`, "\"\x01\"", "\"\x1f\"", "\"\x7f\"", `'a'`, `{a:1}`, `{"a":1}x`, `1 2`, `{}{}`,
		"\ufeff{}", "{}\x00", "\x00", "[\v]", "[\f]", "[\u00a0]", "[1\u2028]", `{"a":[}`, `[{]}`, `"\/"`, `"\'"`,
		string(env()), string(order()), string(inventory("delta", "-1")), string(benchEnvelope()),
		nested(maxDepth), `{"a":` + nested(maxDepth-1) + `}`,
	}
	check := func(doc []byte) {
		t.Helper()
		got, want := validJSON(doc), json.Valid(doc)
		if got != want && !(want && depthOf(doc) > maxDepth) {
			t.Errorf("validJSON(%q) = %v, json.Valid = %v", doc, got, want)
		}
	}
	for _, doc := range corpus {
		check([]byte(doc))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "{}[]\":,.-+eE0123456789 \t\n\r\\/ubfnrtlsa\x00\x01\x80\xff"
	for range 200_000 {
		doc := []byte(corpus[rng.IntN(len(corpus))])
		for range 1 + rng.IntN(3) {
			switch op := rng.IntN(4); {
			case op == 0 && len(doc) > 0: // delete a byte
				i := rng.IntN(len(doc))
				doc = append(doc[:i:i], doc[i+1:]...)
			case op == 1: // insert a byte
				i := rng.IntN(len(doc) + 1)
				doc = append(doc[:i:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, doc[i:]...)...)
			case op == 2 && len(doc) > 0: // replace a byte
				doc = bytes.Clone(doc)
				doc[rng.IntN(len(doc))] = alphabet[rng.IntN(len(alphabet))]
			default: // splice two documents
				other := corpus[rng.IntN(len(corpus))]
				i := rng.IntN(len(doc) + 1)
				doc = append(doc[:i:i], other...)
			}
		}
		check(doc)
	}
}

// depthOf returns the maximum nesting depth of brackets outside strings.
func depthOf(b []byte) int {
	depth, maxD, inStr := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '{' || c == '['):
			depth++
			maxD = max(maxD, depth)
		case !inStr && (c == '}' || c == ']'):
			depth--
		}
	}
	return maxD
}

func TestDecodeNestingLimit(t *testing.T) {
	d := testDecoder(0)
	var ev Event
	// The envelope is level 1, so a member may hold maxDepth-1 levels.
	if err := d.Decode(env("x", nested(maxDepth-1)), testRecordTs, &ev); err != nil {
		t.Errorf("depth %d: %v", maxDepth, err)
	}
	if err := d.Decode(env("payload", `{"a":`+nested(maxDepth-2)+`}`), testRecordTs, &ev); err != nil {
		t.Errorf("depth %d in payload: %v", maxDepth, err)
	}
	if err := d.Decode(env("x", nested(maxDepth)), testRecordTs, &ev); err == nil || err.Reason != ReasonNotJSON {
		t.Errorf("depth %d: %v, want %s", maxDepth+1, err, ReasonNotJSON)
	}
	// Very deep input must not blow the stack or take long.
	deep := []byte(strings.Repeat("[", 1_000_000))
	if err := d.Decode(deep, testRecordTs, &ev); err == nil || err.Reason != ReasonNotJSON {
		t.Errorf("deep array: %v, want %s", err, ReasonNotJSON)
	}
}
