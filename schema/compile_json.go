package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/eventlake/eventlake/schema/registry"
)

// Annotations eventlake reads in JSON Schemas (and Avro field attributes).
const (
	// AnnotationType sets a property's column type where JSON has no exact
	// one: "decimal(P,S)" keeps a number (or a number in a string) exact.
	AnnotationType = "x-eventlake-type"
	// AnnotationSubject marks the property that identifies the person an
	// event is about (a GDPR data subject): erasure finds their events by
	// it.
	AnnotationSubject = "x-eventlake-subject"
)

// compiledKeywords are the JSON Schema keywords the plan checks itself;
// a schema using any other keyword (anywhere) is also run through the
// generic validator, event by event.
var compiledKeywords = map[string]bool{
	"type": true, "properties": true, "required": true, "additionalProperties": true,
	"enum": true, "const": true, "minimum": true, "maximum": true, "exclusiveMinimum": true, "exclusiveMaximum": true,
	"minLength": true, "maxLength": true, "pattern": true, "format": true,
	// Annotations without a check.
	"$schema": true, "$id": true, "$comment": true, "title": true, "description": true, "default": true,
	"examples": true, "deprecated": true, "readOnly": true, "writeOnly": true,
	AnnotationType: true, AnnotationSubject: true,
}

// node is a JSON value with the order of object keys kept (properties
// become columns in schema order).
type node struct {
	obj   []kv // object members in order; nil for other kinds
	isObj bool
	val   any // string, json.Number, bool, nil, []node
}

type kv struct {
	k string
	v *node
}

func (n *node) get(k string) *node {
	for _, m := range n.obj {
		if m.k == k {
			return m.v
		}
	}
	return nil
}

func parseNode(text string) (*node, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	n, err := readNode(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the schema")
	}
	return n, nil
}

func readNode(dec *json.Decoder, depth int) (*node, error) {
	if depth > 256 {
		return nil, errors.New("the schema nests too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &node{isObj: true}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := readNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.obj = append(n.obj, kv{k: kt.(string), v: v})
			}
			_, err := dec.Token()
			return n, err
		case '[':
			var items []node
			for dec.More() {
				v, err := readNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				items = append(items, *v)
			}
			_, err := dec.Token()
			return &node{val: items}, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return &node{val: t}, nil
	}
}

// compileJSONSchema compiles a JSON Schema version of an event type.
func compileJSONSchema(v registry.Version) (*TypeVersion, error) {
	root, err := parseNode(v.Schema)
	if err != nil {
		return nil, fmt.Errorf("parse the schema: %w", err)
	}
	if !root.isObj {
		return nil, errors.New("the payload schema must be a JSON object (a schema of type object)")
	}
	if t := root.get("type"); t != nil {
		if s, _ := t.val.(string); s != "object" {
			return nil, errors.New(`the payload schema must have "type": "object" (the envelope's payload is an object)`)
		}
	}
	c := &jsonCompiler{b: builder{subject: v.Subject}}
	obj, err := c.object(root, nil, "")
	if err != nil {
		return nil, err
	}
	tv := c.b.finish(v, obj)
	if c.generic {
		val, err := genericValidator(v.Schema)
		if err != nil {
			return nil, err
		}
		tv.generic = val
	}
	return tv, nil
}

type jsonCompiler struct {
	b       builder
	generic bool // some keyword is not compiled: validate generically too
}

// note marks the schema as needing the generic validator when n has a
// keyword the plan does not check.
func (c *jsonCompiler) note(n *node) {
	for _, m := range n.obj {
		if !compiledKeywords[m.k] {
			c.generic = true
		}
	}
}

