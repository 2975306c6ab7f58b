package schema

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/eventlake/eventlake/schema/registry"
)

// The schemas eventlake ships, one JSON Schema file per event type in
// shipped/ (named <subject>.json). They are registered at start in the
// built-in registry when their subject has no version yet; after that the
// registry is the truth, and teams evolve them like any other subject.
//
//go:embed shipped/*.json
var shippedFS embed.FS

// ShippedSchema is one shipped schema.
type ShippedSchema struct {
	Subject string
	Schema  string
}

// Shipped returns the shipped schemas, by subject.
func Shipped() []ShippedSchema {
	entries, err := fs.Glob(shippedFS, "shipped/*.json")
	if err != nil {
		return nil // the pattern is constant
	}
	var out []ShippedSchema
	for _, e := range entries {
		b, err := shippedFS.ReadFile(e)
		if err != nil {
			continue
		}
		out = append(out, ShippedSchema{Subject: strings.TrimSuffix(path.Base(e), ".json"), Schema: string(b)})
	}
	slices.SortFunc(out, func(a, b ShippedSchema) int { return strings.Compare(a.Subject, b.Subject) })
	return out
}

// ShippedVersions are the shipped schemas as version 1 of their subjects
// (ids 1..n), for tools and tests that run without a registry.
func ShippedVersions() []registry.Version {
	var out []registry.Version
	for i, s := range Shipped() {
		out = append(out, registry.Version{Subject: s.Subject, Version: 1, ID: i + 1, Type: registry.TypeJSON, Schema: s.Schema})
	}
	return out
}

// RegisterShipped registers every shipped schema whose subject has no
// version (live or soft-deleted) in store.
func RegisterShipped(ctx context.Context, store *registry.Store) error {
	for _, s := range Shipped() {
		_, err := store.SubjectVersions(ctx, s.Subject, true)
		if err == nil {
			continue // the subject exists: the registry decides its schema
		}
		if !errors.Is(err, registry.ErrSubjectNotFound) {
			return fmt.Errorf("look up subject %s: %w", s.Subject, err)
		}
		if _, _, err := store.Register(ctx, s.Subject, registry.TypeJSON, s.Schema); err != nil {
			return fmt.Errorf("register the shipped schema of %s: %w", s.Subject, err)
		}
	}
	return nil
}
