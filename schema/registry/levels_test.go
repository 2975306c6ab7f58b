package registry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/eventlake/eventlake/schema/registry"
)

// jsonObj builds an object JSON Schema from "name:type" properties; a name
// ending in ! is required, a type may carry an enum as "string[a|b]".
func jsonObj(props ...string) string {
	var ps, req []string
	for _, p := range props {
		name, typ, _ := strings.Cut(p, ":")
		if n, ok := strings.CutSuffix(name, "!"); ok {
			name = n
			req = append(req, fmt.Sprintf("%q", name))
		}
		schema := fmt.Sprintf(`{"type":%q}`, typ)
		if t, enum, ok := strings.Cut(typ, "["); ok {
			vals := strings.Split(strings.TrimSuffix(enum, "]"), "|")
			for i := range vals {
				vals[i] = fmt.Sprintf("%q", vals[i])
			}
			schema = fmt.Sprintf(`{"type":%q,"enum":[%s]}`, t, strings.Join(vals, ","))
		}
		ps = append(ps, fmt.Sprintf("%q:%s", name, schema))
	}
	return fmt.Sprintf(`{"type":"object","properties":{%s},"required":[%s]}`, strings.Join(ps, ","), strings.Join(req, ","))
}

// avroRec builds an Avro record from "name:type" fields; "name:type=default"
// gives a default (JSON).
func avroRec(fields ...string) string {
	var fs []string
	for _, f := range fields {
		name, typ, _ := strings.Cut(f, ":")
		typ, def, hasDef := strings.Cut(typ, "=")
		if strings.HasPrefix(typ, "[") {
			fs = append(fs, fmt.Sprintf(`{"name":%q,"type":%s`, name, typ))
		} else {
			fs = append(fs, fmt.Sprintf(`{"name":%q,"type":%q`, name, typ))
		}
		if hasDef {
			fs[len(fs)-1] += `,"default":` + def
		}
		fs[len(fs)-1] += "}"
	}
	return fmt.Sprintf(`{"type":"record","name":"Payment","fields":[%s]}`, strings.Join(fs, ","))
}

