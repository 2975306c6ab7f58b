package envelope

import (
	"strconv"
	"unicode/utf8"
)

// Reason is why a message was rejected; it is stored in the dead-letter
// table's reason column and used as a metric label, so the set is closed.
type Reason string

// Rejection reasons, one per kind of bad input.
const (
	ReasonEmpty           Reason = "empty"             // zero-length value (or a Kafka tombstone)
	ReasonOversize        Reason = "oversize"          // larger than Decoder.MaxBytes
	ReasonInvalidUTF8     Reason = "invalid_utf8"      // not valid UTF-8
	ReasonNotJSON         Reason = "not_json"          // not one well-formed JSON value
	ReasonNotObject       Reason = "not_object"        // JSON, but not an object (array, string, ...)
	ReasonMissingEventID  Reason = "missing_event_id"  // event_id absent, empty or not a string
	ReasonBadEnvelope     Reason = "bad_envelope"      // source/type/metadata absent or of the wrong type
	ReasonBadTimestamp    Reason = "bad_timestamp"     // timestamp absent, not a string or not RFC 3339
	ReasonBadPayload      Reason = "bad_payload"       // payload absent or not an object
	ReasonBadPayloadField Reason = "bad_payload_field" // a typed payload field missing or of the wrong type
)

// Reasons lists every Reason, for pre-registering metric label values.
var Reasons = []Reason{
	ReasonEmpty, ReasonOversize, ReasonInvalidUTF8, ReasonNotJSON, ReasonNotObject,
	ReasonMissingEventID, ReasonBadEnvelope, ReasonBadTimestamp, ReasonBadPayload,
	ReasonBadPayloadField,
}

// Error is a rejection: a closed Reason plus a human-readable detail.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Detail }

// Order is the typed payload of an order.created event.
type Order struct {
	OrderID, UserID, ProductID []byte
	Quantity                   int64
	AmountCents                int64 // amount as decimal(18,2), scaled by 100
}

// Inventory is the typed payload of an inventory.updated event.
type Inventory struct {
	ProductID, Warehouse []byte // Warehouse may be empty (absent)
	Stock                int64
	Delta                int64
	HasDelta             bool
}

// Event is a decoded envelope. Byte slices alias either the decoded message
// or the Decoder's scratch space and are valid until the next Decode call.
type Event struct {
	EventID, Source, Type []byte
	TsMicros              int64  // event time, microseconds since the Unix epoch (UTC)
	Payload               []byte // the payload object exactly as received
	Metadata              []byte // the metadata object exactly as received; nil if absent
	TraceID, SpanID       []byte // from metadata; nil if absent

	// IsOrder / IsInventory say which typed payload was decoded (by Type).
	IsOrder     bool
	Order       Order
	IsInventory bool
	Inventory   Inventory
}

// Decoder decodes envelopes from Kafka message values. The zero value is
// ready to use. A Decoder keeps scratch space between calls, so it is not
// safe for concurrent use: give each consumer goroutine its own.
type Decoder struct {
	// MaxBytes rejects larger messages with ReasonOversize; 0 (or less)
	// means no limit.
	MaxBytes int

	// buf holds unescaped strings of the current event. It is truncated,
	// not freed, at the start of each Decode, so that steady-state decoding
	// does not allocate.
	buf []byte
}

// fields is where each member of interest was found by the scan; kindNone
// means absent. The scan only records spans; they are checked and converted
// once the whole message is known to be well-formed JSON, so that a syntax
// error anywhere is always reported as ReasonNotJSON.
type fields struct {
	eventID, source, typ, timestamp, payload, metadata value

	traceID, spanID value // members of metadata

	// Members of payload used by the typed payloads (the union of both
	// types, since type may come after payload in the message).
	orderID, userID, productID, quantity, amount, warehouse, stock, delta value
}

