package auth

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// SessionCookie names the cookie of a browser logged in to the live page.
const SessionCookie = "eventlake_session"

// Session defaults: a working day, and enough browsers for a team.
const (
	DefaultSessionTTL  = 12 * time.Hour
	DefaultMaxSessions = 1000
)

// Sessions keeps the browser sessions of one process, in memory: a
// session id is 32 random bytes that name the hash of the token the
// browser logged in with, never the token itself. The cookie therefore
// holds nothing a thief could use elsewhere (not the bearer token, which
// also works for POST /v1/sql and the Postgres front end), and every
// request of a session is checked against the token store again, so a
// revoked token ends its sessions within auth.refresh_interval. A restart
// forgets every session: the browser logs in again with ?token=.
type Sessions struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu   sync.Mutex
	byID map[string]session
}

type session struct {
	hash    string // auth.Hash of the token
	expires time.Time
}

// NewSessions returns an empty session table: a session lasts ttl, and at
// most max live at once (the one that expires first is dropped to make
// room). Zero values take the defaults; a nil now is time.Now.
func NewSessions(ttl time.Duration, max int, now func() time.Time) *Sessions {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	if max <= 0 {
		max = DefaultMaxSessions
	}
	if now == nil {
		now = time.Now
	}
	return &Sessions{ttl: ttl, max: max, now: now, byID: map[string]session{}}
}

// create opens a session for the token whose hash is h.
func (s *Sessions) create(h string) (id string, expires time.Time) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	id = base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	expires = now.Add(s.ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= s.max {
		var first string
		for k, v := range s.byID {
			if !v.expires.After(now) {
				delete(s.byID, k)
				continue
			}
			if first == "" || v.expires.Before(s.byID[first].expires) {
				first = k
			}
		}
		if len(s.byID) >= s.max {
			delete(s.byID, first)
		}
	}
	s.byID[id] = session{hash: h, expires: expires}
	return id, expires
}

// lookup returns the token hash of a live session.
func (s *Sessions) lookup(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[id]
	if !ok {
		return "", false
	}
	if !v.expires.After(s.now()) {
		delete(s.byID, id)
		return "", false
	}
	return v.hash, true
}
