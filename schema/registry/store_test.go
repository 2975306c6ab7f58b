package registry_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/schema/registry"
)

// fill registers a small history: two subjects sharing a schema, JSON and
// Avro, a soft-deleted version, a soft-deleted subject and a subject level.
func fill(t *testing.T, s *registry.Store) {
	t.Helper()
	ctx := context.Background()
	for _, r := range []struct {
		subject string
		typ     registry.SchemaType
		schema  string
	}{
		{"order.created", registry.TypeJSON, jsonObj("id!:string")},
		{"order.created", registry.TypeJSON, jsonObj("id!:string", "total:number")},
		{"order.created", registry.TypeJSON, jsonObj("id!:string", "total:number", "note:string")},
		{"orders.created-value", registry.TypeJSON, jsonObj("id!:string")},
		{"payments-value", registry.TypeAvro, avroRec("id:string")},
		{"payments-value", registry.TypeAvro, avroRec("id:string", "amount:double=0")},
		{"gone", registry.TypeAvro, avroRec("x:int")},
	} {
		if _, _, err := s.Register(ctx, r.subject, r.typ, r.schema); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteVersion(ctx, "order.created", 3, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteSubject(ctx, "gone", false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCompatibility(ctx, "payments-value", registry.FullTransitive); err != nil {
		t.Fatal(err)
	}
}

// snapshot is everything a reader can see of a Store.
type snapshot struct {
	Versions   []registry.Version
	All        []registry.Version
	ByID       map[int]registry.Version
	Subjects   []string
	Level      registry.Compatibility
	Generation int64
}

func snap(t *testing.T, s *registry.Store) snapshot {
	t.Helper()
	ctx := context.Background()
	var src registry.Source = s // what the codec reads through
	var gen registry.Generationer = s
	sn := snapshot{
		Versions: must[[]registry.Version](t)(src.Versions(ctx)),
		All:      must[[]registry.Version](t)(s.ListVersions(ctx, true)),
		ByID:     map[int]registry.Version{},
		Subjects: must[[]string](t)(s.Subjects(ctx, true)),
		Level:    must[registry.Compatibility](t)(s.Compatibility(ctx, "payments-value", false)),
	}
	for _, v := range sn.All {
		sn.ByID[v.ID] = must[registry.Version](t)(src.ByID(ctx, v.ID))
	}
	sn.Generation = must[int64](t)(gen.Generation(ctx))
	return sn
}

// TestStoreSurvivesRestart closes and reopens the SQLite file: ids,
// versions, deletions and levels are the same, and new registrations
// continue the ids and version numbers.
func TestStoreSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, db, registry.DialectSQLite)
	fill(t, s)
	before := snap(t, s)
	if len(before.Versions) != 5 || len(before.All) != 7 {
		t.Fatalf("before: %d live, %d in all", len(before.Versions), len(before.All))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, openDB(t, "sqlite", sqliteDSN(path)), registry.DialectSQLite)
	after := snap(t, s2)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("after restart\n%+v\nwant\n%+v", after, before)
	}
	maxID := 0
	for id := range before.ByID {
		maxID = max(maxID, id)
	}
	v, created, err := s2.Register(ctx, "order.created", registry.TypeJSON, jsonObj("id!:string", "total:number", "tax:number"))
	if err != nil || !created {
		t.Fatal(err)
	}
	if v.Version != 4 || v.ID != maxID+1 {
		t.Fatalf("registered after restart %+v, want version 4 (3 is soft-deleted) and id %d", v, maxID+1)
	}
	// The soft-deleted subject registers again from its next version.
	v, _, err = s2.Register(ctx, "gone", registry.TypeAvro, avroRec("x:int"))
	if err != nil || v.Version != 2 || v.ID != before.All[slices.IndexFunc(before.All, func(v registry.Version) bool { return v.Subject == "gone" })].ID {
		t.Fatalf("re-registered the soft-deleted subject: %+v %v", v, err)
	}
}

// TestGeneration: every change moves the generation; reads, refused
// writes and re-registering an existing schema do not.
func TestGeneration(t *testing.T) {
	ctx := context.Background()
	s := sqliteStore(t)
	gen := func() int64 { return must[int64](t)(s.Generation(ctx)) }
	g0 := gen()
	changed := func(what string, fn func() error) {
		t.Helper()
		before := gen()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if gen() == before {
			t.Fatalf("%s did not move the generation", what)
		}
	}
	unchanged := func(what string, fn func() error) {
		t.Helper()
		before := gen()
		_ = fn()
		if g := gen(); g != before {
			t.Fatalf("%s moved the generation from %d to %d", what, before, g)
		}
	}
	reg := func(schema string) func() error {
		return func() error { _, _, err := s.Register(ctx, "a", registry.TypeJSON, schema); return err }
	}
	changed("register", reg(jsonObj("id!:string")))
	unchanged("register again", reg(jsonObj("id!:string")))
	unchanged("refused registration", reg(jsonObj("id!:integer")))
	unchanged("invalid schema", reg(`{"type":1}`))
	unchanged("read", func() error { _, err := s.Versions(ctx); return err })
	changed("set level", func() error { return s.SetCompatibility(ctx, "a", registry.None) })
	changed("delete level", func() error { _, err := s.DeleteCompatibility(ctx, "a"); return err })
	changed("soft delete", func() error { _, err := s.DeleteVersion(ctx, "a", registry.Latest, false); return err })
	changed("permanent delete", func() error { _, err := s.DeleteSubject(ctx, "a", true); return err })
	unchanged("delete of nothing", func() error { _, err := s.DeleteSubject(ctx, "a", true); return err })
	if gen() <= g0 {
		t.Fatal("the generation went backwards")
	}
}

