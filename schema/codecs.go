package schema

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/zeebo/xxh3"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/schema/registry"
)

// Compile compiles one registered version; it fails when the schema
// cannot be used by eventlake (not an object, two properties mapping to
// one column). The built-in registry refuses such schemas at
// registration, through this function.
func Compile(v registry.Version) (*TypeVersion, error) {
	switch v.Type {
	case registry.TypeJSON:
		return compileJSONSchema(v)
	case registry.TypeAvro, "":
		return compileAvro(v)
	}
	return nil, fmt.Errorf("schema type %q is not supported", v.Type)
}

// Set is a compiled snapshot of every subject: what a Decoder reads per
// event, with no registry lookup.
type Set struct {
	subjects map[string]*Subject
	folded   map[string]string // lower-cased subject -> subject
	byID     map[int]*TypeVersion
}

// Subject is one event type: its compiled versions.
type Subject struct {
	Name     string
	Versions map[int]*TypeVersion
	// Latest is the newest version; nil when it does not compile.
	Latest        *TypeVersion
	latestVersion int
	latestErr     error
	errs          map[int]error // versions that do not compile
	// Columns is the union of the columns of every version, in version
	// and schema order: what a table that holds the type has.
	Columns []Column
}

// LatestVersion is the number of the subject's newest version (also when
// it does not compile).
func (sub *Subject) LatestVersion() int { return sub.latestVersion }

// Subject returns a subject by name, or nil.
func (s *Set) Subject(name string) *Subject { return s.subjects[name] }

