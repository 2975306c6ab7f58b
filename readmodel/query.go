package readmodel

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventlake/eventlake/lake"
)

// Query selects and merges a model's rows: what GET /v1/models/{name}
// answers.
type Query struct {
	// From and To bound the buckets, [From, To) in microseconds: a bucket
	// is in when it starts in the range.
	From, To int64
	// Where keeps the rows whose key columns equal the values.
	Where map[string]Value
	// Group names the key columns kept: rows that differ only in others
	// merge. nil keeps every key.
	Group []string
	// Every merges buckets into spans of this many microseconds (a
	// multiple of the model's width, counted from the Unix epoch); 0 keeps
	// the model's buckets, and All merges the whole range into one row.
	Every int64
}

// All is Query.Every for one row per key over the whole range.
const All = -1

// CheckQuery returns why q does not fit the model (nil: it does).
func (m *Model) CheckQuery(q Query) error {
	for c := range q.Where {
		if m.keyIndex(c) < 0 {
			return fmt.Errorf("%s is not a key column of %s (its keys: %s)", c, m.Name, m.KeyNames())
		}
	}
	for _, c := range q.Group {
		if m.keyIndex(c) < 0 {
			return fmt.Errorf("group: %s is not a key column of %s (its keys: %s)", c, m.Name, m.KeyNames())
		}
	}
	w := m.Bucket.Width.Microseconds()
	if q.Every > 0 && q.Every%w != 0 {
		return fmt.Errorf("every: %s is not a whole number of %s's buckets (%s)", time.Duration(q.Every)*time.Microsecond, m.Name, m.WidthName())
	}
	return nil
}

func (m *Model) keyIndex(name string) int {
	for i, k := range m.Keys {
		if k.Name == name {
			return i
		}
	}
	return -1
}

// KeyNames lists the model's key columns for messages ("none" without).
func (m *Model) KeyNames() string {
	if len(m.Keys) == 0 {
		return "none"
	}
	var out []string
	for _, k := range m.Keys {
		out = append(out, k.Name)
	}
	return strings.Join(out, ", ")
}

// Answer merges the rows of states (the committed table's, the events
// after its offsets') that q selects, in bucket and key order.
func (m *Model) Answer(q Query, states ...*State) []*Row {
	w := m.Bucket.Width.Microseconds()
	type filter struct {
		idx int
		v   Value
	}
	var filters []filter
	for c, v := range q.Where {
		filters = append(filters, filter{m.keyIndex(c), v})
	}
	keep := make([]bool, len(m.Keys))
	for i := range keep {
		keep[i] = q.Group == nil
	}
	for _, c := range q.Group {
		keep[m.keyIndex(c)] = true
	}
	regroup := q.Group != nil || q.Every != 0
	first := m.Bucket.Of(q.From)
	if first < q.From {
		first += w
	}
	match := func(r *Row) bool {
		for _, f := range filters {
			if !Equal(m.Keys[f.idx].Type, r.Keys[f.idx], f.v) {
				return false
			}
		}
		return true
	}
	if !regroup {
		// The rows in bucket order, each key once (the first state that
		// holds it), without maps: the common case of a dashboard.
		var rows []*Row
		in := make([]map[string]*Row, len(states))
		for b := first; b < q.To; b += w {
			start := len(rows)
			// A bucket held by one state alone (every closed bucket but
			// the few the hot tier changed since the last commit): its
			// rows, without looking their keys up in the others.
			holders := 0
			for si, s := range states {
				if in[si] = s.buckets[b]; len(in[si]) > 0 {
					holders++
				}
			}
			if holders == 1 {
				for _, bm := range in {
					for _, r := range bm {
						if match(r) {
							rows = append(rows, r)
						}
					}
				}
				if len(rows)-start > 1 {
					slices.SortFunc(rows[start:], func(a, b *Row) int { return strings.Compare(a.Key, b.Key) })
				}
				continue
			}
			for si, s := range states {
				for k, r := range s.buckets[b] {
					held := false
					for _, e := range states[:si] {
						held = held || e.Get(k) != nil
					}
					if !held && match(r) {
						rows = append(rows, Total(k, states...))
					}
				}
			}
			if len(rows)-start > 1 {
				slices.SortFunc(rows[start:], func(a, b *Row) int { return strings.Compare(a.Key, b.Key) })
			}
		}
		return rows
	}
	out := map[string]*Row{}
	var order []string
	seen := map[string]bool{}
	vals := make([]Value, len(m.Inputs))
	for b := first; b < q.To; b += w {
		for _, s := range states {
			s.InBucket(b, func(r *Row) {
				if seen[r.Key] {
					return
				}
				seen[r.Key] = true
				if !match(r) {
					return
				}
				bucket := b
				switch {
				case q.Every == All:
					bucket = q.From
				case q.Every > 0:
					bucket = floorTo(b, q.Every)
				}
				for i := range m.Keys {
					if keep[i] {
						vals[m.keyIdx[i]] = r.Keys[i]
					} else {
						vals[m.keyIdx[i]] = Value{Null: true}
					}
				}
				key := string(m.appendKey(nil, bucket, vals))
				g := out[key]
				if g == nil {
					bk, keys := m.decodeKey(key)
					g = &Row{Key: key, Bucket: bk, Keys: keys, Accs: make([]Acc, len(m.Aggs))}
					out[key] = g
					order = append(order, key)
				}
				for _, st := range states {
					if sr := st.Get(r.Key); sr != nil {
						m.mergeAccs(g.Accs, sr.Accs)
					}
				}
			})
		}
	}
	rows := make([]*Row, 0, len(order))
	for _, k := range order {
		rows = append(rows, out[k])
	}
	slices.SortFunc(rows, func(a, b *Row) int {
		if a.Bucket != b.Bucket {
			if a.Bucket < b.Bucket {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	return rows
}

func floorTo(v, w int64) int64 {
	q := v / w
	if v%w < 0 {
		q--
	}
	return q * w
}

// Answer is a model's answer from the hot tier: Rows merge the committed
// table at SnapshotID (which covers every event below Offsets) with every
// event read after those offsets, up to Read (exclusive) per partition.
type Answer struct {
	Rows []*Row
	// SnapshotID is the committed snapshot (HasSnapshot false: none yet),
	// committed at SnapshotTime.
	SnapshotID   int64
	HasSnapshot  bool
	SnapshotTime time.Time
	Offsets      lake.Offsets
	Read         lake.Offsets
	// Closed is the event time (microseconds) up to which buckets are
	// closed: the watermark has passed their end (0: none yet). A late
	// event may still change them, through re-aggregation.
	Closed int64
}

// Errors of a hot tier's answers.
var (
	// ErrNotMaintained: the hot tier does not maintain the model.
	ErrNotMaintained = errors.New("read model not maintained by this process's hot tier")
	// ErrLoading: the hot tier is still loading (or building) the model.
	ErrLoading = errors.New("the hot tier is still loading the read model")
)