func (c *jsonCompiler) object(n *node, path []string, pointer string) (*object, error) {
	c.note(n)
	o := &object{pointer: pointer}
	props := n.get("properties")
	if props != nil && !props.isObj {
		return nil, fmt.Errorf("%s: properties must be an object", where(pointer))
	}
	if props != nil {
		for _, p := range props.obj {
			m, err := c.member(p.k, p.v, append(path[:len(path):len(path)], p.k), pointer+"/"+escapePointer(p.k))
			if err != nil {
				return nil, err
			}
			if m.nullable && m.leaf != nil {
				m.leaf.accept |= acceptNull
			}
			o.members = append(o.members, m)
		}
	}
	o.index()
	if req := n.get("required"); req != nil {
		items, ok := req.val.([]node)
		if !ok {
			return nil, fmt.Errorf("%s: required must be an array of property names", where(pointer))
		}
		for _, it := range items {
			name, ok := it.val.(string)
			if !ok {
				return nil, fmt.Errorf("%s: required must be an array of property names", where(pointer))
			}
			i, ok := o.find(name)
			if !ok {
				// Required but not described: only the generic validator
				// knows.
				c.generic = true
				continue
			}
			o.required = append(o.required, i)
		}
		o.maskRequired()
	}
	if ap := n.get("additionalProperties"); ap != nil {
		switch b := ap.val.(type) {
		case bool:
			o.closed = !b
		default:
			c.generic = true // a schema for additional properties
		}
	}
	return o, nil
}

func (o *object) find(name string) (int, bool) {
	for i, m := range o.members {
		if m.name == name {
			return i, true
		}
	}
	return 0, false
}

// jsonTypes reads a schema's "type" as a set, and whether null is in it.
func jsonTypes(n *node) (types []string, nullable bool, err error) {
	t := n.get("type")
	if t == nil {
		return nil, false, nil
	}
	switch v := t.val.(type) {
	case string:
		types = []string{v}
	case []node:
		for _, it := range v {
			s, ok := it.val.(string)
			if !ok {
				return nil, false, errors.New("type must be a string or an array of strings")
			}
			types = append(types, s)
		}
	default:
		return nil, false, errors.New("type must be a string or an array of strings")
	}
	out := types[:0]
	for _, s := range types {
		if s == "null" {
			nullable = true
			continue
		}
		out = append(out, s)
	}
	return out, nullable, nil
}

