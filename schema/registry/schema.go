package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// MaxSchemaBytes bounds the text of one schema.
const MaxSchemaBytes = 1 << 20

// maxNesting bounds how deeply a schema's JSON may nest (arrays and objects
// inside each other): deeper input is refused rather than recursed into.
const maxNesting = 256

// parsed is a schema that was validated: it parses (Avro) or compiles (JSON
// Schema), and has its canonical text and fingerprint.
type parsed struct {
	typ       SchemaType
	canonical string
	// fingerprint identifies the schema across subjects: the hex SHA-256
	// of the type and the canonical text.
	fingerprint string
	avro        avro.Schema // for TypeAvro
	json        any         // for TypeJSON: decoded with json.Number numbers
}

// parseSchema validates text as a schema of type typ and canonicalizes it.
// Errors wrap ErrInvalidSchema and say what is wrong.
func parseSchema(typ SchemaType, text string) (*parsed, error) {
	canonical, fp, err := canonicalize(typ, text)
	if err != nil {
		return nil, err
	}
	p := &parsed{typ: typ, canonical: canonical, fingerprint: fp}
	switch typ {
	case TypeAvro:
		// A fresh cache per parse: hamba's default cache is process-wide,
		// and two versions of a record with the same name must not see
		// each other's definitions.
		s, err := avro.ParseWithCache(canonical, "", &avro.SchemaCache{})
		if err != nil {
			return nil, fmt.Errorf("%w: the Avro schema does not parse: %v", ErrInvalidSchema, err)
		}
		p.avro = s
	case TypeJSON:
		doc, err := decodeJSON(canonical)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidSchema, err)
		}
		if err := compileJSONSchema(doc); err != nil {
			return nil, err
		}
		p.json = doc
	default:
		return nil, fmt.Errorf("%w: schema type %q is not supported: use %q or %q", ErrInvalidSchema, typ, TypeJSON, TypeAvro)
	}
	return p, nil
}

// canonicalize returns the canonical text of a schema and its fingerprint.
// The canonical text is the schema's JSON parsed and written again compactly:
// whitespace and string escapes do not matter, but the order of object keys
// is kept (readers such as the codec may take the column order from the
// order of properties or fields) and numbers are kept as written (1.0 and 1
// are different texts; converting them would lose large integers). Duplicate
// object keys are refused: readers would disagree on which one counts.
func canonicalize(typ SchemaType, text string) (canonical, fingerprint string, err error) {
	if typ != TypeAvro && typ != TypeJSON {
		return "", "", fmt.Errorf("%w: schema type %q is not supported: use %q or %q", ErrInvalidSchema, typ, TypeJSON, TypeAvro)
	}
	if strings.TrimSpace(text) == "" {
		return "", "", fmt.Errorf("%w: the schema is empty: send the schema text in the \"schema\" field", ErrInvalidSchema)
	}
	if len(text) > MaxSchemaBytes {
		return "", "", fmt.Errorf("%w: the schema is %d bytes, more than the limit of %d", ErrInvalidSchema, len(text), MaxSchemaBytes)
	}
	canonical, err = canonicalJSON(text)
	if err != nil {
		return "", "", fmt.Errorf("%w: the schema is not valid JSON: %v", ErrInvalidSchema, err)
	}
	sum := sha256.Sum256([]byte(string(typ) + "\x00" + canonical))
	return canonical, hex.EncodeToString(sum[:]), nil
}

// canonicalJSON re-serializes one JSON value compactly, keeping key order.
func canonicalJSON(text string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var b bytes.Buffer
	if err := writeCanonical(dec, &b, 0); err != nil {
		return "", withOffset(err, dec)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", fmt.Errorf("unexpected data after the end of the schema at byte %d", dec.InputOffset())
	}
	return b.String(), nil
}

func withOffset(err error, dec *json.Decoder) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%v (at byte %d)", se, se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of the schema text")
	}
	return fmt.Errorf("%w (at byte %d)", err, dec.InputOffset())
}

func writeCanonical(dec *json.Decoder, b *bytes.Buffer, depth int) error {
	if depth > maxNesting {
		return fmt.Errorf("the schema nests deeper than %d levels", maxNesting)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			b.WriteByte('{')
			seen := map[string]bool{}
			for i := 0; dec.More(); i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				key, ok := kt.(string)
				if !ok {
					return fmt.Errorf("object key %v is not a string", kt)
				}
				if seen[key] {
					return fmt.Errorf("duplicate key %q in an object", key)
				}
				seen[key] = true
				writeJSONString(b, key)
				b.WriteByte(':')
				if err := writeCanonical(dec, b, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // '}'
				return err
			}
			b.WriteByte('}')
		case '[':
			b.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				if err := writeCanonical(dec, b, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ']'
				return err
			}
			b.WriteByte(']')
		default:
			return fmt.Errorf("unexpected %q", t)
		}
	case string:
		writeJSONString(b, t)
	case json.Number:
		b.WriteString(t.String())
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case nil:
		b.WriteString("null")
	default:
		return fmt.Errorf("unexpected token %v", tok)
	}
	return nil
}

// writeJSONString writes s as a JSON string without HTML escaping.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode's newline
}

// decodeJSON decodes canonical JSON keeping numbers as json.Number.
func decodeJSON(text string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode the schema: %w", err)
	}
	return v, nil
}

// schemaURL is the base URL a JSON Schema is compiled under when it has no
// $id; it is never fetched.
const schemaURL = "urn:eventlake:registry:schema.json"

// compileJSONSchema checks that doc compiles as a JSON Schema (draft 2020-12
// unless its $schema names another draft). References to other documents
// are refused: nothing is loaded from files or the network (the default
// loader of the library would read local files named by a file: $ref).
func compileJSONSchema(doc any) error {
	if _, ok := doc.(map[string]any); !ok {
		if _, ok := doc.(bool); !ok {
			return fmt.Errorf("%w: a JSON Schema must be an object or a boolean, not %s", ErrInvalidSchema, jsonKind(doc))
		}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(refuseLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return fmt.Errorf("%w: the JSON Schema does not compile: %v", ErrInvalidSchema, err)
	}
	if _, err := c.Compile(schemaURL); err != nil {
		return fmt.Errorf("%w: the JSON Schema does not compile: %v", ErrInvalidSchema, err)
	}
	return nil
}

// refuseLoader refuses to load any document a schema references.
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s is outside the schema: references to other documents are not supported yet (put the definition under $defs and refer to it as #/$defs/...)", url)
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}
