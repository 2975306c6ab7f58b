package schema

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/schema/registry"
)

// A registered schema compiles into a TypeVersion: the columns its
// payload maps to and a plan that walks a payload, checks it and converts
// its values for those columns. The mapping of an event to table columns
// is defined here and nowhere else:
//
//   - Every property of the payload is a column of the same name, in the
//     schema's order. A property that is an object with its own
//     properties is flattened: its properties become columns named
//     parent_child (address.city -> address_city), at any depth. Flat
//     columns are what every engine reads alike (DuckDB, Spark, Trino),
//     carry their own statistics for pruning, and evolve by adding
//     columns; a struct's nested fields would need nested field ids in
//     every reader and nested schema updates.
//   - Arrays, objects without properties (free-form maps) and values
//     whose type is a union other than "X or null" are kept as a JSON text
//     column holding the value exactly as received.
//   - A property whose name (after flattening) is one of the envelope's
//     columns (event_id, source, type, ts, ...) is stored as payload_<name>.
//   - Types: string -> string; integer -> long; number -> double;
//     boolean -> boolean; a string with format date-time -> timestamptz;
//     a number (or a number in a string) annotated with
//     "x-eventlake-type": "decimal(P,S)" -> decimal(P,S), kept exact.
//     Avro: string, int and long, float and double, boolean, bytes or
//     fixed with logicalType decimal, long with timestamp-millis/-micros,
//     enum (string), record (flattened), ["null", X] (nullable X);
//     arrays and maps are JSON text.

// Column kinds, for the appender's dispatch.
const (
	colString uint8 = iota + 1
	colLong
	colDouble
	colBool
	colDecimal
	colTimestamp
	colJSON // a string column holding a JSON value verbatim
)

// Column is one typed payload column of an event type.
type Column struct {
	Name string
	Type iceberg.Type
	Doc  string
	// Property is the payload property the column holds (the last step of
	// its path: address_city holds "city").
	Property string
	// Subject marks the column that identifies the person an event is
	// about (AnnotationSubject): erasure finds their events by it.
	Subject bool
	kind    uint8
}

// NestedField returns the column as an optional Iceberg field (id 0: the
// table assigns one).
func (c Column) NestedField() iceberg.NestedField {
	return iceberg.NestedField{Name: c.Name, Type: c.Type, Doc: c.Doc}
}

// TypeVersion is one compiled schema version of an event type.
type TypeVersion struct {
	Subject string
	Version int
	ID      int
	// Columns are the payload's columns, in schema order.
	Columns []Column
	root    *object
	// generic validates what the plan does not compile (keywords such as
	// oneOf or $ref); nil when the plan checks everything.
	generic func(payload []byte) *violation
	// frame is the Avro writer schema of a Confluent-framed envelope
	// carrying this version's payload; nil for JSON Schema.
	frame *avroFrame
	byCol map[string]int
}

// Column returns the index of the column named name, or -1.
func (v *TypeVersion) Column(name string) int {
	if i, ok := v.byCol[name]; ok {
		return i
	}
	return -1
}

// String names the version for messages: "order.created v2".
func (v *TypeVersion) String() string { return fmt.Sprintf("%s v%d", v.Subject, v.Version) }

// object is the plan of one JSON object of the payload.
type object struct {
	pointer  string // JSON pointer of the object ("" for the payload)
	members  []member
	names    names // the members' names
	required []int
	// requiredMask has bit i set for a required member i < 64.
	requiredMask uint64
	closed       bool // additionalProperties: false
	// minProps/maxProps are not compiled: schemas using them go to the
	// generic validator.
}

// member is one property of an object: a leaf column or a nested object.
type member struct {
	name     string
	leaf     *leaf
	obj      *object // flattened nested object
	nullable bool    // the value may be JSON null
}

func (o *object) index() {
	list := make([]string, len(o.members))
	for i, m := range o.members {
		list[i] = m.name
	}
	o.names = newNames(list...)
	o.maskRequired()
}

// maskRequired sets requiredMask from required.
func (o *object) maskRequired() {
	o.requiredMask = 0
	for _, r := range o.required {
		if r < 64 {
			o.requiredMask |= 1 << r
		}
	}
}

// JSON kinds a leaf accepts, as a bit set of the scanner's kinds.
const (
	acceptString = 1 << kindString
	acceptNumber = 1 << kindNumber
	acceptObject = 1 << kindObject
	acceptArray  = 1 << kindArray
	acceptBool   = 1<<kindTrue | 1<<kindFalse
	acceptNull   = 1 << kindNull
	acceptAny    = acceptString | acceptNumber | acceptObject | acceptArray | acceptBool | acceptNull
)

// leaf is one column's value in the payload and its checks.
type leaf struct {
	col     int // index into TypeVersion.Columns
	pointer string
	kind    uint8
	accept  uint16 // JSON kinds accepted (acceptNull: null means absent)
	// intSubtype narrows a long column to Avro's int.
	int32Only bool

	// Checks compiled from the schema.
	minLen, maxLen int // code points; -1: none
	pattern        *regexp.Regexp
	patternText    string
	enum           map[string]bool // string values, or canonical numbers
	enumText       string
	hasMin, hasMax bool
	minExcl        bool
	maxExcl        bool
	minF, maxF     float64
	minText        string
	maxText        string
	// Decimal and integer bounds, scaled to the column's scale (integers:
	// scale 0).
	minD, maxD decimal128.Num
	precision  int32
	scale      int32
	// timestamp unit of an Avro timestamp given as a JSON number:
	// microseconds per unit (1000 for millis, 1 for micros).
	tsUnit int64
}

// violation is a payload that breaks its schema: where and why.
type violation struct {
	pointer string // JSON pointer of the failing value ("" for the payload)
	msg     string
}

// reservedColumns are the envelope's and Kafka's columns; a payload
// property of the same name is stored as payload_<name>.
var reservedColumns = map[string]bool{
	"event_id": true, "source": true, "type": true, "ts": true, "payload": true, "metadata": true,
	"trace_id": true, "span_id": true, "kafka_topic": true, "kafka_partition": true, "kafka_offset": true,
	"kafka_timestamp": true, "ingested_at": true,
}

// columnName is the column of a (possibly nested) property path.
func columnName(path []string) string {
	n := strings.Join(path, "_")
	if reservedColumns[n] {
		return "payload_" + n
	}
	return n
}

// builder collects columns while a schema compiles.
type builder struct {
	subject string
	cols    []Column
	byName  map[string]int
}

func (b *builder) add(name, property string, t iceberg.Type, kind uint8, doc string) (int, error) {
	if b.byName == nil {
		b.byName = map[string]int{}
	}
	if i, dup := b.byName[name]; dup {
		return 0, fmt.Errorf("two properties map to column %q (flattened names join nested properties with _); rename one", b.cols[i].Name)
	}
	b.byName[name] = len(b.cols)
	b.cols = append(b.cols, Column{Name: name, Property: property, Type: t, Doc: doc, kind: kind})
	return len(b.cols) - 1, nil
}

// finish builds the TypeVersion.
func (b *builder) finish(v registry.Version, root *object) *TypeVersion {
	tv := &TypeVersion{Subject: v.Subject, Version: v.Version, ID: v.ID, Columns: b.cols, root: root, byCol: b.byName}
	if tv.byCol == nil {
		tv.byCol = map[string]int{}
	}
	return tv
}

// maxFlattenDepth bounds how deep nested objects are flattened; deeper
// ones are JSON text columns.
const maxFlattenDepth = 8
