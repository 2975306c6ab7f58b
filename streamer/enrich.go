package streamer

import (
	"bytes"
	"encoding/json"

	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/schema"
)

// product is one entry of the product catalog.
type product struct {
	ID         string `json:"product_id"`
	Name       string `json:"name"`
	Category   string `json:"category"`
	Price      string `json:"price"`
	priceCents int64
}

// productMessage is the value of a products.changelog record (keyed by
// product_id; a record with a null value deletes the product).
type productMessage struct {
	ProductID string          `json:"product_id"`
	Name      string          `json:"name"`
	Category  string          `json:"category"`
	Price     json.RawMessage `json:"price"`
}

// applyProduct applies one changelog record, in topic order. Called with
// liveMu held.
func (s *Streamer) applyProduct(r *kgo.Record) {
	id := string(r.Key)
	if r.Value == nil {
		delete(s.products, id)
		return
	}
	var pm productMessage
	if err := json.Unmarshal(r.Value, &pm); err != nil {
		s.log.Warn("malformed product catalog record ignored", logkey.Topic, r.Topic, logkey.Offset, r.Offset, logkey.Err, err)
		return
	}
	if id == "" {
		id = pm.ProductID
	}
	cents, ok := parseCents(pm.Price)
	if id == "" || !ok {
		s.log.Warn("product catalog record without product_id or a 2-decimal price ignored", logkey.Offset, r.Offset)
		return
	}
	s.products[id] = product{ID: id, Name: pm.Name, Category: pm.Category, Price: formatCents(cents), priceCents: cents}
}

// parseCents reads a price given as a JSON number or string with at most
// two decimals.
func parseCents(raw json.RawMessage) (int64, bool) {
	s := string(raw)
	if len(s) >= 2 && s[0] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return 0, false
	}
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	whole, frac := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			whole, frac = s[:i], s[i+1:]
			break
		}
	}
	if whole == "" || len(frac) > 2 {
		return 0, false
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil || w > 1e15 {
		return 0, false
	}
	c := w*100 + f
	if neg {
		c = -c
	}
	return c, true
}

// enrichedOrder is what orders.enriched carries: the order's payload
// exactly as received, and the product's catalog entry as of the time the
// order was processed (null for a product not in the catalog).
type enrichedOrder struct {
	EventID string          `json:"event_id"`
	Type    string          `json:"type"`
	Ts      string          `json:"ts"`
	Order   json.RawMessage `json:"order"`
	Product *product        `json:"product"`
	// Revenue is what the order brought in: its amount (the read models'
	// amount input), exact; ListRevenue is its quantity times the catalog
	// price (null when the product is unknown).
	Revenue     string  `json:"revenue"`
	ListRevenue *string `json:"list_revenue"`
}

// enrichedOf starts the enriched record of an order (its catalog entry
// is added by withProduct). It copies what it keeps of ev.
func enrichedOf(ev *schema.Event, amount decimal128.Num) *enrichedOrder {
	return &enrichedOrder{
		EventID: string(ev.EventID), Type: string(ev.Type), Order: json.RawMessage(bytes.Clone(ev.Payload)),
		Ts: time.UnixMicro(ev.TsMicros).UTC().Format(time.RFC3339Nano), Revenue: amount.ToString(2),
	}
}

// withProduct adds the catalog entry of productID to out, as the catalog
// is now. Called with liveMu held.
func (s *Streamer) withProduct(out *enrichedOrder, productID string, quantity int64) {
	if p, ok := s.products[productID]; ok {
		out.Product = &p
		list := decimal128.FromI64(p.priceCents).Mul(decimal128.FromI64(quantity)).ToString(2)
		out.ListRevenue = &list
	} else {
		s.m.unknownProducts.Inc()
	}
}

// marshal encodes the record (it has no value that cannot be).
func (o *enrichedOrder) marshal() []byte {
	b, _ := json.Marshal(o)
	return b
}
