package lake

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"

	"github.com/apache/iceberg-go/table"
)

// Snapshot summary keys written by eventlake.
const (
	// SummaryOffsets holds the Kafka offsets a table covers: for every
	// topic and partition, the offset of the next record that is not yet
	// in the table. It is the source of truth for where ingest resumes.
	SummaryOffsets = "eventlake.kafka-offsets"
	// SummaryCommitID identifies one logical commit, so that a commit whose
	// outcome is unknown (a timeout after sending) can be looked up.
	SummaryCommitID = "eventlake.commit-id"
	// SummaryWriter names the process that made the commit (host/pid).
	SummaryWriter = "eventlake.writer"
)

// Offsets maps topic -> partition -> next offset to consume.
type Offsets map[string]map[int32]int64

// Get returns the stored offset of topic/partition.
func (o Offsets) Get(topic string, partition int32) (int64, bool) {
	off, ok := o[topic][partition]
	return off, ok
}

// Set records the next offset of topic/partition.
func (o Offsets) Set(topic string, partition int32, next int64) {
	m := o[topic]
	if m == nil {
		m = make(map[int32]int64)
		o[topic] = m
	}
	m[partition] = next
}

// Clone returns a deep copy.
func (o Offsets) Clone() Offsets {
	c := make(Offsets, len(o))
	for t, m := range o {
		c[t] = maps.Clone(m)
	}
	return c
}

// Merge returns o with every entry of newer applied on top.
func (o Offsets) Merge(newer Offsets) Offsets {
	c := o.Clone()
	for t, m := range newer {
		for p, off := range m {
			c.Set(t, p, off)
		}
	}
	return c
}

// Total returns the sum of all offsets, a cheap progress figure.
func (o Offsets) Total() int64 {
	var n int64
	for _, m := range o {
		for _, off := range m {
			n += off
		}
	}
	return n
}

// MarshalJSON writes {"topic":{"0":12,"1":7}}.
func (o Offsets) MarshalJSON() ([]byte, error) {
	out := make(map[string]map[string]int64, len(o))
	for t, m := range o {
		mm := make(map[string]int64, len(m))
		for p, off := range m {
			mm[strconv.FormatInt(int64(p), 10)] = off
		}
		out[t] = mm
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads the form written by MarshalJSON.
func (o *Offsets) UnmarshalJSON(b []byte) error {
	var in map[string]map[string]int64
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	res := make(Offsets, len(in))
	for t, m := range in {
		for ps, off := range m {
			p, err := strconv.ParseInt(ps, 10, 32)
			if err != nil {
				return fmt.Errorf("partition %q of topic %q: %w", ps, t, err)
			}
			if off < 0 {
				return fmt.Errorf("negative offset %d for %s/%d", off, t, p)
			}
			res.Set(t, int32(p), off)
		}
	}
	*o = res
	return nil
}

// StoredOffsets returns the offsets recorded by the newest snapshot of the
// table's main branch that carries them, walking back through ancestors so
// that snapshots made by other writers (compaction, expiry, an external
// engine) do not hide them. An empty table has no offsets.
func StoredOffsets(t *table.Table) (Offsets, error) {
	var (
		found Offsets
		err   error
	)
	Walk(t, func(s *table.Snapshot) bool {
		if s.Summary == nil {
			return true
		}
		raw, ok := s.Summary.Properties[SummaryOffsets]
		if !ok {
			return true
		}
		var o Offsets
		if jerr := json.Unmarshal([]byte(raw), &o); jerr != nil {
			err = fmt.Errorf("snapshot %d: parse %s: %w", s.SnapshotID, SummaryOffsets, jerr)
			return false
		}
		found = o
		return false
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		found = Offsets{}
	}
	return found, nil
}

// FindCommit reports whether a snapshot carrying commit id is among the
// ancestors of the table's current snapshot.
func FindCommit(t *table.Table, id string) (int64, bool) {
	var (
		sid   int64
		found bool
	)
	Walk(t, func(s *table.Snapshot) bool {
		if s.Summary != nil && s.Summary.Properties[SummaryCommitID] == id {
			sid, found = s.SnapshotID, true
			return false
		}
		return true
	})
	return sid, found
}

// Walk visits the current snapshot and its ancestors, newest first, until
// fn returns false or the chain ends (a parent expired or never existed).
func Walk(t *table.Table, fn func(*table.Snapshot) bool) {
	md := t.Metadata()
	s := md.CurrentSnapshot()
	for seen := 0; s != nil && seen <= len(md.Snapshots()); seen++ {
		if !fn(s) || s.ParentSnapshotID == nil {
			return
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
}

// CoveredOffsets merges the offsets tables store: what they hold
// together.
func CoveredOffsets(tables []*table.Table) (Offsets, error) {
	out := Offsets{}
	for _, t := range tables {
		off, err := StoredOffsets(t)
		if err != nil {
			return nil, err
		}
		out = out.Merge(off)
	}
	return out, nil
}
