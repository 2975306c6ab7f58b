package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/eventlake/eventlake/internal/sqldb"
)

// Store keeps bearer tokens in the catalog's SQL database (table
// eventlake_tokens), so that every process of a deployment shares them.
// Only a token's SHA-256 is stored: a token is 32 random bytes, too many
// to guess, so a salted slow hash would add nothing but cost per request.
// The token itself is shown once, when it is created.
type Store struct {
	db      *sql.DB
	dialect string
	now     func() time.Time
}

// Token describes a stored token (never the token itself).
type Token struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// TokenPrefix starts every token, so that a leaked one is easy to find
// (secret scanners, logs).
const TokenPrefix = "elk_"

// ErrNotFound: no live token has that name.
var ErrNotFound = errors.New("no such token")

// ErrExists: a live token already has that name.
var ErrExists = errors.New("a token with this name exists")

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$`)

// CheckName refuses names that would be awkward as a Postgres user name or
// in a log line.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("token name %q: use 1-128 letters, digits and . _ @ -, starting with a letter or digit", name)
	}
	return nil
}

// OpenStore creates the token table in db if it is missing. dialect is
// sqldb.SQLite or sqldb.Postgres. The Store does not own db.
func OpenStore(ctx context.Context, db *sql.DB, dialect string) (*Store, error) {
	if db == nil {
		return nil, errors.New("open token store: the database is nil")
	}
	if err := sqldb.CheckDialect(dialect); err != nil {
		return nil, fmt.Errorf("open token store: %w", err)
	}
	s := &Store{db: db, dialect: dialect, now: time.Now}
	err := sqldb.Retry(ctx, func(ctx context.Context) error {
		for _, stmt := range []string{
			`CREATE TABLE IF NOT EXISTS eventlake_tokens (
				hash TEXT PRIMARY KEY,
				name TEXT NOT NULL,
				role TEXT NOT NULL,
				created_at BIGINT NOT NULL,
				revoked_at BIGINT)`,
			// One live token per name; revoked ones stay, to tell later
			// who a name in the audit log was.
			`CREATE UNIQUE INDEX IF NOT EXISTS eventlake_tokens_live_name ON eventlake_tokens (name) WHERE revoked_at IS NULL`,
		} {
			if _, err := s.db.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create the token table: %w", err)
	}
	return s, nil
}

// Hash is how a token is stored and looked up.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken returns a fresh random token.
func NewToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// Create stores a new token for name with role and returns it; this is
// the only time the token is seen. Role is not checked against a policy
// here: the caller does that (Policy.Has).
func (s *Store) Create(ctx context.Context, name, role string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	if role == "" {
		return "", errors.New("a token needs a role")
	}
	token := NewToken()
	_, err := s.db.ExecContext(ctx, sqldb.Rebind(s.dialect,
		`INSERT INTO eventlake_tokens (hash, name, role, created_at) VALUES (?, ?, ?, ?)`),
		Hash(token), name, role, s.now().UnixMicro())
	if err != nil {
		if isUniqueViolation(err) {
			return "", fmt.Errorf("%w: %q (revoke it first, or choose another name)", ErrExists, name)
		}
		return "", fmt.Errorf("store token %q: %w", name, err)
	}
	return token, nil
}

func isUniqueViolation(err error) bool {
	// Both drivers' messages name the constraint failure.
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "unique") || strings.Contains(msg, "duplicate key")
}

// Revoke revokes the live token named name.
func (s *Store) Revoke(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, sqldb.Rebind(s.dialect,
		`UPDATE eventlake_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL`), s.now().UnixMicro(), name)
	if err != nil {
		return fmt.Errorf("revoke token %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return nil
}

// List returns every token, live ones first, by name; revoked ones only
// when withRevoked is set.
func (s *Store) List(ctx context.Context, withRevoked bool) ([]Token, error) {
	q := `SELECT name, role, created_at, revoked_at FROM eventlake_tokens`
	if !withRevoked {
		q += ` WHERE revoked_at IS NULL`
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY revoked_at IS NOT NULL, name, created_at`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var (
			t       Token
			created int64
			revoked sql.NullInt64
		)
		if err := rows.Scan(&t.Name, &t.Role, &created, &revoked); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		t.CreatedAt = time.UnixMicro(created).UTC()
		if revoked.Valid {
			r := time.UnixMicro(revoked.Int64).UTC()
			t.RevokedAt = &r
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// live returns the live tokens by hash.
func (s *Store) live(ctx context.Context) (map[string]Principal, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT hash, name, role FROM eventlake_tokens WHERE revoked_at IS NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Principal{}
	for rows.Next() {
		var h string
		var p Principal
		if err := rows.Scan(&h, &p.Name, &p.Role); err != nil {
			return nil, err
		}
		out[h] = p
	}
	return out, rows.Err()
}

// lookup returns the live token with hash h.
func (s *Store) lookup(ctx context.Context, h string) (Principal, bool, error) {
	var p Principal
	err := s.db.QueryRowContext(ctx, sqldb.Rebind(s.dialect,
		`SELECT name, role FROM eventlake_tokens WHERE hash = ? AND revoked_at IS NULL`), h).Scan(&p.Name, &p.Role)
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	return p, err == nil, err
}