func (c *jsonCompiler) member(name string, n *node, path []string, pointer string) (member, error) {
	m := member{name: name}
	if b, ok := n.val.(bool); ok && !n.isObj {
		// true: anything; false: nothing (the generic validator says so).
		if !b {
			c.generic = true
		}
		l, err := c.leaf(columnName(path), pointer, colJSON, iceberg.PrimitiveTypes.String, acceptAny, "")
		m.leaf, m.nullable = l, true
		return m, err
	}
	if !n.isObj {
		return m, fmt.Errorf("%s: a property's schema must be an object", where(pointer))
	}
	c.note(n)
	for _, k := range []string{"$ref", "allOf", "anyOf", "oneOf", "not", "if"} {
		if n.get(k) != nil {
			// Composed schemas are validated generically and kept as JSON.
			l, err := c.leaf(columnName(path), pointer, colJSON, iceberg.PrimitiveTypes.String, acceptAny, doc(n))
			m.leaf, m.nullable = l, true
			return m, err
		}
	}
	types, nullable, err := jsonTypes(n)
	if err != nil {
		return m, fmt.Errorf("%s: %w", where(pointer), err)
	}
	m.nullable = nullable
	colName := columnName(path)
	annot, _ := stringOf(n.get(AnnotationType))
	if annot != "" {
		p, s, err := parseDecimalType(annot)
		if err != nil {
			return m, fmt.Errorf("%s: %s: %w", where(pointer), AnnotationType, err)
		}
		accept := uint16(0)
		if len(types) == 0 {
			accept = acceptNumber | acceptString
		}
		for _, t := range types {
			switch t {
			case "number", "integer":
				accept |= acceptNumber
			case "string":
				accept |= acceptString
			default:
				return m, fmt.Errorf("%s: %s %q applies to a number (or a number in a string), not %s", where(pointer), AnnotationType, annot, t)
			}
		}
		l, err := c.leaf(colName, pointer, colDecimal, iceberg.DecimalTypeOf(p, s), accept, doc(n))
		if err != nil {
			return m, err
		}
		l.precision, l.scale = int32(p), int32(s)
		m.leaf = l
		return m, c.constrain(l, n, c.bounds, c.enum, c.subject)
	}
	var kind string
	switch {
	case len(types) == 1:
		kind = types[0]
	case len(types) == 2 && ((types[0] == "integer" && types[1] == "number") || (types[0] == "number" && types[1] == "integer")):
		kind = "number"
	case len(types) == 0 && n.get("properties") != nil:
		kind = "object"
	case len(types) == 0 && n.get("enum") != nil && allStrings(n.get("enum")):
		kind = "string"
	default:
		kind = "" // several types, or none: JSON text
	}
	switch kind {
	case "object":
		if n.get("properties") != nil && len(path) < maxFlattenDepth {
			obj, err := c.object(n, path, pointer)
			if err != nil {
				return m, err
			}
			m.obj = obj
			return m, nil
		}
		l, err := c.leaf(colName, pointer, colJSON, iceberg.PrimitiveTypes.String, acceptObject, doc(n))
		m.leaf = l
		return m, err
	case "array":
		l, err := c.leaf(colName, pointer, colJSON, iceberg.PrimitiveTypes.String, acceptArray, doc(n))
		m.leaf = l
		return m, err
	case "string", "integer":
		// Strings and integers take the same checks but their own bounds;
		// either may be an identifier of a person (subject).
		col, t, accept, limits := colString, iceberg.Type(iceberg.PrimitiveTypes.String), uint16(acceptString), c.lengths
		if format, _ := stringOf(n.get("format")); format == "date-time" {
			col, t = colTimestamp, iceberg.PrimitiveTypes.TimestampTz
		}
		if kind == "integer" {
			col, t, accept, limits = colLong, iceberg.PrimitiveTypes.Int64, acceptNumber, c.bounds
		}
		l, err := c.leaf(colName, pointer, col, t, accept, doc(n))
		if err != nil {
			return m, err
		}
		m.leaf = l
		return m, c.constrain(l, n, limits, c.enum, c.subject)
	case "number":
		l, err := c.leaf(colName, pointer, colDouble, iceberg.PrimitiveTypes.Float64, acceptNumber, doc(n))
		if err != nil {
			return m, err
		}
		if n.get("enum") != nil || n.get("const") != nil {
			c.generic = true
		}
		m.leaf = l
		return m, c.bounds(l, n)
	case "boolean":
		l, err := c.leaf(colName, pointer, colBool, iceberg.PrimitiveTypes.Bool, acceptBool, doc(n))
		if n.get("enum") != nil || n.get("const") != nil {
			c.generic = true
		}
		m.leaf = l
		return m, err
	default:
		l, err := c.leaf(colName, pointer, colJSON, iceberg.PrimitiveTypes.String, acceptAny, doc(n))
		m.leaf = l
		if n.get("enum") != nil || n.get("const") != nil || len(types) > 0 {
			c.generic = true // the generic validator checks the types
		}
		return m, err
	}
}

func (c *jsonCompiler) leaf(col, pointer string, kind uint8, t iceberg.Type, accept uint16, docText string) (*leaf, error) {
	i, err := c.b.add(col, lastSegment(pointer), t, kind, docText)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where(pointer), err)
	}
	return &leaf{col: i, pointer: pointer, kind: kind, accept: accept, minLen: -1, maxLen: -1}, nil
}

// constrain applies the keywords checks compile to leaf l, in order, up to
// the first error.
func (c *jsonCompiler) constrain(l *leaf, n *node, checks ...func(*leaf, *node) error) error {
	for _, check := range checks {
		if err := check(l, n); err != nil {
			return err
		}
	}
	return nil
}

func (c *jsonCompiler) subject(l *leaf, n *node) error {
	if v := n.get(AnnotationSubject); v != nil {
		b, ok := v.val.(bool)
		if !ok {
			return fmt.Errorf("%s: %s must be true or false", where(l.pointer), AnnotationSubject)
		}
		c.b.cols[l.col].Subject = b
	}
	return nil
}