// Decode decodes one message value into ev, or returns why it is rejected.
// It never panics, whatever msg holds, and does not allocate unless it
// rejects the message or needs more scratch space than any earlier message.
//
// Checks run in this order, and the first failure is returned: empty,
// oversize, invalid UTF-8, JSON syntax (the whole message, before any field
// is looked at; nesting is limited to 64 levels), not an object, event_id,
// source and type, timestamp, metadata, payload, typed payload fields.
//
// Rules worth knowing:
//   - Members may come in any order; unknown members are ignored, at the
//     top level and in payload and metadata, for forward compatibility.
//   - Keys are compared after unescaping, so "event\u005fid" is event_id.
//     If a key appears more than once the last one wins (as in
//     encoding/json), including payload and metadata as a whole.
//   - metadata, metadata.trace_id, metadata.span_id and the optional
//     typed payload fields (warehouse, delta) may be null, which means
//     absent.
//   - timestamp must be YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm) with
//     an upper-case T and Z, 1 to 9 fraction digits, year 0001-9999 and an
//     offset below 24h; sub-microsecond digits are truncated.
//   - An order's amount is a JSON number or a string holding one (same
//     grammar, no spaces) whose exact value has at most two decimal places
//     and fits decimal(18,2); integer fields accept any JSON number whose
//     exact value is an integer that fits int64 (so 5, 5.0 and 5e0).
//
// On success, ev's byte slices alias msg (or, for strings that contained
// escapes, the Decoder's scratch space) and are valid until the next call to
// Decode; copy them to keep them longer. ev is reset at the start of every
// call; after a rejection it holds whatever was decoded before the failing
// check (often EventID, useful for dead-letter records).
func (d *Decoder) Decode(msg []byte, ev *Event) *Error {
	*ev = Event{}
	d.buf = d.buf[:0]
	switch {
	case len(msg) == 0:
		return reject(ReasonEmpty, "message is empty")
	case d.MaxBytes > 0 && len(msg) > d.MaxBytes:
		return reject(ReasonOversize, "message is "+strconv.Itoa(len(msg))+
			" bytes, more than the limit of "+strconv.Itoa(d.MaxBytes))
	case !utf8.Valid(msg):
		return reject(ReasonInvalidUTF8, "message is not valid UTF-8 (first bad byte at offset "+
			strconv.Itoa(firstInvalidUTF8(msg))+")")
	}

	var f fields
	s := scanner{b: msg}
	s.skipWS()
	if s.peek() != '{' {
		v, ok := s.value(0)
		if s.skipWS(); ok && s.i == len(msg) {
			return reject(ReasonNotObject, "message is "+kindNames[v.kind]+", want an object")
		}
		if ok {
			s.fail("data after the JSON value")
		}
		return reject(ReasonNotJSON, s.detail())
	}
	if !d.scanEnvelope(&s, &f) {
		return reject(ReasonNotJSON, s.detail())
	}
	if s.skipWS(); s.i != len(msg) {
		s.fail("data after the JSON value")
		return reject(ReasonNotJSON, s.detail())
	}
	d.buf = d.buf[:0] // drop unescaped keys
	return d.check(msg, &f, ev)
}

// scanEnvelope scans the top-level object at s.i, recording members of
// interest in f.
func (d *Decoder) scanEnvelope(s *scanner, f *fields) bool {
	msg := s.b
	return s.object(0, func(k value) bool {
		var ok bool
		switch string(d.key(msg, k)) {
		case "event_id":
			f.eventID, ok = s.value(1)
		case "source":
			f.source, ok = s.value(1)
		case "type":
			f.typ, ok = s.value(1)
		case "timestamp":
			f.timestamp, ok = s.value(1)
		case "payload":
			f.orderID, f.userID, f.productID, f.quantity = value{}, value{}, value{}, value{}
			f.amount, f.warehouse, f.stock, f.delta = value{}, value{}, value{}, value{}
			if s.peek() != '{' {
				f.payload, ok = s.value(1)
				break
			}
			start := s.i
			ok = s.object(1, func(k value) bool {
				var ok bool
				switch string(d.key(msg, k)) {
				case "order_id":
					f.orderID, ok = s.value(2)
				case "user_id":
					f.userID, ok = s.value(2)
				case "product_id":
					f.productID, ok = s.value(2)
				case "quantity":
					f.quantity, ok = s.value(2)
				case "amount":
					f.amount, ok = s.value(2)
				case "warehouse":
					f.warehouse, ok = s.value(2)
				case "stock":
					f.stock, ok = s.value(2)
				case "delta":
					f.delta, ok = s.value(2)
				default:
					_, ok = s.value(2)
				}
				return ok
			})
			f.payload = value{kind: kindObject, start: start, end: s.i}
		case "metadata":
			f.traceID, f.spanID = value{}, value{}
			if s.peek() != '{' {
				f.metadata, ok = s.value(1)
				break
			}
			start := s.i
			ok = s.object(1, func(k value) bool {
				var ok bool
				switch string(d.key(msg, k)) {
				case "trace_id":
					f.traceID, ok = s.value(2)
				case "span_id":
					f.spanID, ok = s.value(2)
				default:
					_, ok = s.value(2)
				}
				return ok
			})
			f.metadata = value{kind: kindObject, start: start, end: s.i}
		default:
			_, ok = s.value(1)
		}
		return ok
	})
}

