package memory

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// CreateUser implements store.UserStore.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	if err := u.Validate(); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	u = copyUser(u)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	if _, ok := s.users[u.ID]; ok {
		return fmt.Errorf("create user %s: %w: id taken", u.ID, store.ErrConflict)
	}
	if err := s.userClash(u); err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, err)
	}
	s.users[u.ID] = u
	s.gen++
	return nil
}

// UpdateUser implements store.UserStore.
func (s *Store) UpdateUser(ctx context.Context, u store.User) error {
	if err := u.Validate(); err != nil {
		return fmt.Errorf("update user: %w", err)
	}
	u = copyUser(u)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("update user: %w", err)
	}
	old, ok := s.users[u.ID]
	if !ok {
		return fmt.Errorf("update user %s: %w", u.ID, store.ErrNotFound)
	}
	if err := s.userClash(u); err != nil {
		return fmt.Errorf("update user %s: %w", u.ID, err)
	}
	s.users[u.ID] = u
	if !onlyLoggedIn(old, u) {
		s.gen++
	}
	return nil
}

// onlyLoggedIn reports whether b differs from a in nothing but LastLogin,
// which store.ChangeStore's generation ignores.
func onlyLoggedIn(a, b store.User) bool {
	return a.ID == b.ID && a.Username == b.Username && a.Email == b.Email && slices.Equal(a.Groups, b.Groups) &&
		a.PasswordHash == b.PasswordHash && a.Issuer == b.Issuer && a.Subject == b.Subject &&
		a.Disabled == b.Disabled && a.CreatedAt.Equal(b.CreatedAt)
}

// userClash reports ErrConflict when another user holds u's username or
// federated identity, as the SQL backends' unique indexes do; the caller
// must hold s.mu.
func (s *Store) userClash(u store.User) error {
	for _, other := range s.users {
		if other.ID == u.ID {
			continue
		}
		if other.Username == u.Username {
			return fmt.Errorf("%w: username taken", store.ErrConflict)
		}
		if u.Issuer != "" && other.Issuer == u.Issuer && other.Subject == u.Subject {
			return fmt.Errorf("%w: federated identity taken", store.ErrConflict)
		}
	}
	return nil
}

// GetUser implements store.UserStore.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	u, err := s.findUser(ctx, store.StorableKey(id), func(u store.User) bool { return u.ID == id })
	if err != nil {
		return store.User{}, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// GetUserByUsername implements store.UserStore.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (store.User, error) {
	u, err := s.findUser(ctx, store.StorableKey(username), func(u store.User) bool { return u.Username == username })
	if err != nil {
		return store.User{}, fmt.Errorf("get user by username: %w", err)
	}
	return u, nil
}

// GetUserBySubject implements store.UserStore.
func (s *Store) GetUserBySubject(ctx context.Context, issuer, subject string) (store.User, error) {
	u, err := s.findUser(ctx, store.StorableKey(issuer) && store.StorableKey(subject), func(u store.User) bool {
		return u.Issuer == issuer && u.Subject == subject
	})
	if err != nil {
		return store.User{}, fmt.Errorf("get user by subject: %w", err)
	}
	return u, nil
}

// findUser returns a copy of the user match selects. A key that no stored
// user can carry (storable false) is not found without looking.
func (s *Store) findUser(ctx context.Context, storable bool, match func(store.User) bool) (store.User, error) {
	if !storable {
		return store.User{}, store.ErrNotFound
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return store.User{}, err
	}
	for _, u := range s.users {
		if match(u) {
			return copyUser(u), nil
		}
	}
	return store.User{}, store.ErrNotFound
}

// ListUsers implements store.UserStore.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]store.User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, copyUser(u))
	}
	slices.SortFunc(out, func(a, b store.User) int { return strings.Compare(a.Username, b.Username) })
	return out, nil
}

// CountUsers implements store.UserStore.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return len(s.users), nil
}