func (c *jsonCompiler) lengths(l *leaf, n *node) error {
	for _, k := range []string{"minLength", "maxLength"} {
		v := n.get(k)
		if v == nil {
			continue
		}
		num, ok := v.val.(json.Number)
		x, err := strconv.Atoi(string(num))
		if !ok || err != nil || x < 0 {
			return fmt.Errorf("%s: %s must be a non-negative integer", where(l.pointer), k)
		}
		if k == "minLength" {
			l.minLen = x
		} else {
			l.maxLen = x
		}
	}
	if p, ok := stringOf(n.get("pattern")); ok {
		re, err := regexp.Compile(p)
		if err != nil {
			// ECMA-262 syntax RE2 does not know: validate generically.
			c.generic = true
			return nil
		}
		l.pattern, l.patternText = re, p
	}
	return nil
}

// enum compiles enum and const for string, integer and decimal leaves.
func (c *jsonCompiler) enum(l *leaf, n *node) error {
	var vals []node
	if e := n.get("enum"); e != nil {
		items, ok := e.val.([]node)
		if !ok {
			return fmt.Errorf("%s: enum must be an array", where(l.pointer))
		}
		vals = items
	}
	if cn := n.get("const"); cn != nil {
		vals = append(vals, *cn)
	}
	if vals == nil {
		return nil
	}
	l.enum = map[string]bool{}
	var shown []string
	for _, v := range vals {
		switch x := v.val.(type) {
		case string:
			if l.kind == colString || l.kind == colTimestamp {
				l.enum[x] = true
			}
			shown = append(shown, strconv.Quote(x))
		case json.Number:
			if l.kind == colLong || l.kind == colDecimal {
				r, ok := new(big.Rat).SetString(string(x))
				if ok {
					l.enum[r.RatString()] = true
				}
			}
			shown = append(shown, string(x))
		case nil:
			// null in an enum allows null (and nullable says so already
			// when "type" includes it).
			shown = append(shown, "null")
		default:
			c.generic = true
		}
	}
	l.enumText = strings.Join(shown, ", ")
	return nil
}

// bounds compiles minimum/maximum (inclusive or exclusive).
func (c *jsonCompiler) bounds(l *leaf, n *node) error {
	type bound struct {
		key       string
		min, excl bool
	}
	for _, b := range []bound{{"minimum", true, false}, {"exclusiveMinimum", true, true}, {"maximum", false, false}, {"exclusiveMaximum", false, true}} {
		v := n.get(b.key)
		if v == nil {
			continue
		}
		num, ok := v.val.(json.Number)
		if !ok {
			if _, isBool := v.val.(bool); isBool {
				c.generic = true // draft-04 boolean exclusive bounds
				continue
			}
			return fmt.Errorf("%s: %s must be a number", where(l.pointer), b.key)
		}
		if err := l.setBound(string(num), b.min, b.excl); err != nil {
			return fmt.Errorf("%s: %s: %w", where(l.pointer), b.key, err)
		}
	}
	return nil
}

// setBound records a bound given as JSON number text.
func (l *leaf) setBound(text string, isMin, excl bool) error {
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		return fmt.Errorf("%q is not a number", text)
	}
	switch l.kind {
	case colDouble:
		f, _ := r.Float64()
		if isMin {
			if !l.hasMin || f > l.minF || (f == l.minF && excl) {
				l.hasMin, l.minF, l.minExcl, l.minText = true, f, excl, text
			}
		} else if !l.hasMax || f < l.maxF || (f == l.maxF && excl) {
			l.hasMax, l.maxF, l.maxExcl, l.maxText = true, f, excl, text
		}
		return nil
	case colLong, colDecimal:
		scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(l.scale)), nil)))
		var v *big.Int
		if isMin {
			v = ceilRat(scaled)
			if excl && scaled.IsInt() {
				v.Add(v, big.NewInt(1))
			}
		} else {
			v = floorRat(scaled)
			if excl && scaled.IsInt() {
				v.Sub(v, big.NewInt(1))
			}
		}
		d, ok := bigToDecimal(v)
		if !ok {
			return nil // beyond any value the column can hold: no bound
		}
		if isMin {
			if !l.hasMin || d.Greater(l.minD) {
				l.hasMin, l.minD, l.minExcl, l.minText = true, d, excl, text
			}
		} else if !l.hasMax || d.Less(l.maxD) {
			l.hasMax, l.maxD, l.maxExcl, l.maxText = true, d, excl, text
		}
		return nil
	}
	return nil
}