// TestCompatibilityLevels registers a history (under NONE), sets a level
// and registers one more schema: every level has a case that passes and
// one that is refused, for JSON Schema and Avro, and the transitive levels
// have a schema compatible with the latest version but not with version 1.
func TestCompatibilityLevels(t *testing.T) {
	ctx := context.Background()
	store := sqliteStore(t)
	J, A := registry.TypeJSON, registry.TypeAvro
	cases := []struct {
		name    string
		typ     registry.SchemaType
		level   registry.Compatibility
		history []string
		schema  string
		refused string // "" when accepted; else a part of the message
	}{
		{"json backward: new optional field", J, registry.Backward,
			[]string{jsonObj("id!:string", "amount:number")}, jsonObj("id!:string", "amount:number", "note:string"), ""},
		{"json backward: changed type", J, registry.Backward,
			[]string{jsonObj("id!:string", "amount:number")}, jsonObj("id!:string", "amount:string"),
			"version 1 of %q under BACKWARD: field /properties/amount changed type from number to string"},
		{"json backward: integer widened to number", J, registry.Backward,
			[]string{jsonObj("id!:string", "qty:integer")}, jsonObj("id!:string", "qty:number"), ""},
		{"json backward: only latest, v1 differs", J, registry.Backward,
			[]string{jsonObj("status:string"), jsonObj("status:string[a|b]")}, jsonObj("status:string[a|b]", "note:string"), ""},
		{"json backward_transitive: new optional fields", J, registry.BackwardTransitive,
			[]string{jsonObj("id!:string"), jsonObj("id!:string", "a:string")}, jsonObj("id!:string", "a:string", "b:string"), ""},
		{"json backward_transitive: compatible with latest, not with v1", J, registry.BackwardTransitive,
			[]string{jsonObj("status:string"), jsonObj("status:string[a|b]")}, jsonObj("status:string[a|b]", "note:string"),
			`version 1 of %q under BACKWARD_TRANSITIVE: field /properties/status gained an enum ["a","b"]`},
		{"json forward: removed optional field", J, registry.Forward,
			[]string{jsonObj("id!:string", "amount:number")}, jsonObj("id!:string"), ""},
		{"json forward: new required field", J, registry.Forward,
			[]string{jsonObj("id!:string")}, jsonObj("id!:string", "amount!:number"), ""},
		{"json forward: no longer required", J, registry.Forward,
			[]string{jsonObj("id!:string", "amount:number")}, jsonObj("id:string", "amount:number"),
			"under FORWARD: field /properties/id is no longer required, but the old schema requires it"},
		{"json forward: integer widened to number", J, registry.Forward,
			[]string{jsonObj("qty:integer")}, jsonObj("qty:number"),
			"under FORWARD: field /properties/qty changed type from integer to number"},
		{"json forward_transitive: new fields", J, registry.ForwardTransitive,
			[]string{jsonObj("id!:string"), jsonObj("id!:string", "a:string")}, jsonObj("id!:string", "a:string", "b!:string"), ""},
		{"json forward_transitive: compatible with latest, not with v1", J, registry.ForwardTransitive,
			[]string{jsonObj("id!:string"), jsonObj("id:string")}, jsonObj("id:string", "note:string"),
			"version 1 of %q under FORWARD_TRANSITIVE: field /properties/id is no longer required"},
		{"json full: new optional field", J, registry.Full,
			[]string{jsonObj("id!:string")}, jsonObj("id!:string", "note:string"), ""},
		{"json full: new required field", J, registry.Full,
			[]string{jsonObj("id!:string")}, jsonObj("id!:string", "note!:string"),
			"under FULL: new required field /properties/note"},
		{"json full_transitive: new optional fields", J, registry.FullTransitive,
			[]string{jsonObj("id!:string"), jsonObj("id!:string", "a:string")}, jsonObj("id!:string", "a:string", "b:string"), ""},
		{"json full_transitive: compatible with latest, not with v1", J, registry.FullTransitive,
			[]string{jsonObj("status:string"), jsonObj("status:string[a|b]")}, jsonObj("status:string[a|b]", "note:string"),
			"version 1 of %q under FULL_TRANSITIVE: field /properties/status gained an enum"},
		{"json none: anything", J, registry.None,
			[]string{jsonObj("id!:string")}, jsonObj("id!:integer"), ""},
		{"json none: an invalid schema is still refused", J, registry.None,
			[]string{jsonObj("id!:string")}, `{"type":"objekt"}`, "invalid schema"},

		{"avro backward: new field with default", A, registry.Backward,
			[]string{avroRec("id:string")}, avroRec("id:string", "amount:double=0"), ""},
		{"avro backward: int promoted to long", A, registry.Backward,
			[]string{avroRec("id:string", "qty:int")}, avroRec("id:string", "qty:long"), ""},
		{"avro backward: new field without default", A, registry.Backward,
			[]string{avroRec("id:string")}, avroRec("id:string", "amount:double"),
			"version 1 of %q under BACKWARD: new field amount has no default"},
		{"avro backward: long narrowed to int", A, registry.Backward,
			[]string{avroRec("id:string", "qty:long")}, avroRec("id:string", "qty:int"),
			"under BACKWARD: field qty changed type from long to int"},
		{"avro backward: a union lost null", A, registry.Backward,
			[]string{avroRec(`note:["null","string"]=null`)}, avroRec("note:string"),
			`field note changed type from [null, string] to string`},
		{"avro backward_transitive: defaults everywhere", A, registry.BackwardTransitive,
			[]string{avroRec("id:string"), avroRec("id:string", "a:double=0")}, avroRec("id:string", "a:double=0", "b:double=0"), ""},
		{"avro backward_transitive: compatible with latest, not with v1", A, registry.BackwardTransitive,
			[]string{avroRec("id:string"), avroRec("id:string", "amount:double")}, avroRec("id:string", "amount:double", "c:string=\"\""),
			"version 1 of %q under BACKWARD_TRANSITIVE: new field amount has no default"},
		{"avro forward: new field without default", A, registry.Forward,
			[]string{avroRec("id:string")}, avroRec("id:string", "amount:double"), ""},
		{"avro forward: removed field without default", A, registry.Forward,
			[]string{avroRec("id:string", "amount:double")}, avroRec("id:string"),
			"under FORWARD: field amount was removed, but the old schema has no default for it"},
		{"avro forward_transitive: new fields", A, registry.ForwardTransitive,
			[]string{avroRec("id:string"), avroRec("id:string", "a:double")}, avroRec("id:string", "a:double", "b:double"), ""},
		{"avro forward_transitive: compatible with latest, not with v1", A, registry.ForwardTransitive,
			[]string{avroRec("id:string", "amount:double"), avroRec("id:string")}, avroRec("id:string", "note:string"),
			"version 1 of %q under FORWARD_TRANSITIVE: field amount was removed"},
		{"avro full: new field with default", A, registry.Full,
			[]string{avroRec("id:string")}, avroRec("id:string", "amount:double=0"), ""},
		{"avro full: new field without default", A, registry.Full,
			[]string{avroRec("id:string")}, avroRec("id:string", "amount:double"),
			"under FULL: new field amount has no default"},
		{"avro full: int promoted to long is one way only", A, registry.Full,
			[]string{avroRec("qty:int")}, avroRec("qty:long"),
			"under FULL: field qty changed type from int to long"},
		{"avro full_transitive: defaults everywhere", A, registry.FullTransitive,
			[]string{avroRec("id:string"), avroRec("id:string", "a:double=0")}, avroRec("id:string", "a:double=0", "b:double=0"), ""},
		{"avro full_transitive: compatible with latest, not with v1", A, registry.FullTransitive,
			[]string{avroRec("id:string"), avroRec("id:string", "amount:double")}, avroRec("id:string", "amount:double", "c:string=\"\""),
			"version 1 of %q under FULL_TRANSITIVE: new field amount has no default"},
		{"avro none: anything", A, registry.None,
			[]string{avroRec("id:string")}, avroRec("id:int"), ""},
		{"avro none: an invalid schema is still refused", A, registry.None,
			[]string{avroRec("id:string")}, `{"type":"record","name":"P","fields":[{"name":"id"}]}`, "invalid schema"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			subject := fmt.Sprintf("case-%d", i)
			if err := store.SetCompatibility(ctx, subject, registry.None); err != nil {
				t.Fatal(err)
			}
			for _, h := range tc.history {
				if _, _, err := store.Register(ctx, subject, tc.typ, h); err != nil {
					t.Fatalf("history: %v", err)
				}
			}
			if err := store.SetCompatibility(ctx, subject, tc.level); err != nil {
				t.Fatal(err)
			}
			// The check endpoint's answer agrees with registration.
			msgs, checkErr := store.CheckCompatibility(ctx, subject, registry.Latest, tc.typ, tc.schema)
			v, created, err := store.Register(ctx, subject, tc.typ, tc.schema)
			if tc.refused == "" {
				if err != nil || checkErr != nil || len(msgs) > 0 {
					t.Fatalf("want accepted, got %v (check: %v %q)", err, checkErr, msgs)
				}
				if !created || v.Version != len(tc.history)+1 {
					t.Fatalf("registered %+v created=%v", v, created)
				}
				return
			}
			if err == nil {
				t.Fatalf("want refused (%s), got accepted as %+v", tc.refused, v)
			}
			want := tc.refused
			if strings.Contains(want, "%q") {
				want = fmt.Sprintf(want, subject)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not contain %q", err, want)
			}
			var inc *registry.IncompatibleError
			if errors.As(err, &inc) {
				if !errors.Is(err, registry.ErrIncompatible) || inc.Level != tc.level {
					t.Fatalf("incompatible error %+v", inc)
				}
				if checkErr != nil || len(msgs) == 0 || !strings.Contains(strings.Join(msgs, "\n"), want) {
					t.Fatalf("check endpoint disagrees: %q %v", msgs, checkErr)
				}
			} else if !errors.Is(err, registry.ErrInvalidSchema) {
				t.Fatalf("refused with %v, neither incompatible nor invalid", err)
			}
			if vs, _ := store.SubjectVersions(ctx, subject, true); len(vs) != len(tc.history) {
				t.Fatalf("a refused schema left versions %v", vs)
			}
		})
	}
}

// TestSchemaTypeCannotChange: a subject keeps its schema type under every
// level but NONE.
func TestSchemaTypeCannotChange(t *testing.T) {
	ctx := context.Background()
	store := sqliteStore(t)
	if _, _, err := store.Register(ctx, "s", registry.TypeJSON, jsonObj("id!:string")); err != nil {
		t.Fatal(err)
	}
	_, _, err := store.Register(ctx, "s", registry.TypeAvro, avroRec("id:string"))
	if !errors.Is(err, registry.ErrIncompatible) || !strings.Contains(err.Error(), "the schema type changed from JSON to AVRO") {
		t.Fatalf("want incompatible schema type, got %v", err)
	}
}
