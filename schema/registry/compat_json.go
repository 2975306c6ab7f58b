package registry

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// checkJSONSchema is the structural compatibility check of JSON Schemas. It
// answers: does every document valid under writer also validate under
// reader? BACKWARD calls it with the new schema as reader and the old one as
// writer (the new schema must read old data); FORWARD with the roles swapped
// (old readers must read new data); FULL both ways. newIsReader only says
// which one is new, so that messages can say "from <old> to <new>".
//
// It walks both schemas together from the root through properties, items and
// additionalProperties, and reports (for the BACKWARD direction; FORWARD is
// the same check with old and new swapped):
//
//   - type: the reader must accept every type the writer allows. "integer"
//     is covered by "number" (widening), not the other way round; a missing
//     type means any type, so adding one narrows. type may be a string or an
//     array such as ["string","null"].
//   - required: a property required by the reader but not by the writer
//     ("became required", or "new required field").
//   - enum and const: every value the writer allows must be allowed by the
//     reader (an enum that lost values, a const that changed or appeared).
//   - bounds: minimum/exclusiveMinimum may only go down and
//     maximum/exclusiveMaximum only up (inclusive and exclusive bounds are
//     combined, and draft-04's boolean exclusiveMinimum is understood);
//     minLength, minItems, minProperties may only go down, maxLength,
//     maxItems, maxProperties only up; uniqueItems may not appear.
//   - pattern, multipleOf, format: a reader may drop them, not add or change
//     them (regular expressions and formats are not compared for inclusion).
//   - additionalProperties: turning it false while the writer allowed
//     properties the reader does not list is refused, as is a property the
//     writer lists that the reader dropped while not allowing additional
//     properties. When the reader's additionalProperties is a schema, the
//     writer's additionalProperties (any value when absent) and the
//     properties the reader dropped are checked against it.
//   - x-eventlake-type (e.g. "decimal(18,2)"), the lake column type: any
//     change is refused except a decimal whose precision the reader widens
//     with the same scale.
//   - any other validation keyword (oneOf, anyOf, allOf, not, $ref, $defs,
//     patternProperties, prefixItems, if/then/else, dependent*, ...): it is
//     not checked structurally, so any difference between the two schemas
//     is reported as a possible incompatibility; identical is fine.
//     Annotations (title, description, default, examples, $comment, ...)
//     and other x- keywords are ignored.
//
// One assumption keeps the common evolution possible: a property the writer
// does not list is taken to be absent from its data even when the writer
// allows additional properties, so adding an optional property is
// compatible. (Confluent's checker is stricter and refuses that for open
// content models.) The check is conservative elsewhere: it may refuse a pair
// that is compatible (for instance a new oneOf that accepts more), never the
// other way round for the keywords it understands.
func checkJSONSchema(reader, writer any, newIsReader bool) []string {
	c := &jsonCheck{newIsReader: newIsReader}
	c.compare(reader, writer, "")
	return c.msgs
}

type jsonCheck struct {
	newIsReader bool
	msgs        []string
}

func (c *jsonCheck) add(format string, args ...any) {
	c.msgs = append(c.msgs, fmt.Sprintf(format, args...))
}

// oldNew orders a reader and a writer value as old and new.
func (c *jsonCheck) oldNew(r, w string) (old, new string) {
	if c.newIsReader {
		return w, r
	}
	return r, w
}

// handledKeyword reports keywords that compare checks structurally.
func handledKeyword(k string) bool {
	switch k {
	case "type", "properties", "required", "enum", "const", "items", "additionalProperties",
		"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
		"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
		"uniqueItems", "pattern", "multipleOf", "format", "x-eventlake-type":
		return true
	}
	return false
}

// annotationKeyword reports keywords that do not change which documents are
// valid.
func annotationKeyword(k string) bool {
	switch k {
	case "$schema", "$id", "$anchor", "$comment", "$vocabulary", "title", "description", "default",
		"examples", "deprecated", "readOnly", "writeOnly", "contentEncoding", "contentMediaType",
		"contentSchema":
		return true
	}
	return strings.HasPrefix(k, "x-")
}

