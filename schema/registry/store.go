package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/hamba/avro/v2"

	"github.com/eventlake/eventlake/internal/sqldb"
)

// SQL dialects of the catalog database (the same names as the catalog
// types).
const (
	DialectSQLite   = sqldb.SQLite
	DialectPostgres = sqldb.Postgres
)

// Version numbers with a special meaning.
const (
	// Latest is the newest version that is not soft-deleted ("latest" or
	// -1 in the API).
	Latest = -1
	// AllVersions, for CheckCompatibility, checks against every version
	// that is not soft-deleted.
	AllVersions = -2
)

// layoutVersion is the version of the tables' layout, recorded in
// eventlake_sr_meta so that a later layout can migrate (and this code
// refuses a layout it does not know).
const layoutVersion = 1

// Store is the built-in schema registry: schemas, versions and
// compatibility levels in tables of the catalog's SQL database, prefixed
// eventlake_sr_. Several processes may use the same database at once.
//
// Every write runs in one transaction whose first statement bumps a counter
// row (the generation). That takes SQLite's write lock, or the row's lock in
// PostgreSQL, so writes run one at a time and each sees everything committed
// before it: a registration's compatibility check and its id and version
// allocation cannot race with another process's registration. Conflicts the
// databases still report (SQLITE_BUSY, serialization failures, unique
// violations) are retried with backoff. For SQLite, open the database with a
// busy timeout (e.g. _pragma=busy_timeout(30000)) and WAL, as the catalog
// does.
type Store struct {
	db      *sql.DB
	dialect string
	accept  Acceptor
}

// Acceptor checks a schema about to become the next version of its
// subject beyond compatibility: whether the readers of the registry can
// use it (eventlake's codec refuses, for example, two properties that map
// to one column). earlier are the subject's live versions. An error
// refuses the registration as an invalid schema (422).
type Acceptor func(next Version, earlier []Version) error

// SetAcceptor installs the check Register runs after the compatibility
// check; nil removes it. Call it before the store is used.
func (s *Store) SetAcceptor(a Acceptor) { s.accept = a }

// Open creates the registry's tables in db if they are missing and returns
// the Store. dialect is DialectSQLite (driver "sqlite", modernc.org/sqlite)
// or DialectPostgres (driver "pgx"). Several processes may open the same
// database at once. The Store does not own db: close it after the last use.
func Open(ctx context.Context, db *sql.DB, dialect string) (*Store, error) {
	if db == nil {
		return nil, errors.New("open schema registry store: the database is nil")
	}
	if dialect != DialectSQLite && dialect != DialectPostgres {
		return nil, fmt.Errorf("open schema registry store: dialect %q is not %q or %q", dialect, DialectSQLite, DialectPostgres)
	}
	s := &Store{db: db, dialect: dialect}
	if err := s.retry(ctx, s.createTables); err != nil {
		return nil, fmt.Errorf("create schema registry tables: %w", err)
	}
	var layout int64
	if err := s.db.QueryRowContext(ctx, s.q("SELECT value FROM eventlake_sr_meta WHERE name = ?"), "layout").Scan(&layout); err != nil {
		return nil, fmt.Errorf("read schema registry layout version: %w", err)
	}
	if layout != layoutVersion {
		return nil, fmt.Errorf("open schema registry store: the tables have layout version %d, this eventlake knows only %d: upgrade eventlake", layout, layoutVersion)
	}
	return s, nil
}

