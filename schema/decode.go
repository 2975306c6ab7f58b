package schema

import (
	"encoding/binary"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// Event is a decoded envelope. Byte slices alias either the decoded
// message or the Decoder's scratch space and are valid until the next
// Decode call.
type Event struct {
	EventID, Source, Type []byte
	TsMicros              int64  // event time, microseconds since the Unix epoch (UTC)
	Payload               []byte // the payload object exactly as received
	Metadata              []byte // the metadata object exactly as received; nil if absent
	TraceID, SpanID       []byte // from metadata; nil if absent

	// Version is the schema version the payload was checked against; nil
	// for a type with no subject (kept with the envelope columns only).
	Version *TypeVersion
	vals    []val  // one per Version.Columns
	gen     uint32 // vals set by this Decode hold it
}

// val is one payload column's value.
type val struct {
	gen uint32 // the Decode that set it (present and not null); stale otherwise
	b   []byte
	i   int64 // long, timestamp (micros), boolean (0/1)
	f   float64
	d   decimal128.Num
}

// String returns the value of a string (or JSON text) column.
func (e *Event) String(col int) ([]byte, bool) {
	if col < 0 || col >= len(e.vals) || e.vals[col].gen != e.gen {
		return nil, false
	}
	return e.vals[col].b, true
}

// Int returns the value of a long or timestamp (micros) column.
func (e *Event) Int(col int) (int64, bool) {
	if col < 0 || col >= len(e.vals) || e.vals[col].gen != e.gen {
		return 0, false
	}
	return e.vals[col].i, true
}

// Decimal returns the unscaled value of a decimal column.
func (e *Event) Decimal(col int) (decimal128.Num, bool) {
	if col < 0 || col >= len(e.vals) || e.vals[col].gen != e.gen {
		return decimal128.Num{}, false
	}
	return e.vals[col].d, true
}

// Float returns the value of a double column.
func (e *Event) Float(col int) (float64, bool) {
	if col < 0 || col >= len(e.vals) || e.vals[col].gen != e.gen {
		return 0, false
	}
	return e.vals[col].f, true
}

// Codecs is where a Decoder finds compiled schemas: a Resolver, or a
// fixed Set in tests.
type Codecs interface {
	// Set is the current snapshot of every subject.
	Set() *Set
	// ByID compiles the schema with a global id that the snapshot lacks
	// (a version registered a moment ago, or soft-deleted); nil if the
	// registry does not have it. An error means the registry could not be
	// asked.
	ByID(id int) (*TypeVersion, error)
	// Missed returns the Set again after a lookup missed (a type or
	// version not in it), fresh from the registry when it may have
	// changed since. An error means the registry could not be asked, so
	// the Set may lack what was looked for.
	Missed() (*Set, error)
}

// Decoder decodes envelopes from Kafka message values under a Contract,
// checking each payload against its type's schema. A Decoder keeps
// scratch space between calls, so it is not safe for concurrent use: give
// each consumer goroutine its own.
type Decoder struct {
	c      Contract
	codecs Codecs
	gen    uint32 // counts Decodes that reach the payload (val.gen)
	minTs  int64  // MinEventTime in micros

	buf     []byte      // unescaped strings of the current event
	kbuf    []byte      // the last unescaped key
	s       scanner     // reused between calls
	members []rawMember // payload members (and nested objects', stacked)
	seen    []bool
	vals    []val
	framed  []byte // a framed Avro envelope rendered as JSON
}

// rawMember is one member of a payload object as scanned.
type rawMember struct {
	key value
	v   value
}

// NewDecoder returns a decoder. c must be validated.
func NewDecoder(c Contract, codecs Codecs) *Decoder {
	return &Decoder{c: c, codecs: codecs, minTs: c.MinEventTime.UnixMicro()}
}

// fields is where each envelope member was found by the scan; kindNone
// means absent. The scan only records spans; they are checked and
// converted once the whole message is known to be well-formed JSON, so
// that a syntax error anywhere is always reported as not_json.
type fields struct {
	eventID, source, typ, timestamp, payload, metadata value
	traceID, spanID, schemaVersion                     value // members of metadata
	members                                            int   // payload members in d.members[:members]
	// spec is the version the payload was checked against while it was
	// scanned (speculate), with the first violation found and the
	// members present; nil: the payload's members are in d.members.
	spec     *TypeVersion
	specViol *payloadViolation
	specSeen uint64
}

// Decode decodes one message value into ev, or returns why it is
// rejected. recordMicros is the Kafka record's timestamp (max_future is
// relative to it). It never panics, whatever msg holds.
//
// Checks run in this order, and the first failure is returned: empty,
// oversize, framing (a Confluent-framed value: magic byte 0 and a 4-byte
// schema id), invalid UTF-8, JSON syntax (the whole message, before any
// field is looked at; nesting is limited to 64 levels), not an object,
// duplicate keys, lone surrogates, NUL escapes, event_id, source and type
// (present, non-empty, at most MaxIdentifierBytes, no control
// characters), timestamp (RFC 3339, not before MinEventTime, not after the
// record's time + MaxFuture), metadata, payload, the type's schema.
//
// Rules worth knowing:
//   - Members may come in any order; unknown members of the envelope and
//     of metadata are ignored, for forward compatibility.
//   - metadata.schema_version (an integer) pins the payload's schema
//     version; without it the latest version of the type applies.
//   - timestamp must be YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)
//     with an upper-case T and Z, 1 to 9 fraction digits, year 0001-9999;
//     sub-microsecond digits are truncated.
//
// On success, ev's byte slices alias msg (or the Decoder's scratch
// space) and are valid until the next call to Decode.
func (d *Decoder) Decode(msg []byte, recordMicros int64, ev *Event) *Error {
	*ev = Event{}
	d.buf = d.buf[:0]
	switch {
	case len(msg) == 0:
		return reject(ReasonEmpty, "message is empty")
	case len(msg) > d.c.MaxMessageBytes:
		return reject(ReasonOversize, "message is "+itoa(len(msg))+" bytes, more than the limit of "+itoa(d.c.MaxMessageBytes))
	}
	var pinned *TypeVersion
	if msg[0] == 0 {
		var err *Error
		if msg, pinned, err = d.unframe(msg); err != nil {
			return err
		}
	}
	// UTF-8 is checked while scanning (inside strings, the only place
	// bytes >= 0x80 may stand); a message the scan refuses is looked at
	// whole, so that invalid UTF-8 is reported as such wherever it is.
	var f fields
	s := &d.s
	s.reset(msg)
	d.members = d.members[:0]
	s.skipWS()
	if s.peek() != '{' {
		v, ok := s.value(0)
		if !utf8.Valid(msg) {
			return invalidUTF8(msg)
		}
		if s.skipWS(); ok && s.i == len(msg) {
			return reject(ReasonNotObject, "message is "+kindNames[v.kind]+", want an object")
		}
		if ok {
			s.fail("data after the JSON value")
		}
		return reject(ReasonNotJSON, s.detail())
	}
	ok := d.scanEnvelope(s, &f, pinned)
	if s.skipWS(); ok && s.i != len(msg) {
		s.fail("data after the JSON value")
		ok = false
	}
	if !ok {
		if !utf8.Valid(msg) {
			return invalidUTF8(msg)
		}
		return reject(ReasonNotJSON, s.detail())
	}
	switch {
	case s.badUTF8At >= 0:
		return invalidUTF8(msg)
	case s.dupAt >= 0:
		return reject(ReasonDuplicateKey, "key "+quoteTrunc(appendUnescaped(nil, msg[s.dupKey.start:s.dupKey.end]))+
			" occurs twice in one object (at offset "+itoa(s.dupAt)+"); readers would disagree on its value")
	case s.surrogateAt >= 0:
		return reject(ReasonLoneSurrogate, "a \\u escape at offset "+itoa(s.surrogateAt)+
			" is half of a UTF-16 surrogate pair; encode the character as UTF-8 or as a complete pair")
	case s.nulAt >= 0:
		return reject(ReasonNULCharacter, "a \\u0000 escape at offset "+itoa(s.nulAt)+
			" (NUL characters cannot be stored as text by every reader)")
	}
	return d.check(msg, &f, recordMicros, pinned, ev)
}

func invalidUTF8(msg []byte) *Error {
	return reject(ReasonInvalidUTF8, "message is not valid UTF-8 (first bad byte at offset "+itoa(firstInvalidUTF8(msg))+")")
}

// scanEnvelope scans the top-level object at s.i, recording members of
// interest in f, and checks the payload against the version it will
// most likely be checked against (speculate), or else records its
// members in d.members.
func (d *Decoder) scanEnvelope(s *scanner, f *fields, pinned *TypeVersion) bool {
	msg := s.b
	return s.objectOf(0, &envelopeNames, func(i int, _ value) bool {
		var ok bool
		switch i {
		case envEventID:
			f.eventID, ok = s.value(1)
		case envSource:
			f.source, ok = s.value(1)
		case envType:
			f.typ, ok = s.value(1)
		case envTimestamp:
			f.timestamp, ok = s.value(1)
		case envPayload:
			d.members = d.members[:0]
			if s.peek() != '{' {
				f.payload, ok = s.value(1)
				break
			}
			start := s.i
			f.spec = nil
			if tv := d.speculate(msg, f, pinned); tv != nil {
				ok = d.scanWalk(s, tv, f)
			} else {
				ok = s.object(1, func(k value) bool {
					m := rawMember{key: k}
					var ok bool
					m.v, ok = s.value(2)
					d.members = append(d.members, m)
					return ok
				})
			}
			f.payload = value{kind: kindObject, start: start, end: s.i}
			f.members = len(d.members)
		case envMetadata:
			f.traceID, f.spanID, f.schemaVersion = value{}, value{}, value{}
			if s.peek() != '{' {
				f.metadata, ok = s.value(1)
				break
			}
			start := s.i
			ok = s.objectOf(1, &metadataNames, func(i int, _ value) bool {
				var ok bool
				switch i {
				case metaTraceID:
					f.traceID, ok = s.value(2)
				case metaSpanID:
					f.spanID, ok = s.value(2)
				case metaSchemaVersion:
					f.schemaVersion, ok = s.value(2)
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

// The envelope's members and metadata's, in the order AppendJSON writes
// them.
const (
	envEventID = iota
	envSource
	envType
	envTimestamp
	envPayload
	envMetadata
)

const (
	metaTraceID = iota
	metaSpanID
	metaSchemaVersion
)

var (
	envelopeNames = newNames("event_id", "source", "type", "timestamp", "payload", "metadata")
	metadataNames = newNames("trace_id", "span_id", "schema_version")
)

// speculate returns the version the payload will most likely be checked
// against, when that is known before the payload is scanned: the framed
// one, or the latest of a type scanned before the payload (producers put
// type first) that the current Set holds. Checking the payload while
// scanning it saves recording its members and a second pass; check
// confirms the guess (metadata.schema_version, after the payload, may
// name another version) or checks the payload again.
func (d *Decoder) speculate(msg []byte, f *fields, pinned *TypeVersion) *TypeVersion {
	tv := pinned
	if tv == nil {
		if f.typ.kind != kindString || f.typ.esc {
			return nil
		}
		sub := d.codecs.Set().subjects[string(msg[f.typ.start:f.typ.end])]
		if sub == nil || sub.latestErr != nil {
			return nil
		}
		tv = sub.Latest
	}
	if tv == nil || len(tv.root.members) > 64 {
		return nil
	}
	return tv
}

// scanWalk scans the payload object at s.i and checks each member against
// tv as it goes, recording the outcome in f (spec). Scanning goes on
// after a violation: a syntax error or duplicate key later in the message
// takes precedence.
func (d *Decoder) scanWalk(s *scanner, tv *TypeVersion, f *fields) bool {
	msg := s.b
	d.newVals(tv)
	o := tv.root
	var (
		seen uint64
		viol *payloadViolation
	)
	ok := s.objectOf(1, &o.names, func(i int, k value) bool {
		v, ok := s.value(2)
		if !ok {
			return false
		}
		if viol == nil {
			if viol = d.memberAt(msg, o, i, k, v, 2); viol == nil && i >= 0 {
				seen |= 1 << i
			}
		}
		return true
	})
	f.spec, f.specViol, f.specSeen = tv, viol, seen
	return ok
}

// newVals readies d.vals for an event of tv. Values of earlier events are
// not cleared but outdated: a value counts only if the current generation
// set it.
func (d *Decoder) newVals(tv *TypeVersion) {
	if cap(d.vals) < len(tv.Columns) {
		d.vals = make([]val, len(tv.Columns))
	}
	if d.gen++; d.gen == 0 {
		clear(d.vals[:cap(d.vals)])
		d.gen = 1
	}
	d.vals = d.vals[:len(tv.Columns)]
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
func (d *Decoder) check(msg []byte, f *fields, recordMicros int64, pinned *TypeVersion, ev *Event) *Error {
	switch f.eventID.kind {
	case kindString:
		if ev.EventID = d.str(msg, f.eventID); len(ev.EventID) == 0 {
			return reject(ReasonMissingEventID, "event_id is empty")
		}
		if err := d.identifier(ev.EventID, f.eventID.esc, "event_id"); err != nil {
			return err
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
		if ev.TsMicros < d.minTs {
			return reject(ReasonTooOld, "timestamp "+quoteTrunc(ts)+" is before the earliest accepted event time "+
				d.c.MinEventTime.UTC().Format("2006-01-02T15:04:05Z07:00")+" (ingest.min_event_time)")
		}
		if limit := recordMicros + d.c.MaxFuture.Microseconds(); ev.TsMicros > limit {
			return reject(ReasonFutureTime, "timestamp "+quoteTrunc(ts)+" is more than "+d.c.MaxFuture.String()+
				" after the record's Kafka timestamp "+microsRFC3339(recordMicros)+" (ingest.max_future)")
		}
	case kindNone:
		return reject(ReasonBadTimestamp, "timestamp is missing")
	default:
		return reject(ReasonBadTimestamp, "timestamp is "+kindNames[f.timestamp.kind]+", want a string")
	}

	version := 0
	switch f.metadata.kind {
	case kindNone, kindNull:
	case kindObject:
		ev.Metadata = msg[f.metadata.start:f.metadata.end:f.metadata.end]
		if ev.TraceID, err = d.metaString(msg, f.traceID, "metadata.trace_id"); err != nil {
			return err
		}
		if ev.SpanID, err = d.metaString(msg, f.spanID, "metadata.span_id"); err != nil {
			return err
		}
		switch f.schemaVersion.kind {
		case kindNone, kindNull:
		case kindNumber:
			n, problem := parseDecimal(msg[f.schemaVersion.start:f.schemaVersion.end]).int64()
			if problem != "" || n < 1 || n > math.MaxInt32 {
				return reject(ReasonBadEnvelope, "metadata.schema_version "+truncate(msg[f.schemaVersion.start:f.schemaVersion.end])+
					" is not a version number (an integer from 1)")
			}
			version = int(n)
		default:
			return reject(ReasonBadEnvelope, "metadata.schema_version is "+kindNames[f.schemaVersion.kind]+", want an integer")
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

	var tv *TypeVersion
	if f.spec != nil && pinned == nil && version == 0 {
		tv = f.spec // the latest of the type, looked up by speculate
	} else if tv, err = d.version(ev.Type, version, pinned); err != nil || tv == nil {
		return err
	}
	ev.Version = tv
	var v *payloadViolation
	if tv == f.spec {
		// Checked while scanning.
		if v = f.specViol; v == nil {
			v = tv.root.missing(f.specSeen)
		}
	} else {
		members := d.members[:f.members]
		if f.spec != nil {
			// The guess was wrong: record the members now.
			members = d.collect(msg, f.payload, 1)
		}
		d.newVals(tv)
		v = d.walk(msg, tv.root, members, 2)
	}
	ev.vals, ev.gen = d.vals, d.gen
	if v != nil {
		return schemaError(v.reason(), tv, &v.violation)
	}
	if tv.generic != nil {
		if v := tv.generic(ev.Payload); v != nil {
			return schemaError(ReasonSchema, tv, v)
		}
	}
	return nil
}

// version finds the schema version of an event: the framed one, the one
// pinned by metadata.schema_version, or the latest of its type.
func (d *Decoder) version(typ []byte, version int, pinned *TypeVersion) (*TypeVersion, *Error) {
	if pinned != nil {
		if string(typ) != pinned.Subject {
			return nil, &Error{Reason: ReasonSchemaMismatch, Subject: pinned.Subject, Version: pinned.Version,
				Detail: "the value is framed with schema id " + itoa(pinned.ID) + " (" + pinned.String() +
					") but its type is " + quoteTrunc(typ) + "; frame events with a version of their own type"}
		}
		if version != 0 && version != pinned.Version {
			return nil, &Error{Reason: ReasonSchemaMismatch, Subject: pinned.Subject, Version: pinned.Version,
				Detail: "metadata.schema_version " + itoa(version) + " contradicts the framing schema id " + itoa(pinned.ID) + " (" + pinned.String() + ")"}
		}
		return pinned, nil
	}
	set := d.codecs.Set()
	sub := set.subjects[string(typ)]
	if sub == nil || (version != 0 && sub.Versions[version] == nil && sub.errs[version] == nil) {
		var err error
		if set, err = d.codecs.Missed(); err != nil {
			return nil, &Error{Unavailable: err, Detail: "type " + quoteTrunc(typ) + " (or its version) is not among the schemas loaded"}
		}
		sub = set.subjects[string(typ)]
	}
	if sub == nil {
		if name, ok := set.folded[strings.ToLower(string(typ))]; ok {
			return nil, reject(ReasonUnknownType, "type "+quoteTrunc(typ)+" is not registered; did you mean "+
				strconv.Quote(name)+"? Types are case-sensitive")
		}
		if d.c.UnknownTypes == UnknownDLQ {
			return nil, reject(ReasonUnknownType, "type "+quoteTrunc(typ)+" has no schema in the registry (ingest.unknown_types: dlq); register one under subject "+quoteTrunc(typ))
		}
		return nil, nil
	}
	if version == 0 {
		if sub.latestErr != nil {
			return nil, &Error{Reason: ReasonSchema, Subject: sub.Name, Version: sub.latestVersion,
				Detail: "the latest schema of " + sub.Name + " (v" + itoa(sub.latestVersion) + ") cannot be used: " + sub.latestErr.Error()}
		}
		return sub.Latest, nil
	}
	tv := sub.Versions[version]
	if tv == nil {
		if err, bad := sub.errs[version]; bad {
			return nil, &Error{Reason: ReasonSchema, Subject: sub.Name, Version: version,
				Detail: sub.Name + " v" + itoa(version) + " cannot be used: " + err.Error()}
		}
		return nil, &Error{Reason: ReasonUnknownVersion, Subject: sub.Name, Version: version,
			Detail: "metadata.schema_version " + itoa(version) + " of " + sub.Name + " is not registered (latest: v" + itoa(sub.latestVersion) + ")"}
	}
	return tv, nil
}

// identifier checks an envelope identifier.
//
// esc tells whether the JSON string had escapes or DEL (value.esc):
// without them it holds no control character (the scanner refuses bytes
// below 0x20 in strings).
func (d *Decoder) identifier(b []byte, esc bool, name string) *Error {
	if len(b) > d.c.MaxIdentifierBytes {
		return reject(ReasonIDTooLong, name+" is "+itoa(len(b))+" bytes, more than the limit of "+itoa(d.c.MaxIdentifierBytes))
	}
	if !esc {
		return nil // no escapes and no DEL: no control character (scanner)
	}
	i := 0
	for ; i+8 <= len(b) && !hasControl(binary.LittleEndian.Uint64(b[i:])); i += 8 {
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == 0x7f {
			return reject(ReasonBadIdentifier, name+" holds a control character (byte "+itoa(int(c))+" at offset "+itoa(i)+")")
		}
	}
	return nil
}

// hasControl reports whether some byte of x is below 0x20 or is 0x7f (the
// SWAR tests of hasSpecial).
func hasControl(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	del := x ^ (ones * 0x7f)
	return ((x-ones*0x20)&^x|(del-ones)&^del)&highs != 0
}

func (d *Decoder) envString(msg []byte, v value, name string) ([]byte, *Error) {
	switch v.kind {
	case kindString:
		s := d.str(msg, v)
		if len(s) == 0 {
			return nil, reject(ReasonBadEnvelope, name+" is empty")
		}
		if err := d.identifier(s, v.esc, name); err != nil {
			return nil, err
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
		s := d.str(msg, v)
		if err := d.identifier(s, v.esc, name); err != nil {
			return nil, err
		}
		return s, nil
	case kindNone, kindNull:
		return nil, nil
	}
	return nil, reject(ReasonBadEnvelope, name+" is "+kindNames[v.kind]+", want a string")
}

// payloadViolation is a violation and whether it is a range problem.
type payloadViolation struct {
	violation
	outOfRange bool
}

func (p *payloadViolation) reason() Reason {
	if p.outOfRange {
		return ReasonOutOfRange
	}
	return ReasonSchema
}

func bad(pointer, msg string) *payloadViolation {
	return &payloadViolation{violation: violation{pointer: pointer, msg: msg}}
}

// walk checks the members of one payload object against its plan and
// converts leaf values into d.vals. depth is the object's nesting depth.
func (d *Decoder) walk(msg []byte, o *object, members []rawMember, depth int) *payloadViolation {
	if len(o.members) > 64 {
		return d.walkWide(msg, o, members, depth)
	}
	var seen uint64 // bit i: member i was present
	next := 0       // members usually come in schema order: try the next one first
	for j := range members {
		i, v := d.member(msg, o, &members[j], next, depth)
		if v != nil {
			return v
		}
		if i >= 0 {
			seen |= 1 << i
			next = i + 1
		}
	}
	return o.missing(seen)
}

// missing returns the violation of the first required member absent from
// seen (bit i: member i was present), for objects of at most 64 members.
func (o *object) missing(seen uint64) *payloadViolation {
	if o.requiredMask&^seen != 0 {
		for _, r := range o.required {
			if seen&(1<<r) == 0 {
				return bad(pointerOf(o, &o.members[r]), "required property is missing")
			}
		}
	}
	return nil
}

// walkWide is walk for objects of more than 64 members.
func (d *Decoder) walkWide(msg []byte, o *object, members []rawMember, depth int) *payloadViolation {
	base := len(d.seen)
	for range o.members {
		d.seen = append(d.seen, false)
	}
	defer func() { d.seen = d.seen[:base] }()
	next := 0
	for j := range members {
		i, v := d.member(msg, o, &members[j], next, depth)
		if v != nil {
			return v
		}
		if i >= 0 {
			d.seen[base+i] = true
			next = i + 1
		}
	}
	for _, r := range o.required {
		if !d.seen[base+r] {
			return bad(pointerOf(o, &o.members[r]), "required property is missing")
		}
	}
	return nil
}

// member checks and converts one scanned member of o and returns the
// index of the schema member it is (-1: not in the schema). hint is the
// member to try first.
func (d *Decoder) member(msg []byte, o *object, m *rawMember, hint, depth int) (int, *payloadViolation) {
	i := o.names.index(msg, m.key, hint, &d.kbuf)
	return i, d.memberAt(msg, o, i, m.key, m.v, depth)
}

// memberAt checks and converts value v of o's member i (-1: a key k not
// in the schema).
func (d *Decoder) memberAt(msg []byte, o *object, i int, k, v value, depth int) *payloadViolation {
	if i < 0 {
		if o.closed {
			return bad(o.pointer+"/"+escapePointer(string(appendUnescaped(nil, msg[k.start:k.end]))),
				"property is not allowed (additionalProperties is false)")
		}
		return nil
	}
	mem := &o.members[i]
	if v.kind == kindNull {
		if !mem.nullable && (mem.leaf == nil || mem.leaf.accept&acceptNull == 0) {
			return bad(pointerOf(o, mem), "is null, which the schema does not allow")
		}
		return nil
	}
	if mem.obj != nil {
		if v.kind != kindObject {
			return bad(pointerOf(o, mem), "is "+kindNames[v.kind]+", want an object")
		}
		return d.nested(msg, mem.obj, v, depth+1)
	}
	return d.leaf(msg, mem.leaf, v)
}

// nested scans a nested object's members and walks them.
func (d *Decoder) nested(msg []byte, o *object, v value, depth int) *payloadViolation {
	start := len(d.members)
	res := d.walk(msg, o, d.collect(msg, v, depth), depth)
	d.members = d.members[:start]
	return res
}

// collect records the members of object v (scanned before, without
// errors) at the end of d.members and returns them.
func (d *Decoder) collect(msg []byte, v value, depth int) []rawMember {
	start := len(d.members)
	s := scanner{b: msg, i: v.start, skipKeys: true}
	s.object(depth, func(k value) bool {
		m := rawMember{key: k}
		var ok bool
		m.v, ok = s.value(depth + 1)
		d.members = append(d.members, m)
		return ok
	})
	return d.members[start:]
}

func pointerOf(o *object, m *member) string { return o.pointer + "/" + escapePointer(m.name) }

// leaf checks and converts one value.
func (d *Decoder) leaf(msg []byte, l *leaf, v value) *payloadViolation {
	bit := uint16(1) << v.kind
	if l.accept&bit == 0 {
		return bad(l.pointer, "is "+kindNames[v.kind]+", want "+acceptNames(l.accept))
	}
	out := &d.vals[l.col]
	switch l.kind {
	case colString:
		s := d.str(msg, v)
		if p := l.checkString(s); p != "" {
			return bad(l.pointer, p)
		}
		out.b = s
	case colTimestamp:
		if v.kind == kindNumber {
			n, problem := parseDecimal(msg[v.start:v.end]).int64()
			if problem != "" || n > math.MaxInt64/l.tsUnit || n < math.MinInt64/l.tsUnit {
				return &payloadViolation{violation: violation{l.pointer, truncate(msg[v.start:v.end]) + " is not a timestamp in range"}, outOfRange: true}
			}
			out.i = n * l.tsUnit
			break
		}
		s := d.str(msg, v)
		us, ok := parseTimestamp(s)
		if !ok {
			return bad(l.pointer, quoteTrunc(s)+" is not an RFC 3339 date-time")
		}
		if p := l.checkString(s); p != "" {
			return bad(l.pointer, p)
		}
		out.i = us
	case colLong:
		num := msg[v.start:v.end]
		n, _, frac, ok := plainNumber(num)
		var problem string
		if !ok || frac != 0 {
			n, problem = parseDecimal(num).int64()
		}
		if problem != "" {
			if problem == "is not an integer" {
				return bad(l.pointer, truncate(num)+" is not an integer")
			}
			return &payloadViolation{violation: violation{l.pointer, truncate(num) + " is out of range for a 64-bit integer"}, outOfRange: true}
		}
		if l.int32Only && (n < math.MinInt32 || n > math.MaxInt32) {
			return &payloadViolation{violation: violation{l.pointer, truncate(num) + " is out of range for a 32-bit int"}, outOfRange: true}
		}
		if p := l.checkScaled(decimal128.FromI64(n), num); p != "" {
			return bad(l.pointer, p)
		}
		var digits [20]byte // the enum lookup converts without allocating
		if l.enum != nil && !l.enum[string(strconv.AppendInt(digits[:0], n, 10))] {
			return bad(l.pointer, truncate(num)+" is not one of "+l.enumText)
		}
		out.i = n
	case colDouble:
		num := msg[v.start:v.end]
		f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(num), len(num)), 64)
		if err != nil || math.IsInf(f, 0) {
			return &payloadViolation{violation: violation{l.pointer, truncate(num) + " is out of range for a double"}, outOfRange: true}
		}
		if p := l.checkFloat(f, num); p != "" {
			return bad(l.pointer, p)
		}
		out.f = f
	case colDecimal:
		num := msg[v.start:v.end]
		if v.kind == kindString {
			num = d.str(msg, v)
			if !isJSONNumber(num) {
				return bad(l.pointer, quoteTrunc(num)+" is not a decimal number")
			}
		}
		var (
			n       decimal128.Num
			problem string
			rng     bool
		)
		if mant, id, frac, ok := plainNumber(num); ok && frac <= int(l.scale) && id <= int(l.precision-l.scale) && id+int(l.scale) <= 18 {
			n = decimal128.FromI64(mant * int64(pow10[int(l.scale)-frac]))
		} else {
			n, problem, rng = toDecimal(num, l.precision, l.scale)
		}
		if problem != "" {
			return &payloadViolation{violation: violation{l.pointer, truncate(num) + " " + problem}, outOfRange: rng}
		}
		if p := l.checkScaled(n, num); p != "" {
			return bad(l.pointer, p)
		}
		if l.enum != nil {
			r, _ := new(big.Rat).SetString(string(num))
			if r == nil || !l.enum[r.RatString()] {
				return bad(l.pointer, truncate(num)+" is not one of "+l.enumText)
			}
		}
		out.d = n
	case colBool:
		if v.kind == kindTrue {
			out.i = 1
		}
	case colJSON:
		if v.kind == kindString {
			out.b = msg[v.start-1 : v.end+1 : v.end+1] // with its quotes
		} else {
			out.b = msg[v.start:v.end:v.end]
		}
	}
	out.gen = d.gen
	return nil
}

func (l *leaf) checkString(s []byte) string {
	// A string has between len/4 and len characters: count them only when
	// that range straddles a bound.
	if (l.minLen >= 0 && len(s) < 4*l.minLen) || (l.maxLen >= 0 && len(s) > l.maxLen) {
		n := utf8.RuneCount(s)
		if l.minLen >= 0 && n < l.minLen {
			return quoteTrunc(s) + " is shorter than " + itoa(l.minLen) + " characters"
		}
		if l.maxLen >= 0 && n > l.maxLen {
			return "is " + itoa(n) + " characters, longer than " + itoa(l.maxLen)
		}
	}
	if l.enum != nil && !l.enum[unsafe.String(unsafe.SliceData(s), len(s))] {
		return quoteTrunc(s) + " is not one of " + l.enumText
	}
	if l.pattern != nil && !l.pattern.Match(s) {
		return quoteTrunc(s) + " does not match the pattern " + strconv.Quote(l.patternText)
	}
	return ""
}

func (l *leaf) checkScaled(n decimal128.Num, num []byte) string {
	if l.hasMin && n.Less(l.minD) {
		return truncate(num) + " is less than the " + minName(l.minExcl) + " " + l.minText
	}
	if l.hasMax && n.Greater(l.maxD) {
		return truncate(num) + " is more than the " + maxName(l.maxExcl) + " " + l.maxText
	}
	return ""
}

func (l *leaf) checkFloat(f float64, num []byte) string {
	if l.hasMin && (f < l.minF || (l.minExcl && f == l.minF)) {
		return truncate(num) + " is less than the " + minName(l.minExcl) + " " + l.minText
	}
	if l.hasMax && (f > l.maxF || (l.maxExcl && f == l.maxF)) {
		return truncate(num) + " is more than the " + maxName(l.maxExcl) + " " + l.maxText
	}
	return ""
}

func minName(excl bool) string {
	if excl {
		return "exclusive minimum"
	}
	return "minimum"
}

func maxName(excl bool) string {
	if excl {
		return "exclusive maximum"
	}
	return "maximum"
}

// acceptNames describes accepted JSON kinds.
func acceptNames(a uint16) string {
	var names []string
	for _, k := range []struct {
		bit  uint16
		name string
	}{{acceptString, "a string"}, {acceptNumber, "a number"}, {acceptObject, "an object"}, {acceptArray, "an array"}, {acceptBool, "a boolean"}, {acceptNull, "null"}} {
		if a&k.bit != 0 {
			names = append(names, k.name)
		}
	}
	return strings.Join(names, " or ")
}

// toDecimal converts a JSON number to a decimal(p,s), unscaled. problem
// says why it cannot be one; outOfRange whether that is its size (rather
// than its number of decimals).
func toDecimal(num []byte, p, s int32) (n decimal128.Num, problem string, outOfRange bool) {
	d := parseDecimal(num)
	if d.digits == 0 {
		return decimal128.Num{}, "", false
	}
	if d.exp < -int64(s) {
		return n, "has more than " + itoa(int(s)) + " decimal places", false
	}
	// digits+exp digits before the point; the column holds p-s.
	if d.digits+d.exp > int64(p-s) {
		return n, "is out of range for decimal(" + itoa(int(p)) + "," + itoa(int(s)) + ")", true
	}
	shift := d.exp + int64(s) // >= 0
	if !d.overflow && d.digits+shift <= 18 {
		v := int64(d.mant * pow10[shift])
		if d.neg {
			v = -v
		}
		return decimal128.FromI64(v), "", false
	}
	// More than 18 digits: exact big arithmetic.
	r, ok := new(big.Rat).SetString(string(num))
	if !ok {
		return n, "is not a number", false
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(s)), nil)))
	if !r.IsInt() {
		return n, "has more than " + itoa(int(s)) + " decimal places", false
	}
	v, ok := bigToDecimal(r.Num())
	if !ok {
		return n, "is out of range for decimal(" + itoa(int(p)) + "," + itoa(int(s)) + ")", true
	}
	return v, "", false
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

// schemaID reads the id of a Confluent-framed value.
func schemaID(msg []byte) (int, bool) {
	if len(msg) < 5 || msg[0] != 0 {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(msg[1:5])), true
}
