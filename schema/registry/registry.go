// Package registry is eventlake's schema registry. It sits in the schema
// layer on top of the lake's foundation: schemas are stored in the catalog's
// SQL database (SQLite or PostgreSQL), so that every process of a deployment
// shares them, and the codec reads them from here.
//
//	ingest -> streamer -> (lake tables) -> compactor -> query
//	   \___ schemas (registry, envelope, codec) on catalog ___/
//
// It has three parts:
//
//   - Store (store.go): the schemas, versions and compatibility settings in
//     tables prefixed eventlake_sr_, with the write side (Register, Delete*,
//     SetCompatibility) and the read side the codec uses (Source).
//   - NewHandler (http.go): the Confluent Schema Registry REST API over a
//     Store, so that existing clients (franz-go's pkg/sr, Confluent
//     serializers, curl) work unchanged. It is mounted at the root of the
//     query service's HTTP listener (see Paths).
//   - Client (client.go): a Source reading an external Confluent-compatible
//     registry instead of the built-in one.
//
// Schema types are JSON Schema (draft 2020-12 unless the schema's $schema
// says otherwise) and Avro. Compatibility rules are in compat.go (Avro) and
// compat_json.go (JSON Schema).
package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// SchemaType is the kind of a schema, spelled as in the Confluent API.
type SchemaType string

// Schema types.
const (
	TypeAvro SchemaType = "AVRO"
	TypeJSON SchemaType = "JSON"
)

// ParseSchemaType reads a schemaType as clients send it: empty means Avro
// (as in Confluent's API), case does not matter.
func ParseSchemaType(s string) (SchemaType, error) {
	switch t := SchemaType(strings.ToUpper(strings.TrimSpace(s))); t {
	case "":
		return TypeAvro, nil
	case TypeAvro, TypeJSON:
		return t, nil
	default:
		return "", fmt.Errorf("%w: schema type %q is not supported: use %q or %q", ErrInvalidSchema, s, TypeJSON, TypeAvro)
	}
}

// Version is one registered schema version of a subject.
type Version struct {
	Subject string
	Version int
	// ID is the global schema id: the same schema text (after
	// canonicalization) has the same id under every subject.
	ID   int
	Type SchemaType
	// Schema is the schema text in its canonical form: compact JSON with
	// the object keys in the order they were registered.
	Schema string
	// Deleted is true for a soft-deleted version.
	Deleted bool
}

// Source is what readers (the codec) need; the built-in Store and the
// external Client both implement it.
type Source interface {
	// Versions returns every version of every subject that is not
	// soft-deleted, ordered by subject then version.
	Versions(ctx context.Context) ([]Version, error)
	// ByID returns the schema with global id (also when the versions using
	// it are soft-deleted). Subject and Version name one version that uses
	// it: the first by subject then version that is not soft-deleted, else
	// the first soft-deleted one (then Deleted is true). It returns an error
	// wrapping ErrSchemaNotFound when no schema has that id.
	ByID(ctx context.Context, id int) (Version, error)
}

// Generationer is optionally implemented by sources that can say cheaply
// whether anything changed: the generation differs after every change, so a
// reader polls it and calls Versions only when it moved.
type Generationer interface {
	Generation(ctx context.Context) (int64, error)
}