func ceilRat(r *big.Rat) *big.Int {
	q, m := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}

func floorRat(r *big.Rat) *big.Int {
	q, _ := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	return q
}

// bigToDecimal converts an integer that fits 38 digits.
func bigToDecimal(v *big.Int) (decimal128.Num, bool) {
	if v.CmpAbs(maxDecimal38) > 0 {
		return decimal128.Num{}, false
	}
	return decimal128.FromBigInt(v), true
}

var maxDecimal38 = new(big.Int).Sub(new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil), big.NewInt(1))

// parseDecimalType reads "decimal(P,S)".
func parseDecimalType(s string) (p, sc int, err error) {
	t := strings.ReplaceAll(strings.ToLower(s), " ", "")
	if !strings.HasPrefix(t, "decimal(") || !strings.HasSuffix(t, ")") {
		return 0, 0, fmt.Errorf("%q is not decimal(P,S)", s)
	}
	ps, ss, ok := strings.Cut(t[len("decimal("):len(t)-1], ",")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not decimal(P,S)", s)
	}
	p, err1 := strconv.Atoi(ps)
	sc, err2 := strconv.Atoi(ss)
	if err1 != nil || err2 != nil || p < 1 || p > 38 || sc < 0 || sc > p {
		return 0, 0, fmt.Errorf("%q: want 1 <= P <= 38 and 0 <= S <= P", s)
	}
	return p, sc, nil
}

func stringOf(n *node) (string, bool) {
	if n == nil {
		return "", false
	}
	s, ok := n.val.(string)
	return s, ok
}

func allStrings(n *node) bool {
	items, ok := n.val.([]node)
	if !ok || len(items) == 0 {
		return false
	}
	for _, it := range items {
		if _, ok := it.val.(string); !ok {
			return false
		}
	}
	return true
}

func doc(n *node) string {
	s, _ := stringOf(n.get("description"))
	return s
}

func where(pointer string) string {
	if pointer == "" {
		return "the payload schema"
	}
	return "property " + pointer
}

// escapePointer escapes a property name for a JSON pointer (RFC 6901).
func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// genericValidator compiles the whole schema with a general JSON Schema
// validator (draft 2020-12 unless $schema says otherwise), for the
// keywords the plan does not compile. References to other documents are
// refused: a schema must be self-contained.
func genericValidator(text string) (func([]byte) *violation, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(refuseLoader{})
	if err := c.AddResource("eventlake:schema.json", doc); err != nil {
		return nil, err
	}
	sch, err := c.Compile("eventlake:schema.json")
	if err != nil {
		return nil, fmt.Errorf("compile the schema: %w", err)
	}
	return func(payload []byte) *violation {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
		if err != nil {
			return &violation{msg: "payload is not valid JSON: " + err.Error()}
		}
		err = sch.Validate(inst)
		if err == nil {
			return nil
		}
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return &violation{msg: err.Error()}
		}
		for len(ve.Causes) > 0 {
			ve = ve.Causes[0]
		}
		ptr := ""
		for _, p := range ve.InstanceLocation {
			ptr += "/" + escapePointer(p)
		}
		return &violation{pointer: ptr, msg: fmt.Sprint(ve.ErrorKind)}
	}, nil
}

type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema references to other documents (%s) are not supported: make the schema self-contained", url)
}

// lastSegment is the last property name of a JSON pointer.
func lastSegment(pointer string) string {
	i := strings.LastIndexByte(pointer, '/')
	return strings.ReplaceAll(strings.ReplaceAll(pointer[i+1:], "~1", "/"), "~0", "~")
}
