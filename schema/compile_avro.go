package schema

import (
	"errors"
	"fmt"

	"github.com/apache/iceberg-go"
	"github.com/hamba/avro/v2"

	"github.com/eventlake/eventlake/schema/registry"
)

// compileAvro compiles an Avro schema version of an event type: a record
// whose fields are the payload's properties. A JSON payload is checked
// against it as Avro's JSON reading would: a field without a default must
// be present, a union with null may be null, ints must fit 32 bits, enum
// values must be symbols; members the record does not name are ignored
// (as an Avro reader ignores fields it does not know). Confluent-framed
// Avro values (framing.go) are decoded with the same schema.
func compileAvro(v registry.Version) (*TypeVersion, error) {
	sch, err := avro.ParseWithCache(v.Schema, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("parse the Avro schema: %w", err)
	}
	rec, ok := deref(sch).(*avro.RecordSchema)
	if !ok {
		return nil, errors.New("the payload schema must be an Avro record (the envelope's payload is an object)")
	}
	c := &avroCompiler{b: builder{subject: v.Subject}}
	obj, err := c.record(rec, nil, "")
	if err != nil {
		return nil, err
	}
	tv := c.b.finish(v, obj)
	if tv.frame, err = newAvroFrame(v.Schema); err != nil {
		return nil, err
	}
	return tv, nil
}

type avroCompiler struct{ b builder }

func deref(s avro.Schema) avro.Schema {
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema()
	}
	return s
}

func (c *avroCompiler) record(rec *avro.RecordSchema, path []string, pointer string) (*object, error) {
	o := &object{pointer: pointer}
	for _, f := range rec.Fields() {
		fp := append(path[:len(path):len(path)], f.Name())
		ptr := pointer + "/" + escapePointer(f.Name())
		m, err := c.field(f, fp, ptr)
		if err != nil {
			return nil, err
		}
		if m.nullable && m.leaf != nil {
			m.leaf.accept |= acceptNull
		}
		if !f.HasDefault() && !m.nullable {
			o.required = append(o.required, len(o.members))
		}
		o.members = append(o.members, m)
	}
	o.index()
	return o, nil
}

func (c *avroCompiler) field(f *avro.Field, path []string, pointer string) (member, error) {
	m := member{name: f.Name()}
	t := deref(f.Type())
	if u, ok := t.(*avro.UnionSchema); ok {
		if u.Nullable() {
			_, i := u.Indices()
			t = deref(u.Types()[i])
			m.nullable = true
		} else {
			l, err := c.leaf(columnName(path), pointer, colJSON, iceberg.PrimitiveTypes.String, acceptAny, f.Doc())
			m.leaf = l
			return m, err
		}
	}
	if r, ok := t.(*avro.RecordSchema); ok {
		if len(path) >= maxFlattenDepth {
			l, err := c.leaf(columnName(path), pointer, colJSON, iceberg.PrimitiveTypes.String, acceptObject, f.Doc())
			m.leaf = l
			return m, err
		}
		obj, err := c.record(r, path, pointer)
		m.obj = obj
		return m, err
	}
	l, err := c.typed(t, columnName(path), pointer, f.Doc())
	if err != nil {
		return m, err
	}
	if b, ok := f.Prop(AnnotationSubject).(bool); ok && b {
		c.b.cols[l.col].Subject = true
	}
	m.leaf = l
	return m, nil
}

func logicalOf(s avro.Schema) avro.LogicalSchema {
	switch x := s.(type) {
	case *avro.PrimitiveSchema:
		return x.Logical()
	case *avro.FixedSchema:
		return x.Logical()
	}
	return nil
}

func (c *avroCompiler) typed(t avro.Schema, col, pointer, docText string) (*leaf, error) {
	if lg := logicalOf(t); lg != nil {
		switch lg.Type() {
		case avro.Decimal:
			d := lg.(*avro.DecimalLogicalSchema)
			if d.Precision() > 38 {
				return nil, fmt.Errorf("%s: decimal precision %d is over 38", where(pointer), d.Precision())
			}
			l, err := c.leaf(col, pointer, colDecimal, iceberg.DecimalTypeOf(d.Precision(), d.Scale()), acceptNumber|acceptString, docText)
			if l != nil {
				l.precision, l.scale = int32(d.Precision()), int32(d.Scale())
			}
			return l, err
		case avro.TimestampMillis, avro.TimestampMicros:
			l, err := c.leaf(col, pointer, colTimestamp, iceberg.PrimitiveTypes.TimestampTz, acceptString|acceptNumber, docText)
			if l != nil {
				l.tsUnit = 1
				if lg.Type() == avro.TimestampMillis {
					l.tsUnit = 1000
				}
			}
			return l, err
		}
	}
	switch t.Type() {
	case avro.String:
		return c.leaf(col, pointer, colString, iceberg.PrimitiveTypes.String, acceptString, docText)
	case avro.Int:
		l, err := c.leaf(col, pointer, colLong, iceberg.PrimitiveTypes.Int64, acceptNumber, docText)
		if l != nil {
			l.int32Only = true // the range check of int, before any bound
		}
		return l, err
	case avro.Long:
		return c.leaf(col, pointer, colLong, iceberg.PrimitiveTypes.Int64, acceptNumber, docText)
	case avro.Float, avro.Double:
		return c.leaf(col, pointer, colDouble, iceberg.PrimitiveTypes.Float64, acceptNumber, docText)
	case avro.Boolean:
		return c.leaf(col, pointer, colBool, iceberg.PrimitiveTypes.Bool, acceptBool, docText)
	case avro.Bytes, avro.Fixed:
		return c.leaf(col, pointer, colString, iceberg.PrimitiveTypes.String, acceptString, docText)
	case avro.Enum:
		l, err := c.leaf(col, pointer, colString, iceberg.PrimitiveTypes.String, acceptString, docText)
		if l != nil {
			l.enum = map[string]bool{}
			for _, s := range t.(*avro.EnumSchema).Symbols() {
				l.enum[s] = true
			}
			l.enumText = fmt.Sprint(t.(*avro.EnumSchema).Symbols())
		}
		return l, err
	case avro.Null:
		return c.leaf(col, pointer, colJSON, iceberg.PrimitiveTypes.String, acceptNull, docText)
	default: // array, map
		accept := uint16(acceptArray)
		if t.Type() == avro.Map {
			accept = acceptObject
		}
		return c.leaf(col, pointer, colJSON, iceberg.PrimitiveTypes.String, accept, docText)
	}
}

func (c *avroCompiler) leaf(col, pointer string, kind uint8, t iceberg.Type, accept uint16, docText string) (*leaf, error) {
	i, err := c.b.add(col, lastSegment(pointer), t, kind, docText)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where(pointer), err)
	}
	return &leaf{col: i, pointer: pointer, kind: kind, accept: accept, minLen: -1, maxLen: -1}, nil
}
