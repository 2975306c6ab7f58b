// Package demo is the demo shop: an application that publishes its own
// events, as any team's would. It generates realistic, reproducible event
// streams of the shop's order.created and inventory.updated events (with a
// share of late arrivals and, on request, malformed messages); the same
// seed always yields the same sequence, which is what tests and benchmarks
// use as ground truth. Like every producer it builds its own payloads; the
// lake knows them only through the registered schemas.
package demo

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/eventlake/eventlake/schema"
)

// The shop's event types.
const (
	TypeOrderCreated     = "order.created"
	TypeInventoryUpdated = "inventory.updated"
)

// Topics of the canonical streams.
const (
	TopicOrders    = "orders.created"
	TopicInventory = "inventory.updated"
)

// Kind of a generated message.
type Kind uint8

const (
	KindOrder Kind = iota
	KindInventory
	KindMalformed
	// KindDuplicate is a producer retry: an exact copy (key and value) of
	// a recent order.
	KindDuplicate
)

// Config shapes the stream.
type Config struct {
	Seed uint64
	// Start is the event time of the first event; Step advances event time
	// per event. If Clock is set, event time is Clock() instead.
	Start time.Time
	Step  time.Duration
	Clock func() time.Time
	// LateFraction of events carry an event time up to MaxLateness before
	// their position in the stream.
	LateFraction float64
	MaxLateness  time.Duration
	// InventoryFraction of events are inventory.updated.
	InventoryFraction float64
	// MalformedFraction of messages are malformed in one of several ways.
	MalformedFraction float64
	// DuplicateFraction of messages repeat one of the last 50 orders
	// exactly, as an application retry would.
	DuplicateFraction float64
	Users, Products   int
	Source            string
}

// Defaults fills unset fields with the demo shop's shape.
func (c *Config) Defaults() {
	if c.Start.IsZero() && c.Clock == nil {
		c.Start = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	}
	if c.Step == 0 && c.Clock == nil {
		c.Step = time.Millisecond
	}
	if c.MaxLateness == 0 {
		c.MaxLateness = 2 * time.Minute
	}
	if c.Users == 0 {
		c.Users = 10_000
	}
	if c.Products == 0 {
		c.Products = 500
	}
	if c.Source == "" {
		c.Source = "demo-shop"
	}
}

// Message is one generated Kafka record plus its ground truth.
type Message struct {
	Topic string
	Key   []byte
	Value []byte
	Kind  Kind
	// For valid events:
	EventID  string
	TsMicros int64
	Late     bool
	// For orders:
	AmountCents int64
	UserID      string
	ProductID   string
	// For malformed messages, the expected dead-letter reason.
	Reason schema.Reason
}

// Generator yields the stream; it is not safe for concurrent use.
type Generator struct {
	cfg    Config
	rng    *rand.Rand
	n      int64
	prices []int64
	stock  []int64
	buf    []byte
	pay    []byte
	recent []Message // last orders, for duplicates
	md     schema.Metadata
}

// New returns a generator at the start of the stream.
func New(cfg Config) *Generator {
	cfg.Defaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	g := &Generator{cfg: cfg, rng: rng, prices: make([]int64, cfg.Products), stock: make([]int64, cfg.Products)}
	for i := range g.prices {
		g.prices[i] = 199 + rng.Int64N(19_800) // $1.99 .. $199.99
		g.stock[i] = 100 + rng.Int64N(900)
	}
	return g
}

// Count is how many messages were generated.
func (g *Generator) Count() int64 { return g.n }

// Next generates the next message. The returned slices are only valid
// until the next call.
func (g *Generator) Next() Message { return g.NextTraced(schema.Metadata{}) }

