package readmodel

import (
	"context"

	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// SchemaSources resolves FROM names with the registry's schemas: a type
// view's name (views: view -> event type), an event type's name, or its
// table name (lake.TableName: order.created -> order_created). A type's
// columns are the union of its versions'.
func SchemaSources(set *schema.Set, views map[string]string) Sources {
	return func(name string) (Source, bool) {
		sub := lookupSubject(set, views, name)
		if sub == nil {
			return Source{}, false
		}
		cols := map[string]iceberg.Type{}
		for _, c := range sub.Columns {
			cols[c.Name] = c.Type
		}
		return Source{Type: sub.Name, Columns: cols}, true
	}
}

func lookupSubject(set *schema.Set, views map[string]string, name string) *schema.Subject {
	if t, ok := views[name]; ok {
		return set.Subject(t)
	}
	if sub := set.Subject(name); sub != nil {
		return sub
	}
	for _, sub := range set.Subjects() {
		if lake.TableName(sub.Name) == name {
			return sub
		}
	}
	return nil
}

// LakeSources resolves FROM names with the raw tables' columns: what a
// process without the schema registry (the compactor, backfill) knows of
// the event types the lake holds.
func LakeSources(ctx context.Context, cat *lake.Catalog, views map[string]string) (Sources, error) {
	raws, err := RawTables(ctx, cat)
	if err != nil {
		return nil, err
	}
	types := map[string]map[string]iceberg.Type{}
	for _, tbl := range raws {
		for _, t := range lake.TypesOf(tbl.Properties()) {
			cols := types[t]
			if cols == nil {
				cols = map[string]iceberg.Type{}
				types[t] = cols
			}
			for _, f := range tbl.Schema().Fields() {
				if !lake.IsEnvelopeColumn(f.Name) && f.Name != lake.ReplayIDField().Name {
					cols[f.Name] = f.Type
				}
			}
		}
	}
	return func(name string) (Source, bool) {
		t := name
		if v, ok := views[name]; ok {
			t = v
		}
		if cols, ok := types[t]; ok {
			return Source{Type: t, Columns: cols}, true
		}
		for typ, cols := range types {
			if lake.TableName(typ) == name {
				return Source{Type: typ, Columns: cols}, true
			}
		}
		return Source{}, false
	}, nil
}