func fieldName(path string) string {
	if path == "" {
		return "the root schema"
	}
	return "field " + path
}

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func (c *jsonCheck) compare(r, w any, path string) {
	if wb, ok := w.(bool); ok {
		if !wb {
			return // the writer allows nothing: anything reads it
		}
		w = map[string]any{}
	}
	if rb, ok := r.(bool); ok {
		if !rb {
			old, new := c.oldNew("false (no value allowed)", "a schema that allows values")
			c.add("%s changed from %s to %s", fieldName(path), old, new)
			return
		}
		r = map[string]any{}
	}
	rm, rok := r.(map[string]any)
	wm, wok := w.(map[string]any)
	if !rok || !wok {
		return // not a schema; compileJSONSchema refuses these at registration
	}

	c.eventlakeType(rm, wm, path)
	c.types(rm, wm, path)
	c.values(rm, wm, path)
	c.numberBounds(rm, wm, path)
	for _, k := range []string{"minLength", "minItems", "minProperties"} {
		c.countMin(rm, wm, k, path)
	}
	for _, k := range []string{"maxLength", "maxItems", "maxProperties"} {
		c.countMax(rm, wm, k, path)
	}
	if rm["uniqueItems"] == true && wm["uniqueItems"] != true {
		old, new := c.oldNew("true", "false")
		c.add("%s changed uniqueItems from %s to %s", fieldName(path), old, new)
	}
	for _, k := range []string{"pattern", "multipleOf", "format"} {
		if rv, ok := rm[k]; ok && !sameJSON(rv, wm[k]) {
			old, new := c.oldNew(showJSON(rv), showJSON(wm[k]))
			c.add("%s changed %s from %s to %s", fieldName(path), k, old, new)
		}
	}
	c.required(rm, wm, path)
	c.properties(rm, wm, path)
	c.items(rm, wm, path)
	c.otherKeywords(rm, wm, path)
}