// NextTraced is Next with md, the trace context of the producer's span
// for the event, in the envelope's metadata; with an empty md the
// generator writes its own reproducible ids. Malformed messages and
// duplicates (repeats of an earlier order) carry no new metadata.
func (g *Generator) NextTraced(md schema.Metadata) Message {
	g.md = md
	i := g.n
	g.n++
	var ts time.Time
	if g.cfg.Clock != nil {
		ts = g.cfg.Clock()
	} else {
		ts = g.cfg.Start.Add(time.Duration(i) * g.cfg.Step)
	}
	late := g.cfg.LateFraction > 0 && g.rng.Float64() < g.cfg.LateFraction
	if late {
		ts = ts.Add(-time.Duration(1 + g.rng.Int64N(int64(g.cfg.MaxLateness))))
	}
	ts = ts.Truncate(time.Microsecond)
	if g.cfg.MalformedFraction > 0 && g.rng.Float64() < g.cfg.MalformedFraction {
		return g.malformed(i, ts)
	}
	if g.cfg.DuplicateFraction > 0 && len(g.recent) > 0 && g.rng.Float64() < g.cfg.DuplicateFraction {
		d := g.recent[g.rng.IntN(len(g.recent))]
		d.Kind = KindDuplicate
		return d
	}
	id := "ev-" + strconv.FormatUint(g.cfg.Seed, 10) + "-" + strconv.FormatInt(i, 10)
	if g.cfg.InventoryFraction > 0 && g.rng.Float64() < g.cfg.InventoryFraction {
		p := g.rng.IntN(len(g.prices))
		delta := g.rng.Int64N(41) - 20
		g.stock[p] = max(g.stock[p]+delta, 0)
		pid := productID(p)
		g.pay = append(g.pay[:0], `{"product_id":`...)
		g.pay = schema.AppendString(g.pay, pid)
		g.pay = append(g.pay, `,"warehouse":"wh-`...)
		g.pay = strconv.AppendInt(g.pay, int64(p%4), 10)
		g.pay = append(g.pay, `","stock":`...)
		g.pay = strconv.AppendInt(g.pay, g.stock[p], 10)
		g.pay = append(g.pay, `,"delta":`...)
		g.pay = strconv.AppendInt(g.pay, delta, 10)
		g.pay = append(g.pay, '}')
		env := schema.Envelope{EventID: id, Source: g.cfg.Source, Type: TypeInventoryUpdated,
			Timestamp: ts, Payload: g.pay, Metadata: g.trace(i)}
		g.buf = env.AppendJSON(g.buf[:0])
		return Message{Topic: TopicInventory, Key: []byte(pid), Value: g.buf, Kind: KindInventory,
			EventID: id, TsMicros: ts.UnixMicro(), Late: late, ProductID: pid}
	}
	p := g.rng.IntN(len(g.prices))
	qty := 1 + g.rng.Int64N(4)
	amount := g.prices[p] * qty
	uid := "u-" + strconv.Itoa(g.rng.IntN(g.cfg.Users))
	pid := productID(p)
	oid := "o-" + strconv.FormatUint(g.cfg.Seed, 10) + "-" + strconv.FormatInt(i, 10)
	g.pay = append(g.pay[:0], `{"order_id":`...)
	g.pay = schema.AppendString(g.pay, oid)
	g.pay = append(g.pay, `,"user_id":`...)
	g.pay = schema.AppendString(g.pay, uid)
	g.pay = append(g.pay, `,"product_id":`...)
	g.pay = schema.AppendString(g.pay, pid)
	g.pay = append(g.pay, `,"quantity":`...)
	g.pay = strconv.AppendInt(g.pay, qty, 10)
	g.pay = append(g.pay, `,"amount":`...)
	g.pay = schema.AppendDecimal2(g.pay, amount)
	g.pay = append(g.pay, `,"currency":"USD"}`...)
	env := schema.Envelope{EventID: id, Source: g.cfg.Source, Type: TypeOrderCreated,
		Timestamp: ts, Payload: g.pay, Metadata: g.trace(i)}
	g.buf = env.AppendJSON(g.buf[:0])
	m := Message{Topic: TopicOrders, Key: []byte(oid), Value: g.buf, Kind: KindOrder,
		EventID: id, TsMicros: ts.UnixMicro(), Late: late, AmountCents: amount, UserID: uid, ProductID: pid}
	if g.cfg.DuplicateFraction > 0 {
		c := m
		c.Key, c.Value = append([]byte(nil), m.Key...), append([]byte(nil), m.Value...)
		if len(g.recent) == 50 {
			copy(g.recent, g.recent[1:])
			g.recent = g.recent[:49]
		}
		g.recent = append(g.recent, c)
	}
	return m
}

func (g *Generator) trace(i int64) schema.Metadata {
	if g.md.TraceID != "" {
		return g.md
	}
	return schema.Metadata{
		TraceID: fmt.Sprintf("%016x%016x", g.cfg.Seed, uint64(i)),
		SpanID:  fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15),
	}
}

func productID(p int) string { return "p-" + strconv.Itoa(p) }

// malformed yields one of the bad-input kinds, cycling deterministically.
func (g *Generator) malformed(i int64, ts time.Time) Message {
	var (
		v      []byte
		reason schema.Reason
	)
	okTs := ts.UTC().Format(time.RFC3339Nano)
	id := "bad-" + strconv.FormatUint(g.cfg.Seed, 10) + "-" + strconv.FormatInt(i, 10)
	switch g.rng.IntN(7) {
	case 0:
		v, reason = []byte("order 42 created, amount=12.50"), schema.ReasonNotJSON
	case 1:
		v, reason = []byte{'{', '"', 0xff, 0xfe, '"', ':', '1', '}'}, schema.ReasonInvalidUTF8
	case 2:
		v, reason = []byte(`[{"event_id":"`+id+`"}]`), schema.ReasonNotObject
	case 3:
		v, reason = []byte(`{"source":"demo-shop","type":"order.created","timestamp":"`+okTs+`","payload":{}}`), schema.ReasonMissingEventID
	case 4:
		v, reason = []byte(`{"event_id":"`+id+`","source":"demo-shop","type":"order.created","timestamp":"yesterday","payload":{}}`), schema.ReasonBadTimestamp
	case 5:
		v, reason = []byte(`{"event_id":"`+id+`","source":"demo-shop","type":"order.created","timestamp":"`+okTs+`","payload":{"order_id":"o","user_id":"u","product_id":"p","quantity":"two","amount":1.5}}`), schema.ReasonSchema
	default:
		v, reason = []byte{}, schema.ReasonEmpty
	}
	return Message{Topic: TopicOrders, Value: v, Kind: KindMalformed, Reason: reason, TsMicros: ts.UnixMicro()}
}

// Product is one entry of the demo shop's catalog.
type Product struct {
	ID, Name, Category string
	PriceCents         int64
}

var categories = []string{"books", "electronics", "garden", "kitchen", "sports", "toys"}

// Products is the catalog the generator prices orders with: the same seed
// yields the same catalog.
func (g *Generator) Products() []Product {
	out := make([]Product, len(g.prices))
	for i, p := range g.prices {
		out[i] = Product{ID: productID(i), Name: "Product " + strconv.Itoa(i), Category: categories[i%len(categories)], PriceCents: p}
	}
	return out
}

// ProductRecord is the products.changelog value of p (keyed by its id).
func ProductRecord(p Product) []byte {
	b := []byte(`{"product_id":`)
	b = schema.AppendString(b, p.ID)
	b = append(b, `,"name":`...)
	b = schema.AppendString(b, p.Name)
	b = append(b, `,"category":`...)
	b = schema.AppendString(b, p.Category)
	b = append(b, `,"price":"`...)
	b = schema.AppendDecimal2(b, p.PriceCents)
	return append(b, `"}`...)
}