// PutAgent implements store.AgentStore.
func (s *Store) PutAgent(ctx context.Context, a store.Agent) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("put agent: %w", err)
	}
	a = copyAgent(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("put agent: %w", err)
	}
	s.agents[a.ID] = a
	s.gen++
	return nil
}

// GetAgent implements store.AgentStore.
func (s *Store) GetAgent(ctx context.Context, id string) (store.Agent, error) {
	if !store.StorableKey(id) {
		return store.Agent{}, fmt.Errorf("get agent: %w", store.ErrNotFound)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return store.Agent{}, fmt.Errorf("get agent: %w", err)
	}
	a, ok := s.agents[id]
	if !ok {
		return store.Agent{}, fmt.Errorf("get agent %s: %w", id, store.ErrNotFound)
	}
	return copyAgent(a), nil
}

// ListAgents implements store.AgentStore.
func (s *Store) ListAgents(ctx context.Context) ([]store.Agent, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	out := make([]store.Agent, 0, len(s.agents))
	for _, a := range s.agents {
		out = append(out, copyAgent(a))
	}
	slices.SortFunc(out, func(a, b store.Agent) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// SetAgentStatus implements store.AgentStore.
func (s *Store) SetAgentStatus(ctx context.Context, id, status string) error {
	if err := store.ValidateAgentStatus(status); err != nil {
		return fmt.Errorf("set agent status: %w", err)
	}
	if !store.StorableKey(id) {
		return fmt.Errorf("set agent status: %w", store.ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("set agent status: %w", err)
	}
	a, ok := s.agents[id]
	if !ok {
		return fmt.Errorf("set agent status %s: %w", id, store.ErrNotFound)
	}
	if a.Status != status {
		a.Status = status
		s.agents[id] = a
		s.gen++
	}
	return nil
}

// TouchAgent implements store.AgentStore.
func (s *Store) TouchAgent(ctx context.Context, id string, at time.Time) error {
	if err := store.ValidateTime("agent sighting", at); err != nil {
		return fmt.Errorf("touch agent: %w", err)
	}
	if !store.StorableKey(id) {
		return fmt.Errorf("touch agent: %w", store.ErrNotFound)
	}
	at = normal(at)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("touch agent: %w", err)
	}
	a, ok := s.agents[id]
	if !ok {
		return fmt.Errorf("touch agent %s: %w", id, store.ErrNotFound)
	}
	if a.FirstSeen.IsZero() {
		a.FirstSeen = at
	}
	if at.After(a.LastSeen) {
		a.LastSeen = at
	}
	s.agents[id] = a
	return nil
}

// PutAuthRequest implements store.OAuthStore.
func (s *Store) PutAuthRequest(ctx context.Context, r store.AuthRequest) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("put auth request: %w", err)
	}
	r = copyAuthRequest(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("put auth request: %w", err)
	}
	if r.Code != "" {
		for _, other := range s.authRequests {
			if other.ID != r.ID && other.Code == r.Code {
				return fmt.Errorf("put auth request: %w: code taken", store.ErrConflict)
			}
		}
	}
	s.authRequests[r.ID] = r
	return nil
}

// GetAuthRequest implements store.OAuthStore.
func (s *Store) GetAuthRequest(ctx context.Context, id string) (store.AuthRequest, error) {
	r, err := s.findAuthRequest(ctx, store.StorableKey(id), func(r store.AuthRequest) bool { return r.ID == id })
	if err != nil {
		return store.AuthRequest{}, fmt.Errorf("get auth request: %w", err)
	}
	return r, nil
}

// GetAuthRequestByCode implements store.OAuthStore. The empty code is never
// found: it is what every request carries before its code is issued.
func (s *Store) GetAuthRequestByCode(ctx context.Context, code string) (store.AuthRequest, error) {
	r, err := s.findAuthRequest(ctx, store.StorableKey(code), func(r store.AuthRequest) bool { return r.Code == code })
	if err != nil {
		return store.AuthRequest{}, fmt.Errorf("get auth request by code: %w", err)
	}
	return r, nil
}

