package schema

// The envelope is one JSON object:
//
//	{"event_id": "...", "source": "...", "type": "order.created",
//	 "timestamp": "2026-11-26T10:00:00.123Z",
//	 "payload": {...}, "metadata": {"trace_id": "...", "span_id": "..."}}
//
// Encoding ([Envelope.AppendJSON]) is used by producers. Decoding
// ([Decoder.Decode]) is used by ingest and the hot tier on every message
// and is written to be fast and allocation-free on the common path; every
// rejection carries a [Reason] that ends up in the dead-letter table.

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Metadata is the envelope's trace context.
type Metadata struct {
	TraceID string
	SpanID  string
}

// Envelope is the producer-side view of an event. Payload must hold one JSON
// object; it is embedded verbatim.
type Envelope struct {
	EventID   string
	Source    string
	Type      string
	Timestamp time.Time
	Payload   []byte
	Metadata  Metadata
}

// AppendJSON appends the envelope's wire form to dst. The timestamp is
// written in RFC 3339 with microseconds in UTC.
func (e *Envelope) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = appendString(dst, e.EventID)
	dst = append(dst, `,"source":`...)
	dst = appendString(dst, e.Source)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, e.Type)
	dst = append(dst, `,"timestamp":"`...)
	dst = e.Timestamp.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	dst = append(dst, `","payload":`...)
	if len(e.Payload) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, e.Payload...)
	}
	if e.Metadata.TraceID != "" || e.Metadata.SpanID != "" {
		dst = append(dst, `,"metadata":{"trace_id":`...)
		dst = appendString(dst, e.Metadata.TraceID)
		dst = append(dst, `,"span_id":`...)
		dst = appendString(dst, e.Metadata.SpanID)
		dst = append(dst, '}')
	} else {
		dst = append(dst, `,"metadata":{}`...)
	}
	return append(dst, '}')
}

// appendString appends s as a JSON string literal.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, `\u00`...)
				dst = append(dst, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendString appends s as a JSON string literal (exported for payload
// builders such as the demo generator).
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }

// AppendDecimal2 appends cents/100 as a JSON number with exactly two decimal
// places, for example 1234 -> 12.34 and -5 -> -0.05.
func AppendDecimal2(dst []byte, cents int64) []byte {
	if cents < 0 {
		dst = append(dst, '-')
		cents = -cents
	}
	dst = strconv.AppendInt(dst, cents/100, 10)
	dst = append(dst, '.')
	frac := cents % 100
	return append(dst, byte('0'+frac/10), byte('0'+frac%10))
}
