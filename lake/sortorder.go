package lake

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// SortKey is one column of a table's write order (its Iceberg default
// sort order): rewritten files hold their rows in this order.
type SortKey struct {
	Column    string
	Desc      bool
	NullsLast bool
}

// String is the key as ParseSortKey reads it: the column, then desc
// and nulls first/last where they differ from Iceberg's defaults
// (ascending with nulls first, descending with nulls last).
func (k SortKey) String() string {
	s := k.Column
	if k.Desc {
		s += " desc"
	}
	if k.NullsLast != k.Desc {
		if k.NullsLast {
			s += " nulls last"
		} else {
			s += " nulls first"
		}
	}
	return s
}

// UnmarshalText reads a key as ParseSortKey does (configuration files).
func (k *SortKey) UnmarshalText(b []byte) error {
	v, err := ParseSortKey(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// MarshalText writes the key as String does.
func (k SortKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// ParseSortKey reads "column [asc|desc] [nulls first|nulls last]".
func ParseSortKey(s string) (SortKey, error) {
	f := strings.Fields(strings.ToLower(s))
	if len(f) == 0 {
		return SortKey{}, fmt.Errorf("sort key %q: no column", s)
	}
	// The column keeps its case; the keywords do not.
	k := SortKey{Column: strings.Fields(s)[0]}
	rest := f[1:]
	if len(rest) > 0 && (rest[0] == "asc" || rest[0] == "desc") {
		k.Desc = rest[0] == "desc"
		rest = rest[1:]
	}
	k.NullsLast = k.Desc
	switch strings.Join(rest, " ") {
	case "":
	case "nulls first":
		k.NullsLast = false
	case "nulls last":
		k.NullsLast = true
	default:
		return SortKey{}, fmt.Errorf("sort key %q: want \"column [asc|desc] [nulls first|nulls last]\"", s)
	}
	return k, nil
}

// WriteOrder is the write order of t, read from its default Iceberg sort
// order, with that order's id (0: the table declares none). A sort field
// eventlake cannot follow (a transform other than identity, a nested or
// dropped column) is an error: the caller decides how to write without it.
func WriteOrder(t *table.Table) ([]SortKey, int, error) {
	so := t.SortOrder()
	if so.Len() == 0 {
		return nil, table.UnsortedSortOrderID, nil
	}
	sc := t.Schema()
	keys := make([]SortKey, 0, so.Len())
	for _, f := range so.Fields() {
		if _, ok := f.Transform.(iceberg.IdentityTransform); !ok || len(f.SourceIDs) != 1 {
			return nil, 0, fmt.Errorf("sort order %d: field %s: only identity transforms of one column are supported", so.OrderID(), f.String())
		}
		fld, ok := sortable(sc, f.SourceID())
		if !ok {
			return nil, 0, fmt.Errorf("sort order %d: column id %d is not a top-level primitive column of the current schema", so.OrderID(), f.SourceID())
		}
		keys = append(keys, SortKey{Column: fld.Name, Desc: f.Direction == table.SortDESC, NullsLast: f.NullOrder == table.NullsLast})
	}
	return keys, so.OrderID(), nil
}

// sortable is sc's top-level primitive column id: the columns eventlake
// writes rows in the order of.
func sortable(sc *iceberg.Schema, id int) (iceberg.NestedField, bool) {
	for _, f := range sc.Fields() {
		if f.ID == id {
			_, ok := f.Type.(iceberg.PrimitiveType)
			return f, ok
		}
	}
	return iceberg.NestedField{}, false
}

// TaskSortOrder is the commit task of write-order changes.
const TaskSortOrder = "sort-order"

// SetWriteOrder makes keys t's default Iceberg sort order, so that every
// engine writing the table (and eventlake's compactor) writes its rows in
// that order. It commits nothing when the table already has it.
func (c *Catalog) SetWriteOrder(ctx context.Context, t *table.Table, keys []SortKey) (*table.Table, error) {
	name := t.Identifier()[len(t.Identifier())-1]
	same := func(t *table.Table) bool {
		have, _, err := WriteOrder(t)
		if err != nil || len(have) != len(keys) {
			return false
		}
		for i := range keys {
			if have[i] != keys[i] {
				return false
			}
		}
		return true
	}
	if same(t) {
		return t, nil
	}
	if _, err := sortOrderOf(t.Schema(), keys); err != nil {
		return nil, fmt.Errorf("table %s: %w", name, err)
	}
	return c.schemaCommitter.Commit(ctx, Change{
		Table: name, Task: TaskSortOrder, Base: t,
		Stage: func(_ context.Context, tx *table.Transaction, _ iceberg.Properties) error {
			staged, err := tx.StagedTable()
			if err != nil {
				return err
			}
			if same(staged.Table) {
				return ErrNothingToCommit
			}
			so, err := sortOrderOf(staged.Schema(), keys)
			if err != nil {
				return fmt.Errorf("table %s: %w", name, err)
			}
			if err := tx.ReplaceSortOrder(so); err != nil {
				return fmt.Errorf("set the sort order of %s: %w", name, err)
			}
			return nil
		},
		// A sort order makes no snapshot: it is applied when the table
		// has it.
		Applied: same,
	})
}

// sortOrderOf is keys as an Iceberg sort order over sc (its id is
// assigned when committed).
func sortOrderOf(sc *iceberg.Schema, keys []SortKey) (table.SortOrder, error) {
	fields := make([]table.SortField, len(keys))
	for i, k := range keys {
		f, ok := sc.FindFieldByName(k.Column)
		if ok {
			_, ok = sortable(sc, f.ID)
		}
		if !ok {
			return table.SortOrder{}, fmt.Errorf("sort key %s: no top-level primitive column %s", k, k.Column)
		}
		fields[i] = table.SortField{SourceIDs: []int{f.ID}, Transform: iceberg.IdentityTransform{},
			Direction: table.SortASC, NullOrder: table.NullsFirst}
		if k.Desc {
			fields[i].Direction = table.SortDESC
		}
		if k.NullsLast {
			fields[i].NullOrder = table.NullsLast
		}
	}
	return table.NewSortOrder(table.InitialSortOrderID, fields)
}