// showJSON renders a keyword's value for a message; absent is "none".
func showJSON(v any) string {
	if v == nil {
		return "none"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func sameJSON(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return showJSON(a) == showJSON(b)
}

// jsonTypes returns the types a schema allows, nil meaning any.
func jsonTypes(m map[string]any) []string {
	switch t := m["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func showTypes(ts []string) string {
	switch len(ts) {
	case 0:
		return "any type"
	case 1:
		return ts[0]
	}
	b, _ := json.Marshal(ts)
	return string(b)
}

func (c *jsonCheck) types(rm, wm map[string]any, path string) {
	rt, wt := jsonTypes(rm), jsonTypes(wm)
	if rt == nil {
		return
	}
	covered := wt != nil
	for _, t := range wt {
		if slices.Contains(rt, t) || (t == "integer" && slices.Contains(rt, "number")) {
			continue
		}
		covered = false
	}
	if !covered {
		old, new := c.oldNew(showTypes(rt), showTypes(wt))
		c.add("%s changed type from %s to %s", fieldName(path), old, new)
	}
}

// allowedValues returns the values a schema restricts data to (enum, or
// const), or nil when it does not restrict them.
func allowedValues(m map[string]any) []any {
	if v, ok := m["const"]; ok {
		return []any{v}
	}
	if e, ok := m["enum"].([]any); ok {
		return e
	}
	return nil
}

func (c *jsonCheck) values(rm, wm map[string]any, path string) {
	if cv, ok := rm["const"]; ok && !sameJSON(cv, wm["const"]) {
		old, new := c.oldNew(showJSON(cv), showJSON(wm["const"]))
		c.add("%s changed const from %s to %s", fieldName(path), old, new)
		return
	}
	re, ok := rm["enum"].([]any)
	if !ok {
		return
	}
	wv := allowedValues(wm)
	if wv == nil {
		if c.newIsReader {
			c.add("%s gained an enum %s: the old schema allowed any value", fieldName(path), showJSON(re))
		} else {
			c.add("%s dropped its enum %s: the old schema accepts only those values", fieldName(path), showJSON(re))
		}
		return
	}
	var missing []any
	for _, v := range wv {
		if !slices.ContainsFunc(re, func(e any) bool { return sameJSON(e, v) }) {
			missing = append(missing, v)
		}
	}
	if len(missing) == 0 {
		return
	}
	if c.newIsReader {
		c.add("%s lost enum values %s", fieldName(path), showJSON(missing))
	} else {
		c.add("%s gained enum values %s that the old schema does not accept", fieldName(path), showJSON(missing))
	}
}

// bound is a numeric bound of a schema.
type bound struct {
	set       bool
	v         float64
	exclusive bool
	text      string // for messages, e.g. "minimum 0"
}

func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

// lowerBound combines minimum and exclusiveMinimum (a number since draft 6,
// a boolean modifying minimum in draft 4). upper selects the maximum side.
func lowerUpper(m map[string]any, upper bool) bound {
	incl, excl := "minimum", "exclusiveMinimum"
	stricter := func(a, b float64) bool { return a > b }
	if upper {
		incl, excl = "maximum", "exclusiveMaximum"
		stricter = func(a, b float64) bool { return a < b }
	}
	var b bound
	if v, ok := number(m[incl]); ok {
		b = bound{set: true, v: v, exclusive: m[excl] == true, text: incl + " " + m[incl].(json.Number).String()}
		if b.exclusive {
			b.text = excl + " " + m[incl].(json.Number).String()
		}
	}
	if v, ok := number(m[excl]); ok {
		if !b.set || stricter(v, b.v) || v == b.v {
			b = bound{set: true, v: v, exclusive: true, text: excl + " " + m[excl].(json.Number).String()}
		}
	}
	return b
}

func (c *jsonCheck) numberBounds(rm, wm map[string]any, path string) {
	for _, upper := range []bool{false, true} {
		rb, wb := lowerUpper(rm, upper), lowerUpper(wm, upper)
		if !rb.set {
			continue
		}
		ok := wb.set
		if ok {
			tighter := rb.v > wb.v
			if upper {
				tighter = rb.v < wb.v
			}
			if tighter || (rb.v == wb.v && rb.exclusive && !wb.exclusive) {
				ok = false
			}
		}
		if ok {
			continue
		}
		side := "lower"
		if upper {
			side = "upper"
		}
		wt := wb.text
		if !wb.set {
			wt = "none"
		}
		old, new := c.oldNew(rb.text, wt)
		c.add("%s %s its %s bound from %s to %s", fieldName(path), c.narrowVerb(), side, old, new)
	}
}

// narrowVerb says what happened from old to new when the reader is
// narrower than the writer.
func (c *jsonCheck) narrowVerb() string {
	if c.newIsReader {
		return "tightened"
	}
	return "loosened"
}

func count(m map[string]any, k string) (int64, bool) {
	n, ok := m[k].(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	return int64(f), err == nil
}

func (c *jsonCheck) countMin(rm, wm map[string]any, k, path string) {
	rv, ok := count(rm, k)
	if !ok {
		return
	}
	wv, _ := count(wm, k) // absent: 0
	if rv > wv {
		old, new := c.oldNew(strconv.FormatInt(rv, 10), strconv.FormatInt(wv, 10))
		c.add("%s %s %s from %s to %s", fieldName(path), c.narrowVerb(), k, old, new)
	}
}

func (c *jsonCheck) countMax(rm, wm map[string]any, k, path string) {
	rv, ok := count(rm, k)
	if !ok {
		return
	}
	wv, wok := count(wm, k)
	if !wok || rv < wv {
		ws := "none"
		if wok {
			ws = strconv.FormatInt(wv, 10)
		}
		old, new := c.oldNew(strconv.FormatInt(rv, 10), ws)
		c.add("%s %s %s from %s to %s", fieldName(path), c.narrowVerb(), k, old, new)
	}
}

func stringSet(v any) []string {
	a, _ := v.([]any)
	var out []string
	for _, e := range a {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func (c *jsonCheck) required(rm, wm map[string]any, path string) {
	wreq := stringSet(wm["required"])
	wprops, _ := wm["properties"].(map[string]any)
	for _, name := range stringSet(rm["required"]) {
		if slices.Contains(wreq, name) {
			continue
		}
		_, listed := wprops[name]
		p := fieldName(path + "/properties/" + pointerEscape(name))
		switch {
		case c.newIsReader && listed:
			c.add("%s became required", p)
		case c.newIsReader:
			c.add("new required %s", p)
		case listed:
			c.add("%s is no longer required, but the old schema requires it", p)
		default:
			c.add("%s was removed, but the old schema requires it", p)
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *jsonCheck) properties(rm, wm map[string]any, path string) {
	rprops, _ := rm["properties"].(map[string]any)
	wprops, _ := wm["properties"].(map[string]any)
	rap, rapSet := rm["additionalProperties"]
	wap, wapSet := wm["additionalProperties"]
	rClosed := rapSet && rap == false
	wClosed := wapSet && wap == false

	for _, name := range sortedKeys(wprops) {
		p := path + "/properties/" + pointerEscape(name)
		if rs, ok := rprops[name]; ok {
			c.compare(rs, wprops[name], p)
			continue
		}
		switch {
		case rClosed && c.newIsReader:
			c.add("%s was removed and the new schema does not allow additional properties", fieldName(p))
		case rClosed:
			c.add("%s was added but the old schema does not allow additional properties", fieldName(p))
		case rapSet && rap != true:
			c.compare(rap, wprops[name], p)
		}
	}
	for _, name := range sortedKeys(rprops) {
		if _, ok := wprops[name]; ok {
			continue
		}
		// The writer does not list it: its data has it only through
		// additionalProperties (see the assumption in checkJSONSchema).
		if wapSet && !wClosed && wap != true {
			c.compare(rprops[name], wap, path+"/properties/"+pointerEscape(name))
		}
	}

	if !rapSet || rap == true || wClosed {
		return
	}
	if rClosed {
		if c.newIsReader {
			c.add("%s turned additionalProperties to false while the old schema allowed properties the new one does not list", fieldName(path))
		} else {
			c.add("%s allows additional properties, which the old schema forbids", fieldName(path))
		}
		return
	}
	// The reader's additionalProperties is a schema.
	if !wapSet || wap == true {
		wap = map[string]any{}
	}
	c.compare(rap, wap, path+"/additionalProperties")
}

func (c *jsonCheck) items(rm, wm map[string]any, path string) {
	ri, rok := rm["items"]
	wi, wok := wm["items"]
	if !rok {
		return
	}
	if _, tuple := ri.([]any); tuple {
		return // draft-04 tuple form: otherKeywords compares it as a whole
	}
	if _, tuple := wi.([]any); tuple {
		return
	}
	if !wok {
		wi = map[string]any{}
	}
	c.compare(ri, wi, path+"/items")
}

// otherKeywords reports keywords compare does not understand that differ.
func (c *jsonCheck) otherKeywords(rm, wm map[string]any, path string) {
	keys := map[string]bool{}
	for k := range rm {
		keys[k] = true
	}
	for k := range wm {
		keys[k] = true
	}
	var differ []string
	for k := range keys {
		tuple := k == "items" && (isSchemaList(rm[k]) || isSchemaList(wm[k]))
		if (handledKeyword(k) && !tuple) || annotationKeyword(k) {
			continue
		}
		if !reflect.DeepEqual(rm[k], wm[k]) {
			differ = append(differ, k)
		}
	}
	sort.Strings(differ)
	for _, k := range differ {
		c.add("%s: keyword %q differs between the versions and is not checked structurally, so the change is treated as incompatible (keep it identical, or set the subject's compatibility to NONE if the change is safe)", fieldName(path), k)
	}
}

// isSchemaList reports an items array of schemas (the tuple form of draft
// 4 to 7), which compare does not walk.
func isSchemaList(v any) bool {
	a, _ := v.([]any)
	for _, e := range a {
		switch e.(type) {
		case map[string]any, bool:
		default:
			return false
		}
	}
	return len(a) > 0
}

// eventlakeType checks the x-eventlake-type annotation (the lake column
// type): the reader may only widen a decimal's precision at the same scale.
func (c *jsonCheck) eventlakeType(rm, wm map[string]any, path string) {
	rv, _ := rm["x-eventlake-type"].(string)
	wv, _ := wm["x-eventlake-type"].(string)
	if rv == wv {
		return
	}
	rp, rs, rok := parseDecimal(rv)
	wp, ws, wok := parseDecimal(wv)
	if rok && wok && rs == ws && rp >= wp {
		return
	}
	show := func(s string) string {
		if s == "" {
			return "none"
		}
		return strconv.Quote(s)
	}
	old, new := c.oldNew(show(rv), show(wv))
	c.add("%s changed x-eventlake-type from %s to %s (only widening a decimal's precision with the same scale is compatible)", fieldName(path), old, new)
}

// parseDecimal reads "decimal(p,s)".
func parseDecimal(s string) (precision, scale int, ok bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	inner, found := strings.CutPrefix(s, "decimal(")
	if !found {
		return 0, 0, false
	}
	inner, found = strings.CutSuffix(inner, ")")
	if !found {
		return 0, 0, false
	}
	ps, ss, found := strings.Cut(inner, ",")
	if !found {
		return 0, 0, false
	}
	p, err1 := strconv.Atoi(strings.TrimSpace(ps))
	sc, err2 := strconv.Atoi(strings.TrimSpace(ss))
	if err1 != nil || err2 != nil || p <= 0 || sc < 0 || sc > p {
		return 0, 0, false
	}
	return p, sc, true
}
