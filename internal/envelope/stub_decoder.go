package envelope

// TEMPORARY: replaced by the real scanner from the envelope branch.

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

type Decoder struct{ MaxBytes int }

func (d *Decoder) Decode(msg []byte, ev *Event) *Error {
	*ev = Event{}
	if len(msg) == 0 {
		return &Error{ReasonEmpty, "empty"}
	}
	if d.MaxBytes > 0 && len(msg) > d.MaxBytes {
		return &Error{ReasonOversize, "oversize"}
	}
	if !utf8.Valid(msg) {
		return &Error{ReasonInvalidUTF8, "utf8"}
	}
	var m map[string]json.RawMessage
	if !json.Valid(msg) {
		return &Error{ReasonNotJSON, "not json"}
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		return &Error{ReasonNotObject, "not object"}
	}
	var id, src, typ, ts string
	if json.Unmarshal(m["event_id"], &id) != nil || id == "" {
		return &Error{ReasonMissingEventID, "event_id"}
	}
	if json.Unmarshal(m["source"], &src) != nil || json.Unmarshal(m["type"], &typ) != nil {
		return &Error{ReasonBadEnvelope, "src/type"}
	}
	if json.Unmarshal(m["timestamp"], &ts) != nil {
		return &Error{ReasonBadTimestamp, "ts"}
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return &Error{ReasonBadTimestamp, "ts"}
	}
	p := m["payload"]
	if len(p) == 0 || p[0] != '{' {
		return &Error{ReasonBadPayload, "payload"}
	}
	ev.EventID, ev.Source, ev.Type, ev.TsMicros, ev.Payload = []byte(id), []byte(src), []byte(typ), t.UnixMicro(), p
	if md := m["metadata"]; len(md) > 0 && md[0] == '{' {
		ev.Metadata = md
	}
	if typ == TypeOrderCreated {
		var o struct {
			OrderID, UserID, ProductID string `json:"-"`
			Q                          *int64       `json:"quantity"`
			A                          *json.Number `json:"amount"`
			O                          *string      `json:"order_id"`
			U                          *string      `json:"user_id"`
			P                          *string      `json:"product_id"`
		}
		if json.Unmarshal(p, &o) != nil || o.Q == nil || o.A == nil || o.O == nil || o.U == nil || o.P == nil {
			return &Error{ReasonBadPayloadField, "order"}
		}
		f, _ := o.A.Float64()
		ev.IsOrder = true
		ev.Order = Order{[]byte(*o.O), []byte(*o.U), []byte(*o.P), *o.Q, int64(f*100 + 0.5)}
	}
	if typ == TypeInventoryUpdated {
		var o struct {
			P *string `json:"product_id"`
			W string  `json:"warehouse"`
			S *int64  `json:"stock"`
			D *int64  `json:"delta"`
		}
		if json.Unmarshal(p, &o) != nil || o.P == nil || o.S == nil {
			return &Error{ReasonBadPayloadField, "inventory"}
		}
		ev.IsInventory = true
		ev.Inventory = Inventory{ProductID: []byte(*o.P), Warehouse: []byte(o.W), Stock: *o.S}
		if o.D != nil {
			ev.Inventory.Delta, ev.Inventory.HasDelta = *o.D, true
		}
	}
	return nil
}