func (s *Store) createTables(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if s.dialect == DialectPostgres {
		// CREATE TABLE IF NOT EXISTS is not safe against itself on
		// PostgreSQL: two processes creating the tables at once can both
		// miss the table and one fails on the row type the other just
		// made ("type eventlake_sr_meta already exists"). A transaction
		// lock serializes them; the second then finds the tables.
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext('eventlake_sr_create_tables'))"); err != nil {
			return fmt.Errorf("lock schema registry table creation: %w", err)
		}
	}
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS eventlake_sr_meta (
			name TEXT PRIMARY KEY,
			value BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS eventlake_sr_schemas (
			id BIGINT PRIMARY KEY,
			schema_type TEXT NOT NULL,
			fingerprint TEXT NOT NULL UNIQUE,
			schema_text TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS eventlake_sr_versions (
			subject TEXT NOT NULL,
			version INTEGER NOT NULL,
			schema_id BIGINT NOT NULL REFERENCES eventlake_sr_schemas (id),
			deleted INTEGER NOT NULL DEFAULT 0,
			PRIMARY KEY (subject, version))`,
		`CREATE INDEX IF NOT EXISTS eventlake_sr_versions_schema_id ON eventlake_sr_versions (schema_id)`,
		// subject '' is the registry-wide level.
		`CREATE TABLE IF NOT EXISTS eventlake_sr_config (
			subject TEXT PRIMARY KEY,
			compatibility TEXT NOT NULL)`,
		// generation: bumped by every write; last_schema_id: the last
		// global id handed out (ids are never reused, also after a
		// permanent delete); layout: layoutVersion.
		`INSERT INTO eventlake_sr_meta (name, value) VALUES ('generation', 0), ('last_schema_id', 0), ('layout', ` + strconv.Itoa(layoutVersion) + `)
			ON CONFLICT (name) DO NOTHING`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// q rewrites ? placeholders for the dialect.
func (s *Store) q(query string) string { return sqldb.Rebind(s.dialect, query) }

// retry retries fn while it loses to other processes (sqldb.Retry).
func (s *Store) retry(ctx context.Context, fn func(context.Context) error) error {
	return sqldb.Retry(ctx, fn)
}

// errRollback makes write roll back without an error: nothing changed.
var errRollback = errors.New("nothing to write")

// write runs fn in a write transaction (see Store). fn returns errRollback
// when there is nothing to change; write then returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.retry(ctx, func(ctx context.Context) error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
		if _, err := tx.ExecContext(ctx, "UPDATE eventlake_sr_meta SET value = value + 1 WHERE name = 'generation'"); err != nil {
			return fmt.Errorf("lock the registry: %w", err)
		}
		if err := fn(tx); err != nil {
			if errors.Is(err, errRollback) {
				return nil
			}
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	})
}

// querier is what reads need from a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// versionRow is one stored version of a subject with its schema.
type versionRow struct {
	version int
	id      int
	deleted bool
	typ     SchemaType
	text    string
}

func (r versionRow) toVersion(subject string) Version {
	return Version{Subject: subject, Version: r.version, ID: r.id, Type: r.typ, Schema: r.text, Deleted: r.deleted}
}

// loadSubject reads every version of subject, soft-deleted ones included,
// by ascending version.
func (s *Store) loadSubject(ctx context.Context, q querier, subject string) ([]versionRow, error) {
	rows, err := q.QueryContext(ctx, s.q(`SELECT v.version, v.schema_id, v.deleted, s.schema_type, s.schema_text
		FROM eventlake_sr_versions v JOIN eventlake_sr_schemas s ON s.id = v.schema_id
		WHERE v.subject = ? ORDER BY v.version`), subject)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []versionRow
	for rows.Next() {
		var r versionRow
		var deleted int64
		var typ string
		if err := rows.Scan(&r.version, &r.id, &deleted, &typ, &r.text); err != nil {
			return nil, err
		}
		r.deleted, r.typ = deleted != 0, SchemaType(typ)
		out = append(out, r)
	}
	return out, rows.Err()
}

func live(rows []versionRow) []versionRow {
	var out []versionRow
	for _, r := range rows {
		if !r.deleted {
			out = append(out, r)
		}
	}
	return out
}

// level returns the compatibility level that applies to subject.
func (s *Store) level(ctx context.Context, q querier, subject string) (Compatibility, error) {
	rows, err := q.QueryContext(ctx, s.q("SELECT subject, compatibility FROM eventlake_sr_config WHERE subject = ? OR subject = ''"), subject)
	if err != nil {
		return "", fmt.Errorf("read compatibility level: %w", err)
	}
	defer rows.Close()
	level := DefaultCompatibility
	found := false
	for rows.Next() {
		var subj, c string
		if err := rows.Scan(&subj, &c); err != nil {
			return "", fmt.Errorf("read compatibility level: %w", err)
		}
		if subj == subject {
			level, found = Compatibility(c), true
		} else if !found {
			level = Compatibility(c)
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read compatibility level: %w", err)
	}
	return level, nil
}

// parseStored parses a stored schema for a compatibility check (it was
// validated when it was registered).
func parseStored(subject string, r versionRow) (*parsed, error) {
	p := &parsed{typ: r.typ, canonical: r.text}
	switch r.typ {
	case TypeAvro:
		a, err := avro.ParseWithCache(r.text, "", &avro.SchemaCache{})
		if err != nil {
			return nil, fmt.Errorf("parse stored version %d of %q: %w", r.version, subject, err)
		}
		p.avro = a
	case TypeJSON:
		j, err := decodeJSON(r.text)
		if err != nil {
			return nil, fmt.Errorf("parse stored version %d of %q: %w", r.version, subject, err)
		}
		p.json = j
	default:
		return nil, fmt.Errorf("parse stored version %d of %q: unknown schema type %q", r.version, subject, r.typ)
	}
	return p, nil
}

// priors parses the versions a new schema is checked against under level.
func priors(subject string, level Compatibility, rows []versionRow) ([]priorVersion, error) {
	if level == None {
		return nil, nil
	}
	if !level.transitive() && len(rows) > 1 {
		rows = rows[len(rows)-1:]
	}
	out := make([]priorVersion, 0, len(rows))
	for _, r := range rows {
		p, err := parseStored(subject, r)
		if err != nil {
			return nil, err
		}
		out = append(out, priorVersion{version: r.version, schema: p})
	}
	return out, nil
}

// Register adds schema (of type typ) to subject as a new version, after
// checking it against the subject's compatibility level. When the subject
// already has the same schema (after canonicalization) as a version that is
// not soft-deleted, it returns that version and created is false. The same
// schema under another subject keeps its global id.
//
// Errors wrap ErrInvalidSubject, ErrInvalidSchema or ErrIncompatible (an
// *IncompatibleError naming the versions and fields).
func (s *Store) Register(ctx context.Context, subject string, typ SchemaType, schema string) (v Version, created bool, err error) {
	if err := validSubject(subject); err != nil {
		return Version{}, false, err
	}
	p, err := parseSchema(typ, schema)
	if err != nil {
		return Version{}, false, err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		created = false
		rows, err := s.loadSubject(ctx, tx, subject)
		if err != nil {
			return fmt.Errorf("read versions: %w", err)
		}
		lv := live(rows)
		for i := len(lv) - 1; i >= 0; i-- {
			if lv[i].typ == p.typ && lv[i].text == p.canonical {
				v = lv[i].toVersion(subject)
				return errRollback
			}
		}
		level, err := s.level(ctx, tx, subject)
		if err != nil {
			return err
		}
		prior, err := priors(subject, level, lv)
		if err != nil {
			return err
		}
		if msgs := checkCompatibility(subject, level, p, prior); len(msgs) > 0 {
			return &IncompatibleError{Subject: subject, Level: level, Messages: msgs}
		}
		if s.accept != nil {
			next := 1
			if len(rows) > 0 {
				next = rows[len(rows)-1].version + 1
			}
			earlier := make([]Version, len(lv))
			for i, r := range lv {
				earlier[i] = r.toVersion(subject)
			}
			if err := s.accept(Version{Subject: subject, Version: next, Type: p.typ, Schema: p.canonical}, earlier); err != nil {
				return fmt.Errorf("%w: the lake cannot store it: %v", ErrInvalidSchema, err)
			}
		}

		var id int
		err = tx.QueryRowContext(ctx, s.q("SELECT id FROM eventlake_sr_schemas WHERE fingerprint = ?"), p.fingerprint).Scan(&id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if err := tx.QueryRowContext(ctx, "UPDATE eventlake_sr_meta SET value = value + 1 WHERE name = 'last_schema_id' RETURNING value").Scan(&id); err != nil {
				return fmt.Errorf("allocate schema id: %w", err)
			}
			if _, err := tx.ExecContext(ctx, s.q("INSERT INTO eventlake_sr_schemas (id, schema_type, fingerprint, schema_text) VALUES (?, ?, ?, ?)"),
				id, string(p.typ), p.fingerprint, p.canonical); err != nil {
				return fmt.Errorf("insert schema %d: %w", id, err)
			}
		case err != nil:
			return fmt.Errorf("look up schema by fingerprint: %w", err)
		}
		next := 1
		if len(rows) > 0 {
			next = rows[len(rows)-1].version + 1
		}
		if _, err := tx.ExecContext(ctx, s.q("INSERT INTO eventlake_sr_versions (subject, version, schema_id, deleted) VALUES (?, ?, ?, 0)"),
			subject, next, id); err != nil {
			return fmt.Errorf("insert version %d: %w", next, err)
		}
		v = Version{Subject: subject, Version: next, ID: id, Type: p.typ, Schema: p.canonical}
		created = true
		return nil
	})
	if err != nil {
		return Version{}, false, fmt.Errorf("register schema under subject %q: %w", subject, err)
	}
	return v, created, nil
}

// Lookup finds the version of subject that has schema (after
// canonicalization), the newest if several do. Soft-deleted versions count
// only with includeDeleted. Errors wrap ErrSubjectNotFound,
// ErrSchemaNotFound or ErrInvalidSchema.
func (s *Store) Lookup(ctx context.Context, subject string, typ SchemaType, schema string, includeDeleted bool) (Version, error) {
	canonical, _, err := canonicalize(typ, schema)
	if err != nil {
		return Version{}, fmt.Errorf("look up schema under subject %q: %w", subject, err)
	}
	rows, err := s.visible(ctx, subject, includeDeleted)
	if err != nil {
		return Version{}, fmt.Errorf("look up schema under subject %q: %w", subject, err)
	}
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].typ == typ && rows[i].text == canonical {
			return rows[i].toVersion(subject), nil
		}
	}
	return Version{}, fmt.Errorf("look up schema under subject %q: %w: no version of the subject has this %s schema", subject, ErrSchemaNotFound, typ)
}

// visible returns the versions of subject (soft-deleted ones only with
// includeDeleted), or ErrSubjectNotFound when there are none.
func (s *Store) visible(ctx context.Context, subject string, includeDeleted bool) ([]versionRow, error) {
	rows, err := s.loadSubject(ctx, s.db, subject)
	if err != nil {
		return nil, fmt.Errorf("read versions: %w", err)
	}
	if !includeDeleted {
		rows = live(rows)
	}
	if len(rows) == 0 {
		return nil, ErrSubjectNotFound
	}
	return rows, nil
}

// Subjects lists the subjects that have a version that is not soft-deleted
// (with includeDeleted: any version), sorted.
func (s *Store) Subjects(ctx context.Context, includeDeleted bool) ([]string, error) {
	query := "SELECT DISTINCT subject FROM eventlake_sr_versions"
	if !includeDeleted {
		query += " WHERE deleted = 0"
	}
	rows, err := s.db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("list subjects: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var subj string
		if err := rows.Scan(&subj); err != nil {
			return nil, fmt.Errorf("list subjects: %w", err)
		}
		out = append(out, subj)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list subjects: %w", err)
	}
	sort.Strings(out)
	return out, nil
}

// SubjectVersions lists the version numbers of subject, ascending
// (soft-deleted ones only with includeDeleted). Errors wrap
// ErrSubjectNotFound.
func (s *Store) SubjectVersions(ctx context.Context, subject string, includeDeleted bool) ([]int, error) {
	rows, err := s.visible(ctx, subject, includeDeleted)
	if err != nil {
		return nil, fmt.Errorf("list versions of subject %q: %w", subject, err)
	}
	out := make([]int, len(rows))
	for i, r := range rows {
		out[i] = r.version
	}
	return out, nil
}

// SchemaVersion returns one version of subject: version is a number or
// Latest (the newest visible version). Soft-deleted versions are visible
// only with includeDeleted. Errors wrap ErrSubjectNotFound,
// ErrVersionNotFound or ErrInvalidVersion.
func (s *Store) SchemaVersion(ctx context.Context, subject string, version int, includeDeleted bool) (Version, error) {
	if version != Latest && version < 1 {
		return Version{}, fmt.Errorf("read version %d of subject %q: %w: versions are positive numbers, \"latest\" or -1", version, subject, ErrInvalidVersion)
	}
	rows, err := s.visible(ctx, subject, includeDeleted)
	if err != nil {
		return Version{}, fmt.Errorf("read version of subject %q: %w", subject, err)
	}
	if version == Latest {
		return rows[len(rows)-1].toVersion(subject), nil
	}
	for _, r := range rows {
		if r.version == version {
			return r.toVersion(subject), nil
		}
	}
	return Version{}, fmt.Errorf("read version %d of subject %q: %w", version, subject, ErrVersionNotFound)
}

// ListVersions returns every version of every subject (soft-deleted ones
// only with includeDeleted), ordered by subject then version.
func (s *Store) ListVersions(ctx context.Context, includeDeleted bool) ([]Version, error) {
	query := `SELECT v.subject, v.version, v.schema_id, v.deleted, s.schema_type, s.schema_text
		FROM eventlake_sr_versions v JOIN eventlake_sr_schemas s ON s.id = v.schema_id`
	if !includeDeleted {
		query += " WHERE v.deleted = 0"
	}
	rows, err := s.db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("list schema versions: %w", err)
	}
	defer rows.Close()
	out := []Version{}
	for rows.Next() {
		var v Version
		var deleted int64
		var typ string
		if err := rows.Scan(&v.Subject, &v.Version, &v.ID, &deleted, &typ, &v.Schema); err != nil {
			return nil, fmt.Errorf("list schema versions: %w", err)
		}
		v.Deleted, v.Type = deleted != 0, SchemaType(typ)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list schema versions: %w", err)
	}
	sortVersions(out)
	return out, nil
}

// sortVersions orders by subject (byte order, the same in every database
// collation) then version.
func sortVersions(vs []Version) {
	sort.Slice(vs, func(i, j int) bool {
		if vs[i].Subject != vs[j].Subject {
			return vs[i].Subject < vs[j].Subject
		}
		return vs[i].Version < vs[j].Version
	})
}

// Versions returns every version of every subject that is not
// soft-deleted, ordered by subject then version (Source).
func (s *Store) Versions(ctx context.Context) ([]Version, error) {
	return s.ListVersions(ctx, false)
}

// ByID returns the schema with global id (Source). Errors wrap
// ErrSchemaNotFound.
func (s *Store) ByID(ctx context.Context, id int) (Version, error) {
	usages, v, err := s.usages(ctx, id)
	if err != nil {
		return Version{}, fmt.Errorf("read schema %d: %w", id, err)
	}
	for _, u := range usages {
		if !u.Deleted {
			return u, nil
		}
	}
	if len(usages) > 0 {
		return usages[0], nil
	}
	return v, nil
}

// Usages returns the versions that use schema id, ordered by subject then
// version (soft-deleted ones only with includeDeleted). Errors wrap
// ErrSchemaNotFound.
func (s *Store) Usages(ctx context.Context, id int, includeDeleted bool) ([]Version, error) {
	usages, _, err := s.usages(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("list versions of schema %d: %w", id, err)
	}
	out := []Version{}
	for _, u := range usages {
		if includeDeleted || !u.Deleted {
			out = append(out, u)
		}
	}
	return out, nil
}

// usages returns every version using schema id and the schema itself.
func (s *Store) usages(ctx context.Context, id int) ([]Version, Version, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT s.schema_type, s.schema_text, v.subject, v.version, v.deleted
		FROM eventlake_sr_schemas s LEFT JOIN eventlake_sr_versions v ON v.schema_id = s.id
		WHERE s.id = ?`), id)
	if err != nil {
		return nil, Version{}, err
	}
	defer rows.Close()
	var (
		usages []Version
		schema Version
		found  bool
	)
	for rows.Next() {
		var (
			typ, text string
			subject   sql.NullString
			version   sql.NullInt64
			deleted   sql.NullInt64
		)
		if err := rows.Scan(&typ, &text, &subject, &version, &deleted); err != nil {
			return nil, Version{}, err
		}
		found = true
		schema = Version{ID: id, Type: SchemaType(typ), Schema: text}
		if subject.Valid {
			u := schema
			u.Subject, u.Version, u.Deleted = subject.String, int(version.Int64), deleted.Int64 != 0
			usages = append(usages, u)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, Version{}, err
	}
	if !found {
		return nil, Version{}, ErrSchemaNotFound
	}
	sortVersions(usages)
	return usages, schema, nil
}