func (s *Store) findAuthRequest(ctx context.Context, storable bool, match func(store.AuthRequest) bool) (store.AuthRequest, error) {
	if !storable {
		return store.AuthRequest{}, store.ErrNotFound
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return store.AuthRequest{}, err
	}
	for _, r := range s.authRequests {
		if match(r) {
			return copyAuthRequest(r), nil
		}
	}
	return store.AuthRequest{}, store.ErrNotFound
}

// DeleteAuthRequest implements store.OAuthStore. It reports ErrNotFound when
// there was nothing to delete, so of two callers redeeming the same code
// only one sees its delete succeed.
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	if !store.StorableKey(id) {
		return fmt.Errorf("delete auth request: %w", store.ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("delete auth request: %w", err)
	}
	if _, ok := s.authRequests[id]; !ok {
		return fmt.Errorf("delete auth request: %w", store.ErrNotFound)
	}
	delete(s.authRequests, id)
	return nil
}

// DeleteExpiredAuthRequests implements store.OAuthStore. A request expires
// at its ExpiresAt, so one expiring exactly at now is removed.
func (s *Store) DeleteExpiredAuthRequests(ctx context.Context, now time.Time) (int, error) {
	if err := store.ValidateTime("now", now); err != nil {
		return 0, fmt.Errorf("delete expired auth requests: %w", err)
	}
	now = normal(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return 0, fmt.Errorf("delete expired auth requests: %w", err)
	}
	n := 0
	for id, r := range s.authRequests {
		if !r.ExpiresAt.After(now) {
			delete(s.authRequests, id)
			n++
		}
	}
	return n, nil
}

// PutRefreshToken implements store.OAuthStore.
func (s *Store) PutRefreshToken(ctx context.Context, t store.RefreshToken) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("put refresh token: %w", err)
	}
	t = copyRefreshToken(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("put refresh token: %w", err)
	}
	if _, ok := s.refreshTokens[t.ID]; ok {
		return fmt.Errorf("put refresh token: %w: id taken", store.ErrConflict)
	}
	s.refreshTokens[t.ID] = t
	return nil
}

// GetRefreshToken implements store.OAuthStore.
func (s *Store) GetRefreshToken(ctx context.Context, id string) (store.RefreshToken, error) {
	if !store.StorableKey(id) {
		return store.RefreshToken{}, fmt.Errorf("get refresh token: %w", store.ErrNotFound)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return store.RefreshToken{}, fmt.Errorf("get refresh token: %w", err)
	}
	t, ok := s.refreshTokens[id]
	if !ok {
		return store.RefreshToken{}, fmt.Errorf("get refresh token: %w", store.ErrNotFound)
	}
	return copyRefreshToken(t), nil
}

// UseRefreshToken implements store.OAuthStore. A used or revoked token gives
// ErrConflict even once expired: presenting it still means it was stolen.
func (s *Store) UseRefreshToken(ctx context.Context, id string, now time.Time) (store.RefreshToken, error) {
	if err := store.ValidateTime("now", now); err != nil {
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w", err)
	}
	if !store.StorableKey(id) {
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w", store.ErrNotFound)
	}
	now = normal(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w", err)
	}
	t, ok := s.refreshTokens[id]
	switch {
	case !ok:
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w", store.ErrNotFound)
	case !t.UsedAt.IsZero():
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w: already used", store.ErrConflict)
	case !t.RevokedAt.IsZero():
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w: revoked", store.ErrConflict)
	case !t.ExpiresAt.After(now):
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w: expired", store.ErrNotFound)
	}
	t.UsedAt = now
	s.refreshTokens[id] = t
	return copyRefreshToken(t), nil
}

