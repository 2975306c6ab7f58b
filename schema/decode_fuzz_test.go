package schema

import (
	"bytes"
	"encoding/json"
	"math/big"
	"regexp"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecode checks Decode against encoding/json and time.Parse on
// arbitrary input. Seeds live in testdata/fuzz/FuzzDecode.
//
// Properties:
//   - Decode never panics, and the scanner's JSON verdict equals json.Valid
//     (unless the input nests deeper than maxDepth);
//   - if json.Valid rejects the message, Decode rejects it as empty,
//     invalid_utf8 or not_json; if json.Valid accepts it, Decode gives
//     not_json only for nesting deeper than maxDepth;
//   - if Decode accepts, encoding/json decodes the same event_id, source,
//     type, payload and metadata bytes, time.Parse(time.RFC3339Nano) gives
//     the same instant, and typed payload numbers have the exact values that
//     math/big computes.
func FuzzDecode(f *testing.F) {
	f.Add(benchEnvelope())
	f.Fuzz(func(t *testing.T, msg []byte) {
		d := permissiveDecoder()
		var ev Event
		err := d.Decode(msg, permissiveRecordTs, &ev)

		valid := json.Valid(msg)
		deep := depthOf(msg) > maxDepth
		if got := validJSON(msg); got != valid && !(valid && deep) {
			t.Fatalf("validJSON = %v, json.Valid = %v", got, valid)
		}

		if err != nil {
			switch {
			case len(msg) > 0 && msg[0] == 0:
				// A Confluent frame (byte 0, a schema id): framing rules
				// apply, not JSON's; the test set has no schema ids.
				if err.Reason != ReasonBadFraming && err.Reason != ReasonUnknownID {
					t.Fatalf("a frame rejected as %v, want bad_framing or unknown_schema_id", err)
				}
			case !valid && err.Reason != ReasonEmpty && err.Reason != ReasonInvalidUTF8 && err.Reason != ReasonNotJSON:
				t.Fatalf("invalid JSON rejected as %v, want not_json, invalid_utf8 or empty", err)
			case valid && err.Reason == ReasonNotJSON && !deep:
				t.Fatalf("valid JSON rejected as %v", err)
			case (err.Reason == ReasonInvalidUTF8) == utf8.Valid(msg) && err.Reason != ReasonEmpty:
				t.Fatalf("rejected as %v, utf8.Valid = %v", err, utf8.Valid(msg))
			case err.Reason == ReasonNotObject && (!valid || bytes.HasPrefix(bytes.TrimLeft(msg, " \t\r\n"), []byte("{"))):
				t.Fatalf("rejected as %v, but the message is invalid or an object", err)
			case err.Detail == "":
				t.Fatalf("rejection %q without detail", err.Reason)
			}
			return
		}

		if !valid {
			t.Fatalf("Decode accepted invalid JSON")
		}
		var top map[string]json.RawMessage
		if e := json.Unmarshal(msg, &top); e != nil {
			t.Fatalf("accepted, but encoding/json fails: %v", e)
		}
		wantString := func(key string, got []byte) {
			t.Helper()
			var s string
			if e := json.Unmarshal(top[key], &s); e != nil || s != string(got) {
				t.Fatalf("%s = %q, encoding/json has %q (%v)", key, got, s, e)
			}
		}
		wantString("event_id", ev.EventID)
		wantString("source", ev.Source)
		wantString("type", ev.Type)
		if len(ev.EventID) == 0 || len(ev.Source) == 0 || len(ev.Type) == 0 {
			t.Fatalf("accepted empty event_id, source or type")
		}

		if !bytes.Equal(ev.Payload, top["payload"]) || ev.Payload[0] != '{' || !json.Valid(ev.Payload) {
			t.Fatalf("Payload = %q, encoding/json has %q", ev.Payload, top["payload"])
		}
		if ev.Metadata != nil {
			if !bytes.Equal(ev.Metadata, top["metadata"]) || ev.Metadata[0] != '{' {
				t.Fatalf("Metadata = %q, encoding/json has %q", ev.Metadata, top["metadata"])
			}
			var meta map[string]any
			if e := json.Unmarshal(ev.Metadata, &meta); e != nil {
				t.Fatal(e)
			}
			for key, got := range map[string][]byte{"trace_id": ev.TraceID, "span_id": ev.SpanID} {
				want, ok := meta[key].(string)
				if ok != (got != nil) || want != string(got) {
					t.Fatalf("%s = %q, encoding/json has %#v", key, got, meta[key])
				}
			}
		} else if m := top["metadata"]; m != nil && string(m) != "null" {
			t.Fatalf("Metadata nil, encoding/json has %q", m)
		}

		var ts string
		if e := json.Unmarshal(top["timestamp"], &ts); e != nil {
			t.Fatal(e)
		}
		if !timestampRE.MatchString(ts) {
			t.Fatalf("accepted timestamp %q outside the profile", ts)
		}
		want, e := time.Parse(time.RFC3339Nano, ts)
		if e != nil || want.UnixMicro() != ev.TsMicros {
			t.Fatalf("timestamp %q: TsMicros = %d, time.Parse gives %d (%v)", ts, ev.TsMicros, want.UnixMicro(), e)
		}

		var payload map[string]json.RawMessage
		if e := json.Unmarshal(ev.Payload, &payload); e != nil {
			t.Fatal(e)
		}
		if ev.Version == nil {
			return
		}
		// Every typed column holds exactly what encoding/json reads at its
		// property (the shipped schemas have no nested objects).
		for c, col := range ev.Version.Columns {
			raw, ok := payload[col.Name]
			set := ev.vals[c].gen == ev.gen
			if !ok || string(raw) == "null" {
				if set {
					t.Fatalf("column %s set without a value in the payload", col.Name)
				}
				continue
			}
			if !set {
				t.Fatalf("column %s unset, payload has %s", col.Name, raw)
			}
			switch col.kind {
			case colString:
				wantPayloadString(t, payload, col.Name, ev.vals[c].b)
			case colLong:
				wantExact(t, raw, ev.vals[c].i, 1)
			case colDecimal:
				wantExact(t, raw, int64(ev.vals[c].d.LowBits()), 100)
			}
		}
	})
}

// timestampRE is the timestamp profile Decode documents.
var timestampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$`)

func wantPayloadString(t *testing.T, payload map[string]json.RawMessage, key string, got []byte) {
	t.Helper()
	var s string
	if e := json.Unmarshal(payload[key], &s); e != nil || s != string(got) {
		t.Fatalf("payload %s = %q, encoding/json has %q (%v)", key, got, s, e)
	}
}

// wantExact checks that the JSON number (or string holding one) raw equals
// got/scale exactly. Literals with long exponents are skipped: math/big
// would compute 10^exponent.
func wantExact(t *testing.T, raw json.RawMessage, got, scale int64) {
	t.Helper()
	var lit string
	if len(raw) > 0 && raw[0] == '"' {
		if e := json.Unmarshal(raw, &lit); e != nil {
			t.Fatal(e)
		}
	} else {
		lit = string(raw)
	}
	if longExponent.MatchString(lit) {
		return
	}
	r, ok := new(big.Rat).SetString(lit)
	if !ok {
		t.Fatalf("math/big cannot parse %q", lit)
	}
	if r.Cmp(big.NewRat(got, scale)) != 0 {
		t.Fatalf("%q decoded as %d/%d, math/big has %v", lit, got, scale, r)
	}
}

var longExponent = regexp.MustCompile(`[eE][+-]?0*\d{4,}$`)
