package envelope

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
