package schema

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Reason is why a message was rejected; it is stored in the dead-letter
// table's reason column and used as a metric label, so the set is closed.
type Reason string

// Rejection reasons, one per kind of bad input.
const (
	ReasonEmpty          Reason = "empty"            // zero-length value (or a Kafka tombstone)
	ReasonOversize       Reason = "oversize"         // larger than Contract.MaxMessageBytes
	ReasonInvalidUTF8    Reason = "invalid_utf8"     // not valid UTF-8
	ReasonNotJSON        Reason = "not_json"         // not one well-formed JSON value
	ReasonNotObject      Reason = "not_object"       // JSON, but not an object (array, string, ...)
	ReasonDuplicateKey   Reason = "duplicate_key"    // a key twice in one object, at any depth
	ReasonLoneSurrogate  Reason = "lone_surrogate"   // a \ud800-\udfff escape that is not a surrogate pair
	ReasonNULCharacter   Reason = "nul_character"    // a \u0000 escape anywhere
	ReasonMissingEventID Reason = "missing_event_id" // event_id absent, empty or not a string
	ReasonBadEnvelope    Reason = "bad_envelope"     // source/type/metadata absent or of the wrong type
	ReasonBadIdentifier  Reason = "bad_identifier"   // an identifier holds a control character
	ReasonIDTooLong      Reason = "identifier_too_long"
	ReasonBadTimestamp   Reason = "bad_timestamp"    // timestamp absent, not a string or not RFC 3339
	ReasonFutureTime     Reason = "future_timestamp" // event time after the record's time + max_future
	ReasonTooOld         Reason = "timestamp_too_old"
	ReasonBadPayload     Reason = "bad_payload"      // payload absent or not an object
	ReasonSchema         Reason = "schema_violation" // the payload breaks its schema
	ReasonOutOfRange     Reason = "out_of_range"     // a number outside its column's range
	ReasonUnknownType    Reason = "unknown_type"     // no subject for the type (unknown_types: dlq, or a case mismatch)
	ReasonUnknownVersion Reason = "unknown_schema_version"
	ReasonUnknownID      Reason = "unknown_schema_id" // a framed value names a schema id the registry does not have
	ReasonSchemaMismatch Reason = "schema_mismatch"   // a framed value's schema is not a version of its type
	ReasonBadFraming     Reason = "bad_framing"       // a framed value that its schema cannot decode
	ReasonSchemaConflict Reason = "schema_conflict"   // the table's column for a field has another type
)

// Reasons lists every Reason, for pre-registering metric label values.
var Reasons = []Reason{
	ReasonEmpty, ReasonOversize, ReasonInvalidUTF8, ReasonNotJSON, ReasonNotObject, ReasonDuplicateKey,
	ReasonLoneSurrogate, ReasonNULCharacter, ReasonMissingEventID, ReasonBadEnvelope, ReasonBadIdentifier,
	ReasonIDTooLong, ReasonBadTimestamp, ReasonFutureTime, ReasonTooOld, ReasonBadPayload, ReasonSchema,
	ReasonOutOfRange, ReasonUnknownType, ReasonUnknownVersion, ReasonUnknownID, ReasonSchemaMismatch,
	ReasonBadFraming, ReasonSchemaConflict,
}

// Error is a rejection: a closed Reason, a human-readable detail and,
// for payloads checked against a schema, where they failed.
type Error struct {
	Reason Reason
	Detail string
	// Subject and Version name the schema the payload was checked
	// against (empty and 0 otherwise); Pointer is the JSON pointer of the
	// failing value inside the payload.
	Subject string
	Version int
	Pointer string
	// Unavailable, when set, means the event was not decided: the schema
	// registry could not be asked about its type or schema id. It is no
	// dead letter (Reason is empty); decode it again once the registry
	// answers.
	Unavailable error
}

func (e *Error) Error() string {
	if e.Unavailable != nil {
		return "schema registry unavailable: " + e.Detail + ": " + e.Unavailable.Error()
	}
	return string(e.Reason) + ": " + e.Detail
}

// Unknown-type policies.
const (
	UnknownKeep = "keep" // envelope columns only
	UnknownDLQ  = "dlq"  // reason unknown_type
)

// Contract is the envelope contract: what every message must satisfy,
// whatever its type. Ingest and the hot tier must use the same contract
// (and the same registry) so that they accept exactly the same events;
// every rule depends only on the record, never on the clock of the
// process that reads it.
type Contract struct {
	// MaxMessageBytes rejects larger message values (oversize).
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxFuture rejects an event whose time is later than its Kafka
	// record's timestamp plus this (future_timestamp): the record's
	// timestamp is when it was produced (or appended), so a clock that
	// ran ahead or a year-9999 typo cannot move watermarks.
	MaxFuture time.Duration `yaml:"max_future"`
	// MinEventTime rejects events before it (timestamp_too_old).
	MinEventTime time.Time `yaml:"min_event_time"`
	// MaxIdentifierBytes bounds event_id, source, type, trace_id and
	// span_id (identifier_too_long).
	MaxIdentifierBytes int `yaml:"max_identifier_bytes"`
	// UnknownTypes says what happens to an event whose type has no
	// subject in the registry: keep (envelope columns only) or dlq.
	UnknownTypes string `yaml:"unknown_types"`
}

// Defaults fills unset fields.
func (c *Contract) Defaults() {
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 1 << 20
	}
	if c.MaxFuture == 0 {
		c.MaxFuture = time.Hour
	}
	if c.MinEventTime.IsZero() {
		c.MinEventTime = time.Unix(0, 0).UTC()
	}
	if c.MaxIdentifierBytes == 0 {
		c.MaxIdentifierBytes = DefaultMaxIdentifierBytes
	}
	if c.UnknownTypes == "" {
		c.UnknownTypes = UnknownKeep
	}
}

// DefaultMaxIdentifierBytes bounds envelope identifiers: longer than any
// UUID, ULID, trace id or dotted type name in use, short enough that one
// record cannot bloat every index and dictionary built over the column.
const DefaultMaxIdentifierBytes = 256

// Validate checks the contract.
func (c *Contract) Validate() error {
	switch {
	case c.MaxMessageBytes < 64:
		return errors.New("max_message_bytes must be at least 64")
	case c.MaxFuture < 0:
		return errors.New("max_future must not be negative")
	case c.MaxIdentifierBytes < 16:
		return errors.New("max_identifier_bytes must be at least 16")
	case c.UnknownTypes != UnknownKeep && c.UnknownTypes != UnknownDLQ:
		return fmt.Errorf("unknown_types %q: want %s or %s", c.UnknownTypes, UnknownKeep, UnknownDLQ)
	}
	return nil
}

func reject(r Reason, detail string) *Error { return &Error{Reason: r, Detail: detail} }

// schemaError is a payload rejection naming the version and the pointer.
func schemaError(r Reason, tv *TypeVersion, v *violation) *Error {
	return &Error{Reason: r, Subject: tv.Subject, Version: tv.Version, Pointer: v.pointer,
		Detail: "payload" + v.pointer + ": " + v.msg + " (" + tv.String() + ")"}
}

func itoa(n int) string { return strconv.Itoa(n) }

// microsRFC3339 formats micros since the epoch for messages.
func microsRFC3339(us int64) string {
	return time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.999999Z07:00")
}