// DeleteSubject deletes every version of subject and returns their
// numbers. A soft delete (permanent false) keeps them readable by id and
// with includeDeleted, and registering again continues the numbering; a
// permanent delete, allowed only after a soft delete, removes them, the
// subject's compatibility level and the schemas no other version uses.
// Errors wrap ErrSubjectNotFound, ErrSubjectSoftDeleted (soft delete of a
// soft-deleted subject) or ErrSubjectNotSoftDeleted.
func (s *Store) DeleteSubject(ctx context.Context, subject string, permanent bool) ([]int, error) {
	var deleted []int
	err := s.write(ctx, func(tx *sql.Tx) error {
		deleted = []int{}
		rows, err := s.loadSubject(ctx, tx, subject)
		if err != nil {
			return fmt.Errorf("read versions: %w", err)
		}
		if len(rows) == 0 {
			return ErrSubjectNotFound
		}
		lv := live(rows)
		if !permanent {
			if len(lv) == 0 {
				return ErrSubjectSoftDeleted
			}
			for _, r := range lv {
				deleted = append(deleted, r.version)
			}
			if _, err := tx.ExecContext(ctx, s.q("UPDATE eventlake_sr_versions SET deleted = 1 WHERE subject = ? AND deleted = 0"), subject); err != nil {
				return fmt.Errorf("mark versions deleted: %w", err)
			}
			return nil
		}
		if len(lv) > 0 {
			return ErrSubjectNotSoftDeleted
		}
		if _, err := tx.ExecContext(ctx, s.q("DELETE FROM eventlake_sr_versions WHERE subject = ?"), subject); err != nil {
			return fmt.Errorf("delete versions: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q("DELETE FROM eventlake_sr_config WHERE subject = ?"), subject); err != nil {
			return fmt.Errorf("delete compatibility level: %w", err)
		}
		for _, r := range rows {
			deleted = append(deleted, r.version)
			if err := s.deleteOrphan(ctx, tx, r.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		how := "soft-delete"
		if permanent {
			how = "permanently delete"
		}
		return nil, fmt.Errorf("%s subject %q: %w", how, subject, err)
	}
	return deleted, nil
}

// deleteOrphan removes schema id when no version uses it any more. Its id
// is not handed out again.
func (s *Store) deleteOrphan(ctx context.Context, tx *sql.Tx, id int) error {
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM eventlake_sr_schemas WHERE id = ?
		AND NOT EXISTS (SELECT 1 FROM eventlake_sr_versions WHERE schema_id = ?)`), id, id); err != nil {
		return fmt.Errorf("delete unused schema %d: %w", id, err)
	}
	return nil
}

// DeleteVersion deletes one version of subject (a number or Latest: for a
// soft delete the newest version that is not soft-deleted, for a permanent
// one the newest version) and returns its number. A permanent delete is
// allowed only after a soft delete. Errors wrap ErrSubjectNotFound,
// ErrVersionNotFound, ErrVersionSoftDeleted, ErrVersionNotSoftDeleted or
// ErrInvalidVersion.
func (s *Store) DeleteVersion(ctx context.Context, subject string, version int, permanent bool) (int, error) {
	if version != Latest && version < 1 {
		return 0, fmt.Errorf("delete version %d of subject %q: %w: versions are positive numbers, \"latest\" or -1", version, subject, ErrInvalidVersion)
	}
	var deleted int
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := s.loadSubject(ctx, tx, subject)
		if err != nil {
			return fmt.Errorf("read versions: %w", err)
		}
		if len(rows) == 0 {
			return ErrSubjectNotFound
		}
		var row *versionRow
		candidates := rows
		if version == Latest && !permanent {
			candidates = live(rows)
		}
		for i := range candidates {
			if version == Latest || candidates[i].version == version {
				row = &candidates[i]
			}
		}
		if row == nil {
			return ErrVersionNotFound
		}
		deleted = row.version
		if !permanent {
			if row.deleted {
				return ErrVersionSoftDeleted
			}
			_, err := tx.ExecContext(ctx, s.q("UPDATE eventlake_sr_versions SET deleted = 1 WHERE subject = ? AND version = ?"), subject, row.version)
			if err != nil {
				return fmt.Errorf("mark version deleted: %w", err)
			}
			return nil
		}
		if !row.deleted {
			return ErrVersionNotSoftDeleted
		}
		if _, err := tx.ExecContext(ctx, s.q("DELETE FROM eventlake_sr_versions WHERE subject = ? AND version = ?"), subject, row.version); err != nil {
			return fmt.Errorf("delete version: %w", err)
		}
		return s.deleteOrphan(ctx, tx, row.id)
	})
	if err != nil {
		v := "latest"
		if version != Latest {
			v = strconv.Itoa(version)
		}
		how := "soft-delete"
		if permanent {
			how = "permanently delete"
		}
		return 0, fmt.Errorf("%s version %s of subject %q: %w", how, v, subject, err)
	}
	return deleted, nil
}

// Compatibility returns the compatibility level of subject, or the
// registry-wide level for subject "" (DefaultCompatibility when none is
// set). A subject without its own level gets the registry-wide one with
// defaultToGlobal, else an error wrapping ErrNoSubjectConfig.
func (s *Store) Compatibility(ctx context.Context, subject string, defaultToGlobal bool) (Compatibility, error) {
	var c string
	err := s.db.QueryRowContext(ctx, s.q("SELECT compatibility FROM eventlake_sr_config WHERE subject = ?"), subject).Scan(&c)
	switch {
	case err == nil:
		return Compatibility(c), nil
	case !errors.Is(err, sql.ErrNoRows):
		return "", fmt.Errorf("read compatibility level of %s: %w", subjectOrGlobal(subject), err)
	case subject == "":
		return DefaultCompatibility, nil
	case defaultToGlobal:
		return s.Compatibility(ctx, "", false)
	default:
		return "", fmt.Errorf("read compatibility level of subject %q: %w", subject, ErrNoSubjectConfig)
	}
}

func subjectOrGlobal(subject string) string {
	if subject == "" {
		return "the registry"
	}
	return strconv.Quote(subject)
}

// SetCompatibility sets the compatibility level of subject, or the
// registry-wide one for subject "". The subject need not exist yet.
func (s *Store) SetCompatibility(ctx context.Context, subject string, level Compatibility) error {
	if subject != "" {
		if err := validSubject(subject); err != nil {
			return err
		}
	}
	if _, err := ParseCompatibility(string(level)); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO eventlake_sr_config (subject, compatibility) VALUES (?, ?)
			ON CONFLICT (subject) DO UPDATE SET compatibility = excluded.compatibility`), subject, string(level))
		return err
	})
	if err != nil {
		return fmt.Errorf("set compatibility level of %s: %w", subjectOrGlobal(subject), err)
	}
	return nil
}

