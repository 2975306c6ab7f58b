package registry

import (
	"errors"
	"strings"
	"testing"
)

// TestJSONSchemaChecker covers each rule of checkJSONSchema in the BACKWARD
// direction (new reads old) and, where the message differs, FORWARD.
func TestJSONSchemaChecker(t *testing.T) {
	cases := []struct {
		name     string
		old, new string
		forward  bool   // check FORWARD (old reads new) instead of BACKWARD
		want     string // "" compatible; else a part of the only message
	}{
		{"identical", `{"type":"string","minLength":1}`, `{"type":"string","minLength":1}`, false, ""},
		{"annotations only", `{"type":"string","description":"a"}`, `{"type":"string","description":"b","title":"t","x-other":1}`, false, ""},
		{"type changed", `{"type":"number"}`, `{"type":"string"}`, false, "the root schema changed type from number to string"},
		{"integer widened", `{"type":"integer"}`, `{"type":"number"}`, false, ""},
		{"number narrowed", `{"type":"number"}`, `{"type":"integer"}`, false, "changed type from number to integer"},
		{"type added", `{}`, `{"type":"string"}`, false, "changed type from any type to string"},
		{"type dropped", `{"type":"string"}`, `{}`, false, ""},
		{"nullable added", `{"type":"string"}`, `{"type":["string","null"]}`, false, ""},
		{"nullable removed", `{"type":["string","null"]}`, `{"type":"string"}`, false, `changed type from ["string","null"] to string`},
		{"nullable removed, forward", `{"type":["string","null"]}`, `{"type":"string"}`, true, ""},
		{"nested property", `{"properties":{"c":{"properties":{"id":{"type":"string"}}}}}`, `{"properties":{"c":{"properties":{"id":{"type":"integer"}}}}}`, false,
			"field /properties/c/properties/id changed type from string to integer"},
		{"items", `{"type":"array","items":{"type":"string"}}`, `{"type":"array","items":{"type":"boolean"}}`, false, "field /items changed type from string to boolean"},
		{"escaped name", `{"properties":{"a/b":{"type":"string"}}}`, `{"properties":{"a/b":{"type":"number"}}}`, false, "field /properties/a~1b changed type"},
		{"became required", `{"properties":{"a":{"type":"string"}}}`, `{"properties":{"a":{"type":"string"}},"required":["a"]}`, false, "field /properties/a became required"},
		{"new required", `{"properties":{}}`, `{"properties":{"a":{"type":"string"}},"required":["a"]}`, false, "new required field /properties/a"},
		{"new optional", `{"properties":{}}`, `{"properties":{"a":{"type":"string"}}}`, false, ""},
		{"required dropped, forward", `{"properties":{"a":{}},"required":["a"]}`, `{"properties":{"a":{}}}`, true, "field /properties/a is no longer required"},
		{"required removed, forward", `{"properties":{"a":{}},"required":["a"]}`, `{"properties":{}}`, true, "field /properties/a was removed, but the old schema requires it"},
		{"enum lost values", `{"enum":["a","b","c"]}`, `{"enum":["a","b"]}`, false, `the root schema lost enum values ["c"]`},
		{"enum gained values", `{"enum":["a"]}`, `{"enum":["a","b"]}`, false, ""},
		{"enum gained values, forward", `{"enum":["a"]}`, `{"enum":["a","b"]}`, true, `gained enum values ["b"] that the old schema does not accept`},
		{"enum added", `{"type":"string"}`, `{"type":"string","enum":["a"]}`, false, `gained an enum ["a"]`},
		{"const changed", `{"const":"a"}`, `{"const":"b"}`, false, `changed const from "a" to "b"`},
		{"const dropped", `{"const":"a"}`, `{}`, false, ""},
		{"const within enum", `{"const":"a"}`, `{"enum":["a","b"]}`, false, ""},
		{"minimum raised", `{"minimum":0}`, `{"minimum":1}`, false, "tightened its lower bound from minimum 0 to minimum 1"},
		{"minimum lowered", `{"minimum":1}`, `{"minimum":0}`, false, ""},
		{"minimum lowered, forward", `{"minimum":1}`, `{"minimum":0}`, true, "loosened its lower bound from minimum 1 to minimum 0"},
		{"minimum made exclusive", `{"minimum":0}`, `{"exclusiveMinimum":0}`, false, "from minimum 0 to exclusiveMinimum 0"},
		{"exclusive made inclusive", `{"exclusiveMinimum":0}`, `{"minimum":0}`, false, ""},
		{"draft-04 exclusive minimum", `{"minimum":0}`, `{"minimum":0,"exclusiveMinimum":true}`, false, "from minimum 0 to exclusiveMinimum 0"},
		{"minimum added", `{}`, `{"minimum":0}`, false, "from none to minimum 0"},
		{"maximum lowered", `{"maximum":10}`, `{"maximum":9}`, false, "tightened its upper bound from maximum 10 to maximum 9"},
		{"maximum raised", `{"maximum":9}`, `{"exclusiveMaximum":10}`, false, ""},
		{"minLength raised", `{"minLength":1}`, `{"minLength":2}`, false, "tightened minLength from 1 to 2"},
		{"maxLength lowered", `{"maxLength":5}`, `{"maxLength":4}`, false, "tightened maxLength from 5 to 4"},
		{"maxLength added", `{}`, `{"maxLength":4}`, false, "tightened maxLength from none to 4"},
		{"maxLength raised", `{"maxLength":4}`, `{"maxLength":5}`, false, ""},
		{"minItems raised", `{"minItems":0}`, `{"minItems":1}`, false, "tightened minItems from 0 to 1"},
		{"maxItems lowered", `{"maxItems":3}`, `{"maxItems":2}`, false, "tightened maxItems from 3 to 2"},
		{"uniqueItems added", `{}`, `{"uniqueItems":true}`, false, "changed uniqueItems from false to true"},
		{"pattern added", `{"type":"string"}`, `{"type":"string","pattern":"^a"}`, false, `changed pattern from none to "^a"`},
		{"pattern dropped", `{"type":"string","pattern":"^a"}`, `{"type":"string"}`, false, ""},
		{"format changed", `{"format":"date"}`, `{"format":"date-time"}`, false, `changed format from "date" to "date-time"`},
		{"closed over open", `{"properties":{"a":{}}}`, `{"properties":{"a":{}},"additionalProperties":false}`, false,
			"turned additionalProperties to false while the old schema allowed properties the new one does not list"},
		{"closed, property removed", `{"properties":{"a":{},"b":{}},"additionalProperties":false}`, `{"properties":{"a":{}},"additionalProperties":false}`, false,
			"field /properties/b was removed and the new schema does not allow additional properties"},
		{"closed, property added", `{"properties":{"a":{}},"additionalProperties":false}`, `{"properties":{"a":{},"b":{"type":"string"}},"additionalProperties":false}`, false, ""},
		{"open, property removed", `{"properties":{"a":{},"b":{}}}`, `{"properties":{"a":{}}}`, false, ""},
		{"removed property checked against additionalProperties", `{"properties":{"b":{"type":"string"}},"additionalProperties":{"type":"integer"}}`, `{"additionalProperties":{"type":"integer"}}`, false,
			"field /properties/b changed type from string to integer"},
		{"additionalProperties schema over open", `{}`, `{"additionalProperties":{"type":"integer"}}`, false,
			"field /additionalProperties changed type from any type to integer"},
		{"additionalProperties schema narrowed", `{"additionalProperties":{"type":"number"}}`, `{"additionalProperties":{"type":"integer"}}`, false,
			"field /additionalProperties changed type from number to integer"},
		{"oneOf identical", `{"oneOf":[{"type":"string"},{"type":"null"}]}`, `{"oneOf":[{"type":"string"},{"type":"null"}]}`, false, ""},
		{"oneOf changed", `{"oneOf":[{"type":"string"},{"type":"null"}]}`, `{"oneOf":[{"type":"string"}]}`, false, `keyword "oneOf" differs between the versions`},
		{"$ref changed", `{"$defs":{"a":{"type":"string"}},"properties":{"x":{"$ref":"#/$defs/a"}}}`, `{"$defs":{"a":{"type":"number"}},"properties":{"x":{"$ref":"#/$defs/a"}}}`, false,
			`keyword "$defs" differs`},
		{"tuple items changed", `{"items":[{"type":"string"}]}`, `{"items":[{"type":"number"}]}`, false, `keyword "items" differs`},
		{"false schema", `{"type":"string"}`, `false`, false, "changed from a schema that allows values to false"},
		{"from false", `false`, `{"type":"string"}`, false, ""},
		{"true schema", `{"type":"string"}`, `true`, false, ""},
		{"decimal widened", `{"type":"number","x-eventlake-type":"decimal(18,2)"}`, `{"type":"number","x-eventlake-type":"decimal(20,2)"}`, false, ""},
		{"decimal narrowed", `{"type":"number","x-eventlake-type":"decimal(18,2)"}`, `{"type":"number","x-eventlake-type":"decimal(10,2)"}`, false,
			`changed x-eventlake-type from "decimal(18,2)" to "decimal(10,2)"`},
		{"decimal scale changed", `{"x-eventlake-type":"decimal(18,2)"}`, `{"x-eventlake-type":"decimal(20,3)"}`, false, `changed x-eventlake-type from "decimal(18,2)" to "decimal(20,3)"`},
		{"decimal widened, forward", `{"x-eventlake-type":"decimal(18,2)"}`, `{"x-eventlake-type":"decimal(20,2)"}`, true, "changed x-eventlake-type"},
		{"eventlake type added", `{"type":"string"}`, `{"type":"string","x-eventlake-type":"date"}`, false, `changed x-eventlake-type from none to "date"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			oldDoc, err := decodeJSON(tc.old)
			if err != nil {
				t.Fatal(err)
			}
			newDoc, err := decodeJSON(tc.new)
			if err != nil {
				t.Fatal(err)
			}
			var msgs []string
			if tc.forward {
				msgs = checkJSONSchema(oldDoc, newDoc, false)
			} else {
				msgs = checkJSONSchema(newDoc, oldDoc, true)
			}
			if tc.want == "" {
				if len(msgs) > 0 {
					t.Fatalf("want compatible, got %q", msgs)
				}
				return
			}
			if len(msgs) != 1 || !strings.Contains(msgs[0], tc.want) {
				t.Fatalf("want one message containing %q, got %q", tc.want, msgs)
			}
		})
	}
}

// TestAvroMessagesNameTheField checks that nested Avro problems name the
// path to the field and say old -> new in both directions.
func TestAvroMessagesNameTheField(t *testing.T) {
	old := `{"type":"record","name":"Order","fields":[
		{"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"id","type":"long"}]}},
		{"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[{"name":"qty","type":"int"}]}}},
		{"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}}]}`
	new := `{"type":"record","name":"Order","fields":[
		{"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"id","type":"string"}]}},
		{"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[{"name":"qty","type":"int"},{"name":"sku","type":"string"}]}}},
		{"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW"]}}]}`
	po, err := parseSchema(TypeAvro, old)
	if err != nil {
		t.Fatal(err)
	}
	pn, err := parseSchema(TypeAvro, new)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(compareSchemas(Backward, pn, po), "\n")
	for _, want := range []string{
		"field customer.id changed type from long to string",
		"new field lines[].sku has no default",
		"enum field status lost symbols [PAID]",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("BACKWARD messages\n%s\ndo not contain %q", got, want)
		}
	}
	got = strings.Join(compareSchemas(Forward, pn, po), "\n")
	if !strings.Contains(got, "field customer.id changed type from long to string") || strings.Contains(got, "sku") {
		t.Errorf("FORWARD messages\n%s\nshould name customer.id and not the new field sku (old readers ignore it)", got)
	}
}

// TestCanonicalize: whitespace and escapes do not matter, key order and
// number spelling do, duplicate keys and trailing data are refused.
func TestCanonicalize(t *testing.T) {
	a, fa, err := canonicalize(TypeJSON, " {\"b\" : 1,\n \"a\": \"\\u0078<\" } ")
	if err != nil {
		t.Fatal(err)
	}
	if a != `{"b":1,"a":"x<"}` {
		t.Fatalf("canonical = %s", a)
	}
	_, fb, _ := canonicalize(TypeJSON, `{"b":1,"a":"x<"}`)
	_, fc, _ := canonicalize(TypeAvro, `{"b":1,"a":"x<"}`)
	_, fd, _ := canonicalize(TypeJSON, `{"a":"x<","b":1}`)
	if fa != fb || fa == fc || fa == fd {
		t.Fatalf("fingerprints: same text %v, other type %v, other key order %v", fa == fb, fa != fc, fa != fd)
	}
	for _, bad := range []string{``, `  `, `{"a":1,"a":2}`, `{"a":1} x`, `{"a":`, `[1,]`, strings.Repeat("[", 300) + strings.Repeat("]", 300)} {
		if _, _, err := canonicalize(TypeJSON, bad); !errors.Is(err, ErrInvalidSchema) {
			t.Errorf("%.40q: want ErrInvalidSchema, got %v", bad, err)
		}
	}
	if _, err := parseSchema(TypeJSON, `{"$ref":"file:///etc/passwd"}`); !errors.Is(err, ErrInvalidSchema) || !strings.Contains(err.Error(), "not supported yet") {
		t.Errorf("a schema referring to a local file: %v", err)
	}
	if _, err := parseSchema("PROTOBUF", `{}`); !errors.Is(err, ErrInvalidSchema) {
		t.Errorf("protobuf: %v", err)
	}
}

// FuzzCanonicalize feeds arbitrary text to the schema decoder: it must not
// panic, and what it accepts must be a fixed point.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"type":"string"}`, ` [1, 2.50, "\u00e9", {"a": null}] `, `{"a":{"b":[true,false]}}`, `"x"`, `{"a":1,"a":2}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, fp, err := canonicalize(TypeJSON, s)
		if err != nil {
			return
		}
		c2, fp2, err := canonicalize(TypeJSON, c)
		if err != nil || c2 != c || fp2 != fp {
			t.Fatalf("canonical form %q is not a fixed point: %q %v", c, c2, err)
		}
	})
}

// FuzzJSONSchemaSelfCompatible: every schema that compiles is compatible
// with itself in both directions, and the checker never panics.
func FuzzJSONSchemaSelfCompatible(f *testing.F) {
	for _, s := range []string{
		`{"type":"object","properties":{"a":{"type":["string","null"],"maxLength":3}},"required":["a"],"additionalProperties":false}`,
		`{"type":"array","items":{"enum":[1,2]},"minItems":1}`,
		`{"oneOf":[{"const":1},{"exclusiveMinimum":3}],"x-eventlake-type":"decimal(5,1)"}`,
		`{"properties":{"x":false},"additionalProperties":{"type":"integer"}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseSchema(TypeJSON, s)
		if err != nil {
			return
		}
		if msgs := compareSchemas(FullTransitive, p, p); len(msgs) > 0 {
			t.Fatalf("%s is incompatible with itself: %q", s, msgs)
		}
	})
}

// FuzzAvroSelfCompatible: every Avro schema that parses is compatible with
// itself under FULL, and neither parsing nor the check panics.
func FuzzAvroSelfCompatible(f *testing.F) {
	for _, s := range []string{
		`{"type":"record","name":"P","fields":[{"name":"a","type":["null","string"],"default":null},{"name":"b","type":{"type":"array","items":"long"}}]}`,
		`{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}`,
		`{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}`,
		`{"type":"fixed","name":"F","size":16,"logicalType":"decimal","precision":20,"scale":2}`,
		`"string"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseSchema(TypeAvro, s)
		if err != nil {
			return
		}
		if msgs := compareSchemas(Full, p, p); len(msgs) > 0 {
			t.Fatalf("%s is incompatible with itself: %q", s, msgs)
		}
	})
}
