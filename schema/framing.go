package schema

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/hamba/avro/v2"
)

// Confluent framing. A Kafka value that starts with the magic byte 0 is
// framed the Confluent way: a 4-byte big-endian schema id follows, then
// the record. The id names a registered version of the event's type (the
// subject is the type, as for unframed events), and the record's fields
// are the envelope:
//
//   - JSON Schema: the rest of the value is the JSON envelope, decoded as
//     usual with the payload checked against that version.
//   - Avro: the rest is the envelope encoded in Avro binary with the
//     schema AvroEnvelopeSchema(payload schema): event_id, source and type
//     strings, timestamp as timestamp-micros, the payload record, and
//     metadata as an optional map of strings. It is decoded with the
//     registered payload schema and stored as its JSON rendering (fields
//     in schema order; decimals as exact numbers; bytes and fixed as
//     base64; timestamps as RFC 3339).
//
// A framed value whose id the registry does not have is unknown_schema_id;
// one whose type is not the id's subject is schema_mismatch; Avro bytes
// that do not decode are bad_framing.

// AvroEnvelopeSchema returns the Avro schema of a Confluent-framed
// envelope whose payload has the given (registered) Avro record schema.
// Producers encode records with it and frame them with the payload's
// schema id.
func AvroEnvelopeSchema(payloadSchema string) string {
	return `{"type":"record","name":"Envelope","namespace":"eventlake","fields":[` +
		`{"name":"event_id","type":"string"},{"name":"source","type":"string"},{"name":"type","type":"string"},` +
		`{"name":"timestamp","type":{"type":"long","logicalType":"timestamp-micros"}},` +
		`{"name":"payload","type":` + payloadSchema + `},` +
		`{"name":"metadata","type":["null",{"type":"map","values":"string"}],"default":null}]}`
}

// avroFrame decodes framed Avro envelopes of one payload schema.
type avroFrame struct {
	payload avro.Schema
}

func newAvroFrame(payloadSchema string) (*avroFrame, error) {
	sch, err := avro.ParseWithCache(payloadSchema, "", &avro.SchemaCache{})
	if err != nil {
		return nil, err
	}
	return &avroFrame{payload: sch}, nil
}

// unframe resolves a framed value's schema and returns the JSON envelope
// to decode and the version it is pinned to.
func (d *Decoder) unframe(msg []byte) ([]byte, *TypeVersion, *Error) {
	id, ok := schemaID(msg)
	if !ok {
		return nil, nil, reject(ReasonBadFraming, "a value starting with byte 0 must be Confluent-framed: the magic byte 0, a 4-byte schema id, then the record")
	}
	tv := d.codecs.Set().byID[id]
	if tv == nil {
		var err error
		if tv, err = d.codecs.ByID(id); err != nil {
			return nil, nil, &Error{Unavailable: err, Detail: "schema id " + itoa(id) + " is not among the schemas loaded"}
		}
	}
	if tv == nil {
		return nil, nil, reject(ReasonUnknownID, "the value is framed with schema id "+itoa(id)+", which the schema registry does not have")
	}
	if tv.frame == nil {
		return msg[5:], tv, nil
	}
	out, err := tv.frame.toJSON(msg[5:], d.framed[:0])
	d.framed = out
	if err != nil {
		return nil, nil, &Error{Reason: ReasonBadFraming, Subject: tv.Subject, Version: tv.Version,
			Detail: "the Avro record does not decode with schema id " + itoa(id) + " (" + tv.String() + "): " + err.Error()}
	}
	return out, tv, nil
}

// maxAvroItems bounds the items of one framed record's arrays and maps
// (items of type null take no bytes, so the input's size cannot).
const maxAvroItems = 1 << 20

// toJSON renders a framed Avro envelope as a JSON envelope, appended to
// dst.
func (f *avroFrame) toJSON(data, dst []byte) ([]byte, error) {
	r := avro.NewReader(nil, 0).Reset(data)
	w := &avroJSON{r: r, out: dst}
	w.out = append(w.out, `{"event_id":`...)
	w.out = appendString(w.out, r.ReadString())
	w.out = append(w.out, `,"source":`...)
	w.out = appendString(w.out, r.ReadString())
	w.out = append(w.out, `,"type":`...)
	w.out = appendString(w.out, r.ReadString())
	w.out = append(w.out, `,"timestamp":"`...)
	us := r.ReadLong()
	w.out = time.UnixMicro(us).UTC().AppendFormat(w.out, "2006-01-02T15:04:05.000000Z07:00")
	w.out = append(w.out, `","payload":`...)
	w.value(f.payload, 0)
	if r.ReadLong() != 0 { // metadata union: 0 null, 1 map
		w.out = append(w.out, `,"metadata":{`...)
		w.items(func() {
			w.out = appendString(w.out, r.ReadString())
			w.out = append(w.out, ':')
			w.out = appendString(w.out, r.ReadString())
		})
		w.out = append(w.out, '}')
	}
	w.out = append(w.out, '}')
	if r.Error != nil {
		return w.out, r.Error
	}
	if w.err != nil {
		return w.out, w.err
	}
	return w.out, nil
}