// Subjects lists every subject, by name.
func (s *Set) Subjects() []*Subject {
	out := make([]*Subject, 0, len(s.subjects))
	for _, sub := range s.subjects {
		out = append(out, sub)
	}
	slices.SortFunc(out, func(a, b *Subject) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// VersionChange is what one version of a subject changed in its
// columns.
type VersionChange struct {
	Version int
	ID      int // the registry's schema id
	// Added are the columns no earlier version had (for the first version,
	// all of its columns), in schema order: the columns this version
	// added to the tables that hold the type.
	Added []string
	// Dropped are the columns of the previous version this one does not
	// have: tables keep them, and events of this version leave them null.
	Dropped []string
}

// History lists the subject's versions that compile, oldest first, with
// the columns each added and dropped: which version brought which
// column.
func (sub *Subject) History() []VersionChange {
	versions := slices.Sorted(maps.Keys(sub.Versions))
	out := make([]VersionChange, 0, len(versions))
	seen := map[string]bool{}
	var prev *TypeVersion
	for _, n := range versions {
		tv := sub.Versions[n]
		ch := VersionChange{Version: n, ID: tv.ID}
		for _, c := range tv.Columns {
			if !seen[c.Name] {
				seen[c.Name] = true
				ch.Added = append(ch.Added, c.Name)
			}
		}
		if prev != nil {
			for _, c := range prev.Columns {
				if tv.Column(c.Name) < 0 {
					ch.Dropped = append(ch.Dropped, c.Name)
				}
			}
		}
		out = append(out, ch)
		prev = tv
	}
	return out
}

// ErrColumnConflict means a version maps a property to a column that an
// earlier version of the subject typed differently.
var ErrColumnConflict = errors.New("column type conflict")

// NewSet compiles versions (as a registry lists them). Versions that do
// not compile are kept as errors: their events are rejected with the
// reason, the others are unaffected.
func NewSet(versions []registry.Version, cache map[int]*TypeVersion) *Set {
	set := &Set{subjects: map[string]*Subject{}, folded: map[string]string{}, byID: map[int]*TypeVersion{}}
	sorted := slices.Clone(versions)
	slices.SortFunc(sorted, func(a, b registry.Version) int {
		if c := strings.Compare(a.Subject, b.Subject); c != 0 {
			return c
		}
		return a.Version - b.Version
	})
	for _, v := range sorted {
		if v.Deleted {
			continue
		}
		sub := set.subjects[v.Subject]
		if sub == nil {
			sub = &Subject{Name: v.Subject, Versions: map[int]*TypeVersion{}, errs: map[int]error{}}
			set.subjects[v.Subject] = sub
			set.folded[strings.ToLower(v.Subject)] = v.Subject
		}
		sub.latestVersion = v.Version
		tv, err := compileCached(v, cache)
		if err == nil {
			err = sub.merge(tv)
		}
		if err != nil {
			sub.errs[v.Version] = err
			sub.Latest, sub.latestErr = nil, err
			continue
		}
		sub.Versions[v.Version] = tv
		sub.Latest, sub.latestErr = tv, nil
		set.byID[v.ID] = tv
	}
	return set
}

// compileCached compiles v, reusing an earlier compilation of the same
// subject, version and id.
func compileCached(v registry.Version, cache map[int]*TypeVersion) (*TypeVersion, error) {
	if tv := cache[v.ID]; tv != nil && tv.Subject == v.Subject && tv.Version == v.Version {
		return tv, nil
	}
	tv, err := Compile(v)
	if err != nil {
		return nil, err
	}
	if cache != nil {
		cache[v.ID] = tv
	}
	return tv, nil
}

// merge adds a version's columns to the subject's union.
func (sub *Subject) merge(tv *TypeVersion) error {
	for _, c := range tv.Columns {
		i := slices.IndexFunc(sub.Columns, func(o Column) bool { return o.Name == c.Name })
		if i < 0 {
			sub.Columns = append(sub.Columns, c)
			continue
		}
		have := sub.Columns[i]
		if have.Type.Equals(c.Type) {
			continue
		}
		if wider, ok := widerDecimal(have, c); ok {
			sub.Columns[i] = wider
			continue
		}
		return fmt.Errorf("%w: column %s is %s in earlier versions of %s, %s in v%d: a column keeps its type; add a property with a new name instead",
			ErrColumnConflict, c.Name, have.Type, sub.Name, c.Type, tv.Version)
	}
	return nil
}

// widerDecimal returns the wider of two decimal columns of one scale.
func widerDecimal(a, b Column) (Column, bool) {
	da, ok1 := a.Type.(iceberg.DecimalType)
	db, ok2 := b.Type.(iceberg.DecimalType)
	if !ok1 || !ok2 || da.Scale() != db.Scale() {
		return Column{}, false
	}
	if db.Precision() > da.Precision() {
		return b, true
	}
	return a, true
}

// Check compiles a schema about to be registered as the next version of
// its subject, against the subject's earlier versions: the built-in
// registry refuses, with this error, schemas the lake could not store.
func Check(v registry.Version, earlier []registry.Version) error {
	tv, err := Compile(v)
	if err != nil {
		return err
	}
	sub := &Subject{Name: v.Subject}
	for _, e := range earlier {
		if e.Deleted {
			continue
		}
		if etv, err := Compile(e); err == nil {
			_ = sub.merge(etv)
		}
	}
	return sub.merge(tv)
}

// Fixed is a Codecs of a fixed set, for tools and tests.
type Fixed struct{ S *Set }

// Set implements Codecs.
func (f Fixed) Set() *Set { return f.S }

// ByID implements Codecs.
func (f Fixed) ByID(int) (*TypeVersion, error) { return nil, nil }

// Missed implements Codecs: a fixed set has nothing newer.
func (f Fixed) Missed() (*Set, error) { return f.S, nil }

// Resolver keeps a compiled Set of a registry current: it polls the
// registry every interval (cheaply, by generation, when the registry can
// say) and swaps in a new Set when anything changed, so that decoders
// never look anything up per event.
type Resolver struct {
	src      registry.Source
	interval time.Duration
	log      *slog.Logger

	mu     sync.Mutex // guards cache, gen and refreshes
	cache  map[int]*TypeVersion
	gen    int64  // the registry's generation when last loaded (-1: it has none)
	sum    uint64 // fingerprint of the last Versions answer
	loaded bool
	cur    atomic.Pointer[Set]

	// misses remembers ids the registry did not have (ByID), so that a
	// stream of values framed with an unknown id does not ask it for each
	// one; at most maxMisses, guarded by mu.
	misses map[int]time.Time
	// pollReads and missReads count requests to the registry (Reads).
	pollReads, missReads atomic.Int64
	// missMu serializes Missed refreshes; lastMiss and missErr are the
	// last one's time and outcome.
	missMu   sync.Mutex
	lastMiss time.Time
	missErr  error
	// changed is called after a new Set is swapped in (ingest evolves its
	// tables); optional.
	changed func(*Set)
}

// NewResolver returns a resolver of src; Refresh or Run fill it.
func NewResolver(src registry.Source, interval time.Duration, log *slog.Logger) *Resolver {
	if interval <= 0 {
		interval = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{src: src, interval: interval, log: log.With(logkey.Component, "schemas"),
		cache: map[int]*TypeVersion{}, gen: -1}
	r.cur.Store(NewSet(nil, nil))
	return r
}

// Set implements Codecs.
func (r *Resolver) Set() *Set { return r.cur.Load() }

// OnChange registers fn to be called with every new Set.
func (r *Resolver) OnChange(fn func(*Set)) { r.changed = fn }

// Refresh reads the registry and swaps in a new Set if anything changed.
func (r *Resolver) Refresh(ctx context.Context) error {
	return r.refresh(ctx, &r.pollReads)
}

// Reads counts the requests the resolver made to the registry: polls (the
// periodic refresh, and the first load) and misses (for a type, version or
// schema id an event named that was not loaded). Decoding an event of a
// loaded version makes none.
func (r *Resolver) Reads() (polls, misses int64) { return r.pollReads.Load(), r.missReads.Load() }

// refresh is Refresh, counting its requests in reads.
func (r *Resolver) refresh(ctx context.Context, reads *atomic.Int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	gen := int64(-1)
	if g, ok := r.src.(registry.Generationer); ok {
		var err error
		reads.Add(1)
		if gen, err = g.Generation(ctx); err != nil {
			return fmt.Errorf("read the schema registry's generation: %w", err)
		}
		if r.loaded && gen == r.gen {
			return nil
		}
	}
	reads.Add(1)
	vs, err := r.src.Versions(ctx)
	if err != nil {
		return fmt.Errorf("read the schema registry: %w", err)
	}
	h := xxh3.New()
	for _, v := range vs {
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%v\x00", v.Subject, v.Version, v.ID, v.Deleted)
	}
	sum := h.Sum64()
	if r.loaded && sum == r.sum {
		r.gen = gen
		return nil
	}
	r.sum, r.gen, r.loaded = sum, gen, true
	// Forget compiled versions the registry no longer has (permanently
	// deleted): ByID answers from the cache.
	known := make(map[int]bool, len(vs))
	for _, v := range vs {
		known[v.ID] = true
	}
	for id := range r.cache {
		if !known[id] {
			delete(r.cache, id)
		}
	}
	set := NewSet(vs, r.cache)
	r.cur.Store(set)
	for _, sub := range set.Subjects() {
		for v, err := range sub.errs {
			r.log.Warn("schema version cannot be used; its events go to the dead-letter table", "subject", sub.Name, "version", v, logkey.Err, err)
		}
	}
	r.log.Debug("schemas loaded", "subjects", len(set.subjects), "versions", len(set.byID))
	if r.changed != nil {
		r.changed(set)
	}
	return nil
}

// Run refreshes every interval until ctx ends. Failures are logged and
// the last Set stays in service.
func (r *Resolver) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := r.Refresh(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			r.log.Warn("schema registry unavailable; decoding with the schemas loaded before", logkey.Err, err)
		case err == nil && failing:
			failing = false
			r.log.Info("schema registry available again")
		}
	}
}

// missEvery bounds how often a type that is not in the Set makes the
// resolver ask the registry again (Missed).
const missEvery = 50 * time.Millisecond

// Missed implements Codecs: a decoder met a type (or version) the Set
// does not have. A version registered since the last poll must apply to
// the events that follow its registration, not a poll interval later (an
// event decoded as an unknown type would be stored without its typed
// columns): the registry is asked again now, at most every missEvery, and
// the fresh Set returned. Ingest and the hot tier both do this, so they
// decide alike.
//
// When the registry cannot be asked, the error says so: the caller cannot
// tell a type registered a moment ago from one never registered, and must
// not decide the event (ingest retries it; the hot tier waits).
func (r *Resolver) Missed() (*Set, error) {
	r.missMu.Lock()
	defer r.missMu.Unlock()
	if now := time.Now(); now.Sub(r.lastMiss) >= missEvery {
		r.lastMiss = now
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r.missErr = r.refresh(ctx, &r.missReads)
		cancel()
		if r.missErr != nil {
			r.log.Debug("refresh schemas for a missing type", logkey.Err, r.missErr)
		}
	}
	return r.cur.Load(), r.missErr
}

// missTTL is how long an unknown schema id is not asked for again.
const missTTL = 10 * time.Second

// ByID implements Codecs: a schema id the current Set lacks is looked up
// in the registry (a version registered since the last poll, or a
// soft-deleted one) and compiled. An id the registry does not have (or
// whose schema does not compile) is not asked for again for missTTL; an
// error means the registry could not be asked.
func (r *Resolver) ByID(id int) (*TypeVersion, error) {
	r.mu.Lock()
	tv, missed := r.cache[id], time.Since(r.misses[id]) < missTTL
	r.mu.Unlock()
	switch {
	case tv != nil:
		return tv, nil // looked up before (a soft-deleted version stays out of the Set)
	case missed:
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.missReads.Add(1)
	v, err := r.src.ByID(ctx, id)
	if err != nil && !errors.Is(err, registry.ErrSchemaNotFound) {
		return nil, fmt.Errorf("look up schema id %d: %w", id, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		if tv, err = compileCached(v, r.cache); err == nil {
			return tv, nil
		}
	}
	r.missed(id)
	return nil, nil
}

// maxMisses bounds the remembered unknown ids: ids come from message
// bytes, so a stream of random ones must not grow the map without end.
const maxMisses = 4096

// missed remembers that id is unknown. Called with mu held.
func (r *Resolver) missed(id int) {
	if r.misses == nil {
		r.misses = map[int]time.Time{}
	}
	if len(r.misses) >= maxMisses {
		for k, t := range r.misses {
			if time.Since(t) >= missTTL {
				delete(r.misses, k)
			}
		}
		if len(r.misses) >= maxMisses {
			clear(r.misses)
		}
	}
	r.misses[id] = time.Now()
}

// keyHash hashes an object key (unescaped) or a member name. Equal hashes
// are confirmed by comparing the names, so collisions cost time only.
// Keys of up to 16 bytes, nearly all of them, are hashed inline: their
// bytes and length are loaded into two words (an exact encoding of the
// key) and mixed; longer ones go to xxh3.
func keyHash(b []byte) uint64 {
	n := len(b)
	var w0, w1 uint64
	switch {
	case n > 16:
		return xxh3.Hash(b)
	case n >= 8:
		w0, w1 = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[n-8:])
	case n >= 4:
		w0 = uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint32(b[n-4:]))<<32
	case n > 0:
		w0 = uint64(b[0]) | uint64(b[n/2])<<8 | uint64(b[n-1])<<16
	}
	h := (w0 ^ 0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
	h ^= (w1 ^ uint64(n)) * 0x94d049bb133111eb
	h ^= h >> 31
	h *= 0xd6e8feb86659fd93
	return h ^ h>>32
}