// RevokeTokenFamily implements store.OAuthStore. Tokens revoked before keep
// their first revocation time. An empty family is refused rather than
// matching nothing, so a caller's bug cannot pass for a revocation.
func (s *Store) RevokeTokenFamily(ctx context.Context, family string, now time.Time) error {
	if !store.StorableKey(family) {
		return fmt.Errorf("revoke token family: %w: unusable family", store.ErrInvalid)
	}
	if err := store.ValidateTime("now", now); err != nil {
		return fmt.Errorf("revoke token family: %w", err)
	}
	now = normal(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("revoke token family: %w", err)
	}
	for id, t := range s.refreshTokens {
		if t.Family == family && t.RevokedAt.IsZero() {
			t.RevokedAt = now
			s.refreshTokens[id] = t
		}
	}
	return nil
}

// PutSigningKey implements store.OAuthStore. It creates or replaces the key
// with k.ID.
func (s *Store) PutSigningKey(ctx context.Context, k store.SigningKey) error {
	if err := k.Validate(); err != nil {
		return fmt.Errorf("put signing key: %w", err)
	}
	k = copySigningKey(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("put signing key: %w", err)
	}
	s.signingKeys[k.ID] = k
	return nil
}

// ListSigningKeys implements store.OAuthStore. Keys created at the same time
// come in ID order.
func (s *Store) ListSigningKeys(ctx context.Context, now time.Time) ([]store.SigningKey, error) {
	if err := store.ValidateTime("now", now); err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	now = normal(now)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	out := []store.SigningKey{}
	for _, k := range s.signingKeys {
		if k.RetireAt.After(now) {
			out = append(out, copySigningKey(k))
		}
	}
	slices.SortFunc(out, func(a, b store.SigningKey) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// DeleteSigningKey implements store.OAuthStore; ErrNotFound when absent.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	if !store.StorableKey(id) {
		return fmt.Errorf("delete signing key: %w", store.ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("delete signing key: %w", err)
	}
	if _, ok := s.signingKeys[id]; !ok {
		return fmt.Errorf("delete signing key %s: %w", id, store.ErrNotFound)
	}
	delete(s.signingKeys, id)
	return nil
}

// The copy functions give every stored or returned record its own slices,
// times at the store's precision in UTC, and nil for empty slices, which is
// how the SQL backends read them back.

func copyUser(u store.User) store.User {
	u.Groups = list(u.Groups)
	u.CreatedAt, u.LastLogin = normal(u.CreatedAt), normal(u.LastLogin)
	return u
}

func copyAgent(a store.Agent) store.Agent {
	a.RedirectURIs, a.GrantTypes, a.Scopes = list(a.RedirectURIs), list(a.GrantTypes), list(a.Scopes)
	a.JWKS, a.Metadata = blob(a.JWKS), blob(a.Metadata)
	a.CreatedAt, a.FirstSeen, a.LastSeen = normal(a.CreatedAt), normal(a.FirstSeen), normal(a.LastSeen)
	return a
}

func copyAuthRequest(r store.AuthRequest) store.AuthRequest {
	r.Scopes, r.Resource = list(r.Scopes), list(r.Resource)
	r.AuthTime, r.CreatedAt, r.ExpiresAt = normal(r.AuthTime), normal(r.CreatedAt), normal(r.ExpiresAt)
	return r
}

func copyRefreshToken(t store.RefreshToken) store.RefreshToken {
	t.Scopes, t.Audience, t.AMR = list(t.Scopes), list(t.Audience), list(t.AMR)
	t.AuthTime, t.CreatedAt, t.ExpiresAt = normal(t.AuthTime), normal(t.CreatedAt), normal(t.ExpiresAt)
	t.UsedAt, t.RevokedAt = normal(t.UsedAt), normal(t.RevokedAt)
	return t
}

func copySigningKey(k store.SigningKey) store.SigningKey {
	k.Private = blob(k.Private)
	k.CreatedAt, k.NotAfter, k.RetireAt = normal(k.CreatedAt), normal(k.NotAfter), normal(k.RetireAt)
	return k
}

// normal truncates to the store's precision in UTC; the zero time stays zero.
func normal(t time.Time) time.Time { return t.UTC().Truncate(store.TimePrecision) }

func list(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return slices.Clone(l)
}

func blob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}
