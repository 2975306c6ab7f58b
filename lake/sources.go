package lake

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Sources: every raw table records, in its properties, how many events
// of each envelope source it holds and when ingest last committed one
// (PropSourcePrefix). Ingest sets them in the commit that appends the
// events (AppendCountingSources), so that the counts are exact as the
// rows are: a batch that is not committed is not counted, and one that
// is committed is counted once.

// MaxSources and MaxSourceBytes bound the sources a raw table keeps a
// key for (their keys and values together), so that a producer writing a
// new or long source into every event cannot grow the table's metadata,
// which every commit rewrites, without bound. The events of further
// sources are counted together under PropSourceOther.
const (
	MaxSources     = 1000
	MaxSourceBytes = 64 << 10
)

// SourceSeen is what a raw table records of one envelope source.
type SourceSeen struct {
	Source string
	// Events are the events of the source the table holds (as committed:
	// a later erasure or retention does not subtract).
	Events int64
	// LastSeen is when ingest last committed an event of the source
	// (millisecond precision).
	LastSeen time.Time
}

// SourceCounts are one batch's events per source, for
// AppendCountingSources.
type SourceCounts struct {
	// Events per source (the envelope's source, as received).
	Events map[string]int64
	// Other are events of sources beyond MaxSources in the batch.
	Other int64
}

// Empty reports whether the batch counted no event.
func (c SourceCounts) Empty() bool { return len(c.Events) == 0 && c.Other == 0 }

// SourceKey is the property key of a source: PropSourcePrefix and the
// source with every byte other than a letter, digit, '.', '_' or '-'
// percent-encoded (%XX), so that keys are plain ASCII whatever a
// producer puts in its envelopes, and two sources never share a key.
func SourceKey(source string) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(PropSourcePrefix)+len(source))
	b = append(b, PropSourcePrefix...)
	for i := 0; i < len(source); i++ {
		c := source[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			b = append(b, c)
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

// sourceOfKey reverses SourceKey; false for a key that is not a source's
// or not escaped as SourceKey escapes.
func sourceOfKey(key string) (string, bool) {
	s, ok := strings.CutPrefix(key, PropSourcePrefix)
	if !ok || s == "" {
		return "", false
	}
	if !strings.Contains(s, "%") {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b = append(b, byte(v))
		i += 2
	}
	return string(b), true
}

// formatSourceValue is the value of a source's key.
func formatSourceValue(events, lastSeenMs int64) string {
	return strconv.FormatInt(events, 10) + "," + strconv.FormatInt(lastSeenMs, 10)
}

// parseSourceValue reads a source key's value.
func parseSourceValue(v string) (events, lastSeenMs int64, err error) {
	n, ms, ok := strings.Cut(v, ",")
	if !ok {
		return 0, 0, fmt.Errorf("source count %q: want events,last_seen_unix_ms", v)
	}
	if events, err = strconv.ParseInt(n, 10, 64); err != nil || events < 0 {
		return 0, 0, fmt.Errorf("source count %q: events %q is not a count", v, n)
	}
	if lastSeenMs, err = strconv.ParseInt(ms, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("source count %q: last seen %q is not unix milliseconds", v, ms)
	}
	return events, lastSeenMs, nil
}

// SourcesOf lists the sources a raw table's properties record, by
// source, and the events of sources beyond MaxSources (Events 0: none).
// A key whose value does not parse (set by hand) is left out.
func SourcesOf(p iceberg.Properties) (sources []SourceSeen, other SourceSeen) {
	for k, v := range p {
		src, ok := sourceOfKey(k)
		if !ok {
			continue
		}
		n, ms, err := parseSourceValue(v)
		if err != nil {
			continue
		}
		sources = append(sources, SourceSeen{Source: src, Events: n, LastSeen: time.UnixMilli(ms).UTC()})
	}
	slices.SortFunc(sources, func(a, b SourceSeen) int { return strings.Compare(a.Source, b.Source) })
	if v, ok := p[PropSourceOther]; ok {
		if n, ms, err := parseSourceValue(v); err == nil {
			other = SourceSeen{Events: n, LastSeen: time.UnixMilli(ms).UTC()}
		}
	}
	return sources, other
}

// MergeSources returns the property updates that add batch, committed
// at at, to the counts in have: the properties of the table the commit
// is staged on. It must be called on the table of each attempt (as
// Stage is), so that a writer that lost a race adds to the counts of the
// writer that won instead of overwriting them. A source new to the
// table gets a key while the table's source keys stay within MaxSources
// and MaxSourceBytes (taken in source order); the rest are added to
// PropSourceOther. A value that does not parse is counted again from
// zero.
func MergeSources(have iceberg.Properties, batch SourceCounts, at time.Time) iceberg.Properties {
	out := iceberg.Properties{}
	ms := at.UnixMilli()
	add := func(key string, n int64) {
		old, last, _ := parseSourceValue(have[key])
		out[key] = formatSourceValue(old+n, max(last, ms))
	}
	kept, size := 0, 0
	for k, v := range have {
		if strings.HasPrefix(k, PropSourcePrefix) {
			kept++
			size += len(k) + len(v)
		}
	}
	other := batch.Other
	for _, src := range slices.Sorted(maps.Keys(batch.Events)) {
		n := batch.Events[src]
		if n <= 0 {
			continue
		}
		key := SourceKey(src)
		if _, ok := have[key]; !ok {
			grown := size + len(key) + len(formatSourceValue(n, ms))
			if kept >= MaxSources || grown > MaxSourceBytes {
				other += n
				continue
			}
			kept, size = kept+1, grown
		}
		add(key, n)
	}
	if other > 0 {
		add(PropSourceOther, other)
	}
	return out
}

// AppendCountingSources is the Stage of an append of data files that
// also adds the events per source of the batch they hold to the table's
// source counts, in the same commit.
func AppendCountingSources(files []iceberg.DataFile, batch SourceCounts, at time.Time) Stage {
	if batch.Empty() {
		return Append(files)
	}
	return func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
		staged, err := tx.StagedTable()
		if err != nil {
			return fmt.Errorf("read the properties to count sources in: %w", err)
		}
		if err := tx.SetProperties(MergeSources(staged.Properties(), batch, at)); err != nil {
			return fmt.Errorf("count the sources of the batch: %w", err)
		}
		return Append(files)(ctx, tx, props)
	}
}