// key returns an object key for comparison. Escaped keys are unescaped into
// the scratch buffer, which is reused for the next key.
func (d *Decoder) key(msg []byte, k value) []byte {
	if !k.esc {
		return msg[k.start:k.end]
	}
	d.buf = appendUnescaped(d.buf[:0], msg[k.start:k.end])
	return d.buf
}

// str returns the content of string value v, unescaped into the scratch
// buffer if needed. Appends to the buffer never move bytes already handed
// out: a reallocation copies them and leaves the old array to its holders.
func (d *Decoder) str(msg []byte, v value) []byte {
	if !v.esc {
		return msg[v.start:v.end:v.end]
	}
	n := len(d.buf)
	d.buf = appendUnescaped(d.buf, msg[v.start:v.end])
	return d.buf[n:len(d.buf):len(d.buf)]
}

// check applies the envelope's field rules to a well-formed message.
func (d *Decoder) check(msg []byte, f *fields, ev *Event) *Error {
	switch f.eventID.kind {
	case kindString:
		if ev.EventID = d.str(msg, f.eventID); len(ev.EventID) == 0 {
			return reject(ReasonMissingEventID, "event_id is empty")
		}
	case kindNone:
		return reject(ReasonMissingEventID, "event_id is missing")
	default:
		return reject(ReasonMissingEventID, "event_id is "+kindNames[f.eventID.kind]+", want a string")
	}

	var err *Error
	if ev.Source, err = d.envString(msg, f.source, "source"); err != nil {
		return err
	}
	if ev.Type, err = d.envString(msg, f.typ, "type"); err != nil {
		return err
	}

	switch f.timestamp.kind {
	case kindString:
		ts := d.str(msg, f.timestamp)
		var ok bool
		if ev.TsMicros, ok = parseTimestamp(ts); !ok {
			return reject(ReasonBadTimestamp, "timestamp "+quoteTrunc(ts)+
				" is not RFC 3339 (want 2006-01-02T15:04:05[.999999999](Z|+hh:mm|-hh:mm))")
		}
	case kindNone:
		return reject(ReasonBadTimestamp, "timestamp is missing")
	default:
		return reject(ReasonBadTimestamp, "timestamp is "+kindNames[f.timestamp.kind]+", want a string")
	}

	switch f.metadata.kind {
	case kindNone, kindNull:
	case kindObject:
		ev.Metadata = msg[f.metadata.start:f.metadata.end:f.metadata.end]
		if ev.TraceID, err = d.metaString(msg, f.traceID, "trace_id"); err != nil {
			return err
		}
		if ev.SpanID, err = d.metaString(msg, f.spanID, "span_id"); err != nil {
			return err
		}
	default:
		return reject(ReasonBadEnvelope, "metadata is "+kindNames[f.metadata.kind]+", want an object or null")
	}

	switch f.payload.kind {
	case kindObject:
		ev.Payload = msg[f.payload.start:f.payload.end:f.payload.end]
	case kindNone:
		return reject(ReasonBadPayload, "payload is missing")
	default:
		return reject(ReasonBadPayload, "payload is "+kindNames[f.payload.kind]+", want an object")
	}

	switch string(ev.Type) {
	case TypeOrderCreated:
		ev.IsOrder = true
		return d.checkOrder(msg, f, &ev.Order)
	case TypeInventoryUpdated:
		ev.IsInventory = true
		return d.checkInventory(msg, f, &ev.Inventory)
	}
	return nil
}

func (d *Decoder) envString(msg []byte, v value, name string) ([]byte, *Error) {
	switch v.kind {
	case kindString:
		s := d.str(msg, v)
		if len(s) == 0 {
			return nil, reject(ReasonBadEnvelope, name+" is empty")
		}
		return s, nil
	case kindNone:
		return nil, reject(ReasonBadEnvelope, name+" is missing")
	}
	return nil, reject(ReasonBadEnvelope, name+" is "+kindNames[v.kind]+", want a string")
}

