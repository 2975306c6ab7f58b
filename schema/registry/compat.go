package registry

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"
)

// priorVersion is an earlier version of a subject that a new schema is
// checked against.
type priorVersion struct {
	version int
	schema  *parsed
}

// checkCompatibility returns why p breaks level against the earlier versions
// prior (not soft-deleted, ascending): against the latest one, or against
// all of them for the transitive levels. No messages means compatible. Each
// message names the version, the subject, the rule and the field.
func checkCompatibility(subject string, level Compatibility, p *parsed, prior []priorVersion) []string {
	if level == None || len(prior) == 0 {
		return nil
	}
	if !level.transitive() {
		prior = prior[len(prior)-1:]
	}
	var msgs []string
	for _, pv := range prior {
		for _, d := range compareSchemas(level, p, pv.schema) {
			msgs = append(msgs, fmt.Sprintf("incompatible with version %d of %q under %s: %s", pv.version, subject, level, d))
		}
	}
	return msgs
}

// compareSchemas returns the problems of new against one old schema under
// level's direction(s), without duplicates.
func compareSchemas(level Compatibility, new, old *parsed) []string {
	if new.typ != old.typ {
		return []string{fmt.Sprintf("the schema type changed from %s to %s (a subject keeps one schema type: register the new type under another subject)", old.typ, new.typ)}
	}
	var out []string
	add := func(msgs []string) {
		for _, m := range msgs {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	if level.backward() {
		add(compareOne(new, old, true))
	}
	if level.forward() {
		add(compareOne(old, new, false))
	}
	return out
}

// compareOne checks that reader reads data written with writer.
func compareOne(reader, writer *parsed, newIsReader bool) []string {
	if reader.typ == TypeJSON {
		return checkJSONSchema(reader.json, writer.json, newIsReader)
	}
	return checkAvro(reader.avro, writer.avro, newIsReader)
}

// checkAvro decides with hamba/avro's SchemaCompatibility (Avro's schema
// resolution rules: promotions int->long->float->double, string<->bytes,
// reader fields without a writer field need a default, enum symbols, union
// branches, fixed sizes, names and aliases). When it refuses, locateAvro
// walks both schemas to name the fields that break, since hamba's own error
// names neither the field nor old and new; hamba's message is the fallback.
// Logical types (decimal precision, timestamps) are not compared, as in
// hamba.
func checkAvro(reader, writer avro.Schema, newIsReader bool) []string {
	sc := avro.NewSchemaCompatibility()
	err := sc.Compatible(reader, writer)
	if err == nil {
		return nil
	}
	a := &avroLocator{sc: sc, newIsReader: newIsReader}
	a.locate(reader, writer, "")
	if len(a.msgs) == 0 {
		who := "the old schema cannot read data written with the new one"
		if newIsReader {
			who = "the new schema cannot read data written with the old one"
		}
		return []string{fmt.Sprintf("%s: %v", who, err)}
	}
	return a.msgs
}

type avroLocator struct {
	sc          *avro.SchemaCompatibility
	newIsReader bool
	msgs        []string
}

func (a *avroLocator) add(format string, args ...any) {
	a.msgs = append(a.msgs, fmt.Sprintf(format, args...))
}

func (a *avroLocator) oldNew(r, w string) (old, new string) {
	if a.newIsReader {
		return w, r
	}
	return r, w
}

func avroField(path string) string {
	if path == "" {
		return "the root schema"
	}
	return "field " + path
}

func deref(s avro.Schema) avro.Schema {
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema()
	}
	return s
}

// avroTypeName renders a schema's type for a message.
func avroTypeName(s avro.Schema) string {
	s = deref(s)
	switch t := s.(type) {
	case avro.NamedSchema:
		return fmt.Sprintf("%s %s", t.Type(), t.FullName())
	case *avro.ArraySchema:
		return "array<" + avroTypeName(t.Items()) + ">"
	case *avro.MapSchema:
		return "map<" + avroTypeName(t.Values()) + ">"
	case *avro.UnionSchema:
		names := make([]string, 0, len(t.Types()))
		for _, b := range t.Types() {
			names = append(names, avroTypeName(b))
		}
		return "[" + strings.Join(names, ", ") + "]"
	case *avro.PrimitiveSchema:
		if l := t.Logical(); l != nil {
			return fmt.Sprintf("%s (%s)", t.Type(), l.Type())
		}
	}
	return string(s.Type())
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// locate explains why reader cannot read writer (which hamba refused).
func (a *avroLocator) locate(r, w avro.Schema, path string) {
	r, w = deref(r), deref(w)
	switch {
	case r.Type() == avro.Record && w.Type() == avro.Record:
		rr, wr := r.(*avro.RecordSchema), w.(*avro.RecordSchema)
		if !a.sameName(rr, wr, path) {
			return
		}
		for _, rf := range rr.Fields() {
			fp := joinPath(path, rf.Name())
			wf := findField(wr.Fields(), rf)
			if wf == nil {
				if rf.HasDefault() {
					continue
				}
				if a.newIsReader {
					a.add("new %s has no default, so old data cannot be read (give it a default, or make it a union with null and default null)", avroField(fp))
				} else {
					a.add("%s was removed, but the old schema has no default for it", avroField(fp))
				}
				continue
			}
			if a.sc.Compatible(rf.Type(), wf.Type()) != nil {
				a.locate(rf.Type(), wf.Type(), fp)
			}
		}
	case r.Type() == avro.Array && w.Type() == avro.Array:
		a.locate(r.(*avro.ArraySchema).Items(), w.(*avro.ArraySchema).Items(), path+"[]")
	case r.Type() == avro.Map && w.Type() == avro.Map:
		a.locate(r.(*avro.MapSchema).Values(), w.(*avro.MapSchema).Values(), path+"{}")
	case r.Type() == avro.Enum && w.Type() == avro.Enum:
		re, we := r.(*avro.EnumSchema), w.(*avro.EnumSchema)
		if !a.sameName(re, we, path) {
			return
		}
		var missing []string
		for _, s := range we.Symbols() {
			if !slices.Contains(re.Symbols(), s) {
				missing = append(missing, s)
			}
		}
		if a.newIsReader {
			a.add("enum %s lost symbols %v and has no default symbol", avroField(path), missing)
		} else {
			a.add("enum %s gained symbols %v that the old schema does not know and the old schema has no default symbol", avroField(path), missing)
		}
	case r.Type() == avro.Fixed && w.Type() == avro.Fixed:
		rf, wf := r.(*avro.FixedSchema), w.(*avro.FixedSchema)
		if !a.sameName(rf, wf, path) {
			return
		}
		old, new := a.oldNew(fmt.Sprint(rf.Size()), fmt.Sprint(wf.Size()))
		a.add("fixed %s changed size from %s to %s", avroField(path), old, new)
	case w.Type() == avro.Union:
		// Every writer branch must be readable; descend into the branch of
		// the same kind when the reader has one.
		for _, wb := range w.(*avro.UnionSchema).Types() {
			if a.sc.Compatible(r, wb) == nil {
				continue
			}
			if rb := sameKind(r, wb); rb != nil && rb.Type() != avro.Union {
				a.locate(rb, wb, path)
				continue
			}
			a.changedType(r, w, path)
			return
		}
	case r.Type() == avro.Union:
		if rb := sameKind(r, w); rb != nil {
			a.locate(rb, w, path)
			return
		}
		a.changedType(r, w, path)
	default:
		a.changedType(r, w, path)
	}
}

func (a *avroLocator) changedType(r, w avro.Schema, path string) {
	old, new := a.oldNew(avroTypeName(r), avroTypeName(w))
	a.add("%s changed type from %s to %s", avroField(path), old, new)
}

// sameName reports (and explains) whether two named schemas match by name
// or by the reader's aliases.
func (a *avroLocator) sameName(r, w avro.NamedSchema, path string) bool {
	if r.Name() == w.Name() || slices.Contains(r.Aliases(), w.FullName()) {
		return true
	}
	old, new := a.oldNew(r.FullName(), w.FullName())
	a.add("%s %s changed name from %s to %s (add the old name to the new schema's aliases)", r.Type(), avroField(path), old, new)
	return false
}

// findField finds the writer field a reader field reads: same name, or a
// name among the reader field's aliases (hamba's rule).
func findField(fields []*avro.Field, rf *avro.Field) *avro.Field {
	for _, f := range fields {
		if f.Name() == rf.Name() || slices.Contains(rf.Aliases(), f.Name()) {
			return f
		}
	}
	return nil
}

// sameKind returns the branch of union (or union itself when it is not a
// union) with the same type and, for named types, the same name as s.
func sameKind(union, s avro.Schema) avro.Schema {
	s = deref(s)
	branches := []avro.Schema{union}
	if u, ok := union.(*avro.UnionSchema); ok {
		branches = u.Types()
	}
	for _, b := range branches {
		b = deref(b)
		if b.Type() != s.Type() {
			continue
		}
		if bn, ok := b.(avro.NamedSchema); ok {
			if sn, ok := s.(avro.NamedSchema); ok && bn.FullName() != sn.FullName() {
				continue
			}
		}
		return b
	}
	return nil
}