// Errors the Store returns (wrapped, with what was being done); the HTTP
// handler maps each to its Confluent error code.
var (
	// ErrSubjectNotFound: no version of the subject exists (40401).
	ErrSubjectNotFound = errors.New("subject not found")
	// ErrVersionNotFound: the subject has no such version (40402).
	ErrVersionNotFound = errors.New("version not found")
	// ErrSchemaNotFound: no schema has that id, or the subject has no
	// version with that schema (40403).
	ErrSchemaNotFound = errors.New("schema not found")
	// ErrSubjectSoftDeleted: every version of the subject is soft-deleted
	// (40404).
	ErrSubjectSoftDeleted = errors.New("subject is soft-deleted")
	// ErrSubjectNotSoftDeleted: a permanent delete of a subject that was not
	// soft-deleted first (40405).
	ErrSubjectNotSoftDeleted = errors.New("subject was not soft-deleted first")
	// ErrVersionSoftDeleted: the version is already soft-deleted (40406).
	ErrVersionSoftDeleted = errors.New("version is soft-deleted")
	// ErrVersionNotSoftDeleted: a permanent delete of a version that was
	// not soft-deleted first (40407).
	ErrVersionNotSoftDeleted = errors.New("version was not soft-deleted first")
	// ErrNoSubjectConfig: the subject has no compatibility level of its own
	// (40408).
	ErrNoSubjectConfig = errors.New("subject has no compatibility level of its own")
	// ErrInvalidSchema: the schema does not parse or compile, or uses
	// something the registry does not support (42201).
	ErrInvalidSchema = errors.New("invalid schema")
	// ErrInvalidVersion: a version that is not a positive number, "latest"
	// or -1 (42202).
	ErrInvalidVersion = errors.New("invalid version")
	// ErrInvalidCompatibility: an unknown compatibility level (42203).
	ErrInvalidCompatibility = errors.New("invalid compatibility level")
	// ErrInvalidSubject: an empty subject name or one with control
	// characters (42208).
	ErrInvalidSubject = errors.New("invalid subject")
	// ErrIncompatible: the schema breaks the subject's compatibility rule
	// (409). The error is an *IncompatibleError with the details.
	ErrIncompatible = errors.New("schema is incompatible")
)

// IncompatibleError is returned by Register when the schema breaks the
// subject's compatibility level. errors.Is(err, ErrIncompatible) is true.
type IncompatibleError struct {
	Subject string
	Level   Compatibility
	// Messages name the earlier version, the rule and the field, e.g.
	// `incompatible with version 1 of "payment.captured" under BACKWARD:
	// field /properties/amount changed type from number to string`.
	Messages []string
}

func (e *IncompatibleError) Error() string {
	return "schema is incompatible: " + strings.Join(e.Messages, "; ")
}

// Unwrap makes errors.Is(err, ErrIncompatible) true.
func (e *IncompatibleError) Unwrap() error { return ErrIncompatible }

// Compatibility is a compatibility level, spelled as in the Confluent API.
type Compatibility string

// Compatibility levels. BACKWARD: the new schema reads data written with
// the latest version; FORWARD: the latest version reads data written with
// the new schema; FULL: both. The _TRANSITIVE variants check every version
// that is not soft-deleted instead of only the latest; NONE checks nothing.
const (
	Backward           Compatibility = "BACKWARD"
	BackwardTransitive Compatibility = "BACKWARD_TRANSITIVE"
	Forward            Compatibility = "FORWARD"
	ForwardTransitive  Compatibility = "FORWARD_TRANSITIVE"
	Full               Compatibility = "FULL"
	FullTransitive     Compatibility = "FULL_TRANSITIVE"
	None               Compatibility = "NONE"
)

// DefaultCompatibility applies when neither the subject nor the registry has
// a level set.
const DefaultCompatibility = Backward

// ParseCompatibility reads a compatibility level; case does not matter.
func ParseCompatibility(s string) (Compatibility, error) {
	switch c := Compatibility(strings.ToUpper(strings.TrimSpace(s))); c {
	case Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive, None:
		return c, nil
	default:
		return "", fmt.Errorf("%w: %q is not one of BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE", ErrInvalidCompatibility, s)
	}
}

// transitive reports whether c checks every version, not only the latest.
func (c Compatibility) transitive() bool { return strings.HasSuffix(string(c), "_TRANSITIVE") }

// backward reports whether the new schema must read old data.
func (c Compatibility) backward() bool {
	return c == Backward || c == BackwardTransitive || c == Full || c == FullTransitive
}

// forward reports whether old schemas must read new data.
func (c Compatibility) forward() bool {
	return c == Forward || c == ForwardTransitive || c == Full || c == FullTransitive
}

// validSubject checks a subject name: any non-empty text without control
// characters (event types such as "order.created" and topic subjects such as
// "orders.created-value" are typical).
func validSubject(s string) error {
	if s == "" {
		return fmt.Errorf("%w: the subject name is empty", ErrInvalidSubject)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: subject %q contains a control character", ErrInvalidSubject, s)
		}
	}
	return nil
}