func (d *Decoder) metaString(msg []byte, v value, name string) ([]byte, *Error) {
	switch v.kind {
	case kindString:
		return d.str(msg, v), nil
	case kindNone, kindNull:
		return nil, nil
	}
	return nil, reject(ReasonBadEnvelope, "metadata."+name+" is "+kindNames[v.kind]+", want a string")
}

func (d *Decoder) checkOrder(msg []byte, f *fields, o *Order) *Error {
	var err *Error
	if o.OrderID, err = d.payloadID(msg, f.orderID, "order_id"); err != nil {
		return err
	}
	if o.UserID, err = d.payloadID(msg, f.userID, "user_id"); err != nil {
		return err
	}
	if o.ProductID, err = d.payloadID(msg, f.productID, "product_id"); err != nil {
		return err
	}
	if o.Quantity, err = payloadInt(msg, f.quantity, "quantity"); err != nil {
		return err
	}

	var num []byte
	switch f.amount.kind {
	case kindNumber:
		num = msg[f.amount.start:f.amount.end]
	case kindString:
		num = d.str(msg, f.amount)
		if !isJSONNumber(num) {
			return fieldError("amount", quoteTrunc(num)+" is not a decimal number")
		}
	case kindNone:
		return fieldError("amount", "missing")
	default:
		return fieldError("amount", "want a number or a decimal string, got "+kindNames[f.amount.kind])
	}
	dec := parseDecimal(num)
	cents, problem := dec.cents()
	if problem != "" {
		return fieldError("amount", truncate(num)+" "+problem)
	}
	o.AmountCents = cents
	return nil
}

func (d *Decoder) checkInventory(msg []byte, f *fields, inv *Inventory) *Error {
	var err *Error
	if inv.ProductID, err = d.payloadID(msg, f.productID, "product_id"); err != nil {
		return err
	}
	switch f.warehouse.kind {
	case kindString:
		inv.Warehouse = d.str(msg, f.warehouse)
	case kindNone, kindNull:
	default:
		return fieldError("warehouse", "want a string, got "+kindNames[f.warehouse.kind])
	}
	if inv.Stock, err = payloadInt(msg, f.stock, "stock"); err != nil {
		return err
	}
	if f.delta.kind != kindNone && f.delta.kind != kindNull {
		if inv.Delta, err = payloadInt(msg, f.delta, "delta"); err != nil {
			return err
		}
		inv.HasDelta = true
	}
	return nil
}

// payloadID returns a required, non-empty string field of a typed payload.
func (d *Decoder) payloadID(msg []byte, v value, name string) ([]byte, *Error) {
	switch v.kind {
	case kindString:
		s := d.str(msg, v)
		if len(s) == 0 {
			return nil, fieldError(name, "empty string")
		}
		return s, nil
	case kindNone:
		return nil, fieldError(name, "missing")
	}
	return nil, fieldError(name, "want a non-empty string, got "+kindNames[v.kind])
}

// payloadInt returns a required integer field of a typed payload.
func payloadInt(msg []byte, v value, name string) (int64, *Error) {
	switch v.kind {
	case kindNumber:
		num := msg[v.start:v.end]
		n, problem := parseDecimal(num).int64()
		if problem != "" {
			return 0, fieldError(name, truncate(num)+" "+problem)
		}
		return n, nil
	case kindNone:
		return 0, fieldError(name, "missing")
	}
	return 0, fieldError(name, "want an integer number, got "+kindNames[v.kind])
}

func reject(r Reason, detail string) *Error { return &Error{Reason: r, Detail: detail} }

func fieldError(name, problem string) *Error {
	return reject(ReasonBadPayloadField, "payload field "+strconv.Quote(name)+": "+problem)
}

// maxQuoted bounds how much of a bad value is copied into a Detail, which
// ends up in the dead-letter table next to the full message anyway.
const maxQuoted = 64

// truncate returns b as a string, cut to maxQuoted bytes on a rune boundary.
func truncate(b []byte) string {
	if len(b) <= maxQuoted {
		return string(b)
	}
	n := maxQuoted
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return string(b[:n]) + "..."
}

// quoteTrunc is truncate as a Go-quoted string.
func quoteTrunc(b []byte) string { return strconv.Quote(truncate(b)) }

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}
