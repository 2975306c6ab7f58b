package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/eventlake/eventlake/internal/logkey"
)

// ErrUnauthenticated: no token, or one that is not a live token.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrUnavailable: the token store could not be asked about a token this
// process has not seen.
var ErrUnavailable = errors.New("the token store is unavailable")

// Authenticator checks tokens against a Store. It keeps the live tokens in
// memory and reloads them every refresh interval, so a revoked token stops
// working within one interval; a token created since the last reload is
// looked up in the store at once.
type Authenticator struct {
	store    *Store
	interval time.Duration
	log      *slog.Logger

	mu     sync.RWMutex
	byHash map[string]Principal
}

// NewAuthenticator returns an Authenticator over store. Call Refresh once
// before serving and Run in the background.
func NewAuthenticator(store *Store, interval time.Duration, log *slog.Logger) *Authenticator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = DefaultRefreshInterval
	}
	return &Authenticator{store: store, interval: interval, log: log, byHash: map[string]Principal{}}
}

// Refresh reloads the live tokens.
func (a *Authenticator) Refresh(ctx context.Context) error {
	live, err := a.store.live(ctx)
	if err != nil {
		return fmt.Errorf("load tokens: %w", err)
	}
	a.mu.Lock()
	a.byHash = live
	a.mu.Unlock()
	return nil
}

// Run refreshes every interval until ctx ends. A failed refresh keeps the
// tokens loaded before (revocations wait for the store to come back).
func (a *Authenticator) Run(ctx context.Context) {
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.Refresh(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("reload tokens (the ones loaded before stay in force)", logkey.Err, err)
		}
	}
}

// Check returns the principal of token (Client unset).
func (a *Authenticator) Check(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrUnauthenticated
	}
	return a.checkHash(ctx, Hash(token))
}

// checkHash is Check of a token known by its hash (a browser session
// keeps the hash, so a revoked token ends its sessions too).
func (a *Authenticator) checkHash(ctx context.Context, h string) (Principal, error) {
	a.mu.RLock()
	p, ok := a.byHash[h]
	a.mu.RUnlock()
	if ok {
		return p, nil
	}
	p, ok, err := a.store.lookup(ctx, h)
	switch {
	case err != nil:
		return Principal{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	case !ok:
		return Principal{}, ErrUnauthenticated
	}
	a.mu.Lock()
	a.byHash[h] = p
	a.mu.Unlock()
	return p, nil
}

// CheckUser is Check for clients that send a user name with the token
// (Postgres wire, HTTP basic auth): the name must be the token's.
func (a *Authenticator) CheckUser(ctx context.Context, user, token string) (Principal, error) {
	p, err := a.Check(ctx, token)
	if err != nil {
		return p, err
	}
	if subtle.ConstantTimeCompare([]byte(p.Name), []byte(user)) != 1 {
		return Principal{}, ErrUnauthenticated
	}
	return p, nil
}