type avroJSON struct {
	r     *avro.Reader
	out   []byte
	err   error
	count int
}

// items reads an Avro array or map's blocks, calling fn per item.
// items calls fn for each item of an Avro array or map, writing the comma
// between items.
func (w *avroJSON) items(fn func()) {
	first := true
	for w.r.Error == nil && w.err == nil {
		n, _ := w.r.ReadBlockHeader()
		if n == 0 {
			return
		}
		if n < 0 || n > maxAvroItems || w.count+int(n) > maxAvroItems {
			w.err = errors.New("an array or map holds more items than the limit")
			return
		}
		w.count += int(n)
		for range n {
			if !first {
				w.out = append(w.out, ',')
			}
			first = false
			fn()
		}
	}
}

func (w *avroJSON) value(s avro.Schema, depth int) {
	if depth > 64 {
		w.err = errors.New("the record nests deeper than 64 levels")
		return
	}
	if w.r.Error != nil || w.err != nil {
		return
	}
	r := w.r
	s = deref(s)
	if lg := logicalOf(s); lg != nil {
		switch lg.Type() {
		case avro.Decimal:
			d := lg.(*avro.DecimalLogicalSchema)
			var b []byte
			if fx, ok := s.(*avro.FixedSchema); ok {
				b = make([]byte, fx.Size())
				r.Read(b)
			} else {
				b = r.ReadBytes()
			}
			w.out = append(w.out, decimalText(b, d.Scale())...)
			return
		case avro.TimestampMillis, avro.TimestampMicros:
			n := r.ReadLong()
			if lg.Type() == avro.TimestampMillis {
				if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
					w.err = errors.New("a timestamp-millis is out of range")
					return
				}
				n *= 1000
			}
			w.out = append(w.out, '"')
			w.out = time.UnixMicro(n).UTC().AppendFormat(w.out, "2006-01-02T15:04:05.000000Z07:00")
			w.out = append(w.out, '"')
			return
		}
	}
	switch s.Type() {
	case avro.Null:
		w.out = append(w.out, "null"...)
	case avro.Boolean:
		w.out = strconv.AppendBool(w.out, r.ReadBool())
	case avro.Int:
		w.out = strconv.AppendInt(w.out, int64(r.ReadInt()), 10)
	case avro.Long:
		w.out = strconv.AppendInt(w.out, r.ReadLong(), 10)
	case avro.Float:
		w.float(float64(r.ReadFloat()), 32)
	case avro.Double:
		w.float(r.ReadDouble(), 64)
	case avro.String:
		w.out = appendString(w.out, r.ReadString())
	case avro.Bytes:
		w.out = appendString(w.out, base64.StdEncoding.EncodeToString(r.ReadBytes()))
	case avro.Fixed:
		b := make([]byte, s.(*avro.FixedSchema).Size())
		r.Read(b)
		w.out = appendString(w.out, base64.StdEncoding.EncodeToString(b))
	case avro.Enum:
		syms := s.(*avro.EnumSchema).Symbols()
		i := int(r.ReadInt())
		if i < 0 || i >= len(syms) {
			w.err = fmt.Errorf("enum index %d is not a symbol", i)
			return
		}
		w.out = appendString(w.out, syms[i])
	case avro.Union:
		types := s.(*avro.UnionSchema).Types()
		i := int(r.ReadLong())
		if i < 0 || i >= len(types) {
			w.err = fmt.Errorf("union index %d is out of range", i)
			return
		}
		w.value(types[i], depth+1)
	case avro.Record:
		w.out = append(w.out, '{')
		for i, f := range s.(*avro.RecordSchema).Fields() {
			if i > 0 {
				w.out = append(w.out, ',')
			}
			w.out = appendString(w.out, f.Name())
			w.out = append(w.out, ':')
			w.value(f.Type(), depth+1)
		}
		w.out = append(w.out, '}')
	case avro.Array:
		w.out = append(w.out, '[')
		w.items(func() { w.value(s.(*avro.ArraySchema).Items(), depth+1) })
		w.out = append(w.out, ']')
	case avro.Map:
		w.out = append(w.out, '{')
		w.items(func() {
			w.out = appendString(w.out, r.ReadString())
			w.out = append(w.out, ':')
			w.value(s.(*avro.MapSchema).Values(), depth+1)
		})
		w.out = append(w.out, '}')
	default:
		w.err = fmt.Errorf("type %s is not supported", s.Type())
	}
}

func (w *avroJSON) float(f float64, bits int) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		w.err = errors.New("NaN and infinities have no JSON form")
		return
	}
	w.out = strconv.AppendFloat(w.out, f, 'g', -1, bits)
}

// decimalText renders an Avro decimal (big-endian two's complement
// unscaled value) as an exact JSON number.
func decimalText(b []byte, scale int) string {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
	}
	return big.NewRat(0, 1).SetFrac(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)).FloatString(scale)
}