// DeleteCompatibility removes the compatibility level of subject (then the
// registry-wide one applies), or resets the registry-wide one to
// DefaultCompatibility for subject "". It returns the level that was set.
// Errors wrap ErrNoSubjectConfig when the subject had none.
func (s *Store) DeleteCompatibility(ctx context.Context, subject string) (Compatibility, error) {
	var prev Compatibility
	err := s.write(ctx, func(tx *sql.Tx) error {
		var c string
		err := tx.QueryRowContext(ctx, s.q("SELECT compatibility FROM eventlake_sr_config WHERE subject = ?"), subject).Scan(&c)
		switch {
		case errors.Is(err, sql.ErrNoRows) && subject == "":
			prev = DefaultCompatibility
			return errRollback
		case errors.Is(err, sql.ErrNoRows):
			return ErrNoSubjectConfig
		case err != nil:
			return err
		}
		prev = Compatibility(c)
		_, err = tx.ExecContext(ctx, s.q("DELETE FROM eventlake_sr_config WHERE subject = ?"), subject)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("delete compatibility level of %s: %w", subjectOrGlobal(subject), err)
	}
	return prev, nil
}

// CheckCompatibility tells whether schema could be registered under subject
// without changing anything: against version (a number: that version only,
// in the direction of the subject's level), Latest (as registration does,
// including the transitive levels) or AllVersions. It returns the reasons
// it is not; none means compatible. A subject without versions is
// compatible with Latest and AllVersions. Errors wrap ErrInvalidSchema,
// ErrSubjectNotFound, ErrVersionNotFound or ErrInvalidVersion.
func (s *Store) CheckCompatibility(ctx context.Context, subject string, version int, typ SchemaType, schema string) ([]string, error) {
	if version < 1 && version != Latest && version != AllVersions {
		return nil, fmt.Errorf("check compatibility with version %d of subject %q: %w: versions are positive numbers, \"latest\" or -1", version, subject, ErrInvalidVersion)
	}
	p, err := parseSchema(typ, schema)
	if err != nil {
		return nil, fmt.Errorf("check compatibility with subject %q: %w", subject, err)
	}
	rows, err := s.loadSubject(ctx, s.db, subject)
	if err != nil {
		return nil, fmt.Errorf("check compatibility with subject %q: read versions: %w", subject, err)
	}
	level, err := s.level(ctx, s.db, subject)
	if err != nil {
		return nil, fmt.Errorf("check compatibility with subject %q: %w", subject, err)
	}
	lv := live(rows)
	var targets []versionRow
	switch version {
	case Latest:
		targets = lv
	case AllVersions:
		targets = lv
		if level != None && !level.transitive() {
			level += "_TRANSITIVE"
		}
	default:
		if len(lv) == 0 {
			return nil, fmt.Errorf("check compatibility with version %d of subject %q: %w", version, subject, ErrSubjectNotFound)
		}
		for _, r := range lv {
			if r.version == version {
				targets = []versionRow{r}
			}
		}
		if targets == nil {
			return nil, fmt.Errorf("check compatibility with version %d of subject %q: %w", version, subject, ErrVersionNotFound)
		}
	}
	prior, err := priors(subject, level, targets)
	if err != nil {
		return nil, fmt.Errorf("check compatibility with subject %q: %w", subject, err)
	}
	return checkCompatibility(subject, level, p, prior), nil
}

// Generation returns a number that differs after every change to the
// registry (Generationer): one small read, cheap enough to poll every
// second.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	var g int64
	if err := s.db.QueryRowContext(ctx, "SELECT value FROM eventlake_sr_meta WHERE name = 'generation'").Scan(&g); err != nil {
		return 0, fmt.Errorf("read schema registry generation: %w", err)
	}
	return g, nil
}