// TestSharedStores opens two Stores (two connection pools, as two processes
// have) on one database, SQLite and PostgreSQL, and registers from both at
// once: identical schemas get one id and one version, distinct ones get
// distinct ids and gapless versions, none is lost, and of two schemas that
// are each compatible with the latest version but not with each other only
// one is accepted.
func TestSharedStores(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "catalog.db")
		sharedStores(t, func() (*sql.DB, string) { return openDB(t, "sqlite", sqliteDSN(path)), registry.DialectSQLite })
	})
	t.Run("postgres", func(t *testing.T) {
		pg := th.StartPostgres(t)
		uri := pg.URIWithDB("db" + th.RandomID())
		sharedStores(t, func() (*sql.DB, string) { return openDB(t, "pgx", uri), registry.DialectPostgres })
	})
}

func sharedStores(t *testing.T, open func() (*sql.DB, string)) {
	ctx := context.Background()
	const workers = 6 // per store
	dbs := make([]*sql.DB, 2)
	dialect := ""
	for i := range dbs {
		dbs[i], dialect = open()
	}
	// Both open (and create the tables) at once.
	stores := make([]*registry.Store, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 4*workers*2)
	for i := range stores {
		wg.Go(func() {
			s, err := registry.Open(ctx, dbs[i], dialect)
			stores[i] = s
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(<-errs)
	}

	identical := jsonObj("id!:string", "kind:string")
	type result struct {
		store, worker int
		v             registry.Version
	}
	results := make(chan result, 4*workers*2)
	for si, s := range stores {
		for w := range workers {
			wg.Go(func() {
				// The same schema from everybody.
				v, _, err := s.Register(ctx, "shared", registry.TypeJSON, identical)
				if err != nil {
					errs <- fmt.Errorf("shared: %w", err)
					return
				}
				results <- result{si, -1, v}
				// A schema of its own, under a subject of both stores
				// and under one of this store only.
				own := jsonObj("id!:string", fmt.Sprintf("f_%d_%d:string", si, w))
				for _, subject := range []string{"orders", fmt.Sprintf("store-%d", si)} {
					v, _, err := s.Register(ctx, subject, registry.TypeJSON, own)
					if err != nil {
						errs <- fmt.Errorf("%s: %w", subject, err)
						return
					}
					results <- result{si, w, v}
				}
			})
		}
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	var sharedID int
	idOf := map[string]int{} // schema text -> id
	versions := map[string][]int{}
	for r := range results {
		if r.v.Subject == "shared" {
			if r.v.Version != 1 || (sharedID != 0 && r.v.ID != sharedID) {
				t.Fatalf("identical schema registered as %+v (first id %d)", r.v, sharedID)
			}
			sharedID = r.v.ID
			continue
		}
		if id, ok := idOf[r.v.Schema]; ok && id != r.v.ID {
			t.Fatalf("one schema got ids %d and %d", id, r.v.ID)
		}
		idOf[r.v.Schema] = r.v.ID
		versions[r.v.Subject] = append(versions[r.v.Subject], r.v.Version)
	}
	if len(idOf) != 2*workers {
		t.Fatalf("%d distinct ids for %d distinct schemas", len(idOf), 2*workers)
	}
	for subject, want := range map[string]int{"orders": 2 * workers, "store-0": workers, "store-1": workers} {
		got := versions[subject]
		slices.Sort(got)
		for i, v := range got {
			if v != i+1 {
				t.Fatalf("%s: versions %v are not 1..%d", subject, got, want)
			}
		}
		if len(got) != want {
			t.Fatalf("%s: %d versions, want %d", subject, len(got), want)
		}
		// Both stores read the same, nothing lost.
		for _, s := range stores {
			if vs := must[[]int](t)(s.SubjectVersions(ctx, subject, false)); len(vs) != want {
				t.Fatalf("%s: a store sees versions %v", subject, vs)
			}
		}
	}
	if vs := must[[]int](t)(stores[1].SubjectVersions(ctx, "shared", false)); !slices.Equal(vs, []int{1}) {
		t.Fatalf("shared: versions %v", vs)
	}

	// A race between two schemas each compatible with v1 but not with each
	// other: the check runs under the write lock, so one of them loses.
	for round := range 4 {
		subject := fmt.Sprintf("race-%d", round)
		if _, _, err := stores[0].Register(ctx, subject, registry.TypeJSON, jsonObj("id!:string")); err != nil {
			t.Fatal(err)
		}
		var accepted, refused int
		var mu sync.Mutex
		for i, typ := range []string{"string", "integer"} {
			wg.Go(func() {
				_, _, err := stores[i].Register(ctx, subject, registry.TypeJSON, jsonObj("id!:string", "c:"+typ))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					accepted++
				case errors.Is(err, registry.ErrIncompatible):
					refused++
				default:
					t.Errorf("race: %v", err)
				}
			})
		}
		wg.Wait()
		if accepted != 1 || refused != 1 {
			t.Fatalf("%s: %d accepted, %d refused; want one each", subject, accepted, refused)
		}
		if vs := must[[]int](t)(stores[1].SubjectVersions(ctx, subject, false)); !slices.Equal(vs, []int{1, 2}) {
			t.Fatalf("%s: versions %v", subject, vs)
		}
	}
	if g0, g1 := must[int64](t)(stores[0].Generation(ctx)), must[int64](t)(stores[1].Generation(ctx)); g0 != g1 || g0 == 0 {
		t.Fatalf("generations %d and %d", g0, g1)
	}
}
