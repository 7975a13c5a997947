package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

const userColumns = `id, username, email, user_groups, password_hash, issuer, subject, disabled, created_at_us, last_login_us`

// CreateUser implements store.UserStore. The primary key and the unique
// indexes on username and (issuer, subject) report a taken id or identity.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	if err := u.Validate(); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, u.Email, toList(u.Groups), u.PasswordHash, u.Issuer, u.Subject, u.Disabled,
		toMicros(u.CreatedAt), toNullMicros(u.LastLogin))
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, s.mapError(err))
	}
	return nil
}

// UpdateUser implements store.UserStore.
func (s *Store) UpdateUser(ctx context.Context, u store.User) error {
	if err := u.Validate(); err != nil {
		return fmt.Errorf("update user: %w", err)
	}
	res, err := s.db.ExecContext(ctx, `
UPDATE users SET username = ?, email = ?, user_groups = ?, password_hash = ?, issuer = ?, subject = ?,
    disabled = ?, created_at_us = ?, last_login_us = ?
WHERE id = ?`,
		u.Username, u.Email, toList(u.Groups), u.PasswordHash, u.Issuer, u.Subject, u.Disabled,
		toMicros(u.CreatedAt), toNullMicros(u.LastLogin), u.ID)
	if err := s.onlyOne(res, err); err != nil {
		return fmt.Errorf("update user %s: %w", u.ID, err)
	}
	return nil
}

// GetUser implements store.UserStore.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	if !store.StorableKey(id) {
		return store.User{}, fmt.Errorf("get user: %w", store.ErrNotFound)
	}
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if err != nil {
		return store.User{}, fmt.Errorf("get user %s: %w", id, s.mapError(err))
	}
	return u, nil
}

// GetUserByUsername implements store.UserStore.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (store.User, error) {
	if !store.StorableKey(username) {
		return store.User{}, fmt.Errorf("get user by username: %w", store.ErrNotFound)
	}
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE username = ?`, username))
	if err != nil {
		return store.User{}, fmt.Errorf("get user by username: %w", s.mapError(err))
	}
	return u, nil
}

// GetUserBySubject implements store.UserStore. Repeating the partial
// index's condition in the query lets SQLite use that index.
func (s *Store) GetUserBySubject(ctx context.Context, issuer, subject string) (store.User, error) {
	if !store.StorableKey(issuer) || !store.StorableKey(subject) {
		return store.User{}, fmt.Errorf("get user by subject: %w", store.ErrNotFound)
	}
	u, err := scanUser(s.queryRow(ctx,
		`SELECT `+userColumns+` FROM users WHERE issuer = ? AND subject = ? AND issuer <> ''`, issuer, subject))
	if err != nil {
		return store.User{}, fmt.Errorf("get user by subject: %w", s.mapError(err))
	}
	return u, nil
}

// ListUsers implements store.UserStore. SQLite's default BINARY collation
// orders usernames bytewise, as the other backends do.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", s.mapError(err))
	}
	out, err := collect(rows, scanUser)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", s.mapError(err))
	}
	return out, nil
}

// CountUsers implements store.UserStore.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", s.mapError(err))
	}
	return n, nil
}

const agentColumns = `id, name, registration, owner, trust_level, status, redirect_uris, grant_types, auth_method,
    secret_hash, jwks, jwks_url, scopes, metadata, created_at_us, first_seen_us, last_seen_us`

// PutAgent implements store.AgentStore.
func (s *Store) PutAgent(ctx context.Context, a store.Agent) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("put agent: %w", err)
	}
	_, err := s.db.ExecContext(ctx, `
INSERT INTO agents (`+agentColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, registration = excluded.registration, owner = excluded.owner,
    trust_level = excluded.trust_level, status = excluded.status, redirect_uris = excluded.redirect_uris,
    grant_types = excluded.grant_types, auth_method = excluded.auth_method, secret_hash = excluded.secret_hash,
    jwks = excluded.jwks, jwks_url = excluded.jwks_url, scopes = excluded.scopes, metadata = excluded.metadata,
    created_at_us = excluded.created_at_us, first_seen_us = excluded.first_seen_us,
    last_seen_us = excluded.last_seen_us`,
		a.ID, a.Name, a.Registration, a.Owner, a.TrustLevel, a.Status, toList(a.RedirectURIs), toList(a.GrantTypes),
		a.AuthMethod, a.SecretHash, toBlob(a.JWKS), a.JWKSURL, toList(a.Scopes), toBlob(a.Metadata),
		toMicros(a.CreatedAt), toNullMicros(a.FirstSeen), toNullMicros(a.LastSeen))
	if err != nil {
		return fmt.Errorf("put agent %s: %w", a.ID, s.mapError(err))
	}
	return nil
}

// GetAgent implements store.AgentStore.
func (s *Store) GetAgent(ctx context.Context, id string) (store.Agent, error) {
	if !store.StorableKey(id) {
		return store.Agent{}, fmt.Errorf("get agent: %w", store.ErrNotFound)
	}
	a, err := scanAgent(s.queryRow(ctx, `SELECT `+agentColumns+` FROM agents WHERE id = ?`, id))
	if err != nil {
		return store.Agent{}, fmt.Errorf("get agent %s: %w", id, s.mapError(err))
	}
	return a, nil
}

// ListAgents implements store.AgentStore.
func (s *Store) ListAgents(ctx context.Context) ([]store.Agent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+agentColumns+` FROM agents ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", s.mapError(err))
	}
	out, err := collect(rows, scanAgent)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", s.mapError(err))
	}
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
	res, err := s.db.ExecContext(ctx, `UPDATE agents SET status = ? WHERE id = ?`, status, id)
	if err := s.onlyOne(res, err); err != nil {
		return fmt.Errorf("set agent status %s: %w", id, err)
	}
	return nil
}

// TouchAgent implements store.AgentStore in one statement, so concurrent
// sightings cannot move LastSeen backwards.
func (s *Store) TouchAgent(ctx context.Context, id string, at time.Time) error {
	if err := store.ValidateTime("agent sighting", at); err != nil {
		return fmt.Errorf("touch agent: %w", err)
	}
	if !store.StorableKey(id) {
		return fmt.Errorf("touch agent: %w", store.ErrNotFound)
	}
	us := toMicros(at)
	res, err := s.db.ExecContext(ctx, `
UPDATE agents SET
    first_seen_us = coalesce(first_seen_us, ?),
    last_seen_us = CASE WHEN last_seen_us IS NULL OR last_seen_us < ? THEN ? ELSE last_seen_us END
WHERE id = ?`, us, us, us, id)
	if err := s.onlyOne(res, err); err != nil {
		return fmt.Errorf("touch agent %s: %w", id, err)
	}
	return nil
}

const authRequestColumns = `id, client_id, redirect_uri, state, nonce, scopes, response_type, code_challenge,
    code_challenge_method, resource, user_id, auth_time_us, done, code, created_at_us, expires_at_us`

// PutAuthRequest implements store.OAuthStore. A code another request holds
// violates the partial unique index and is reported as ErrConflict.
func (s *Store) PutAuthRequest(ctx context.Context, r store.AuthRequest) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("put auth request: %w", err)
	}
	_, err := s.db.ExecContext(ctx, `
INSERT INTO auth_requests (`+authRequestColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    client_id = excluded.client_id, redirect_uri = excluded.redirect_uri, state = excluded.state,
    nonce = excluded.nonce, scopes = excluded.scopes, response_type = excluded.response_type,
    code_challenge = excluded.code_challenge, code_challenge_method = excluded.code_challenge_method,
    resource = excluded.resource, user_id = excluded.user_id, auth_time_us = excluded.auth_time_us,
    done = excluded.done, code = excluded.code, created_at_us = excluded.created_at_us,
    expires_at_us = excluded.expires_at_us`,
		r.ID, r.ClientID, r.RedirectURI, r.State, r.Nonce, toList(r.Scopes), r.ResponseType, r.CodeChallenge,
		r.CodeChallengeMethod, toList(r.Resource), r.UserID, toNullMicros(r.AuthTime), r.Done, r.Code,
		toMicros(r.CreatedAt), toMicros(r.ExpiresAt))
	if err != nil {
		return fmt.Errorf("put auth request: %w", s.mapError(err))
	}
	return nil
}

// GetAuthRequest implements store.OAuthStore.
func (s *Store) GetAuthRequest(ctx context.Context, id string) (store.AuthRequest, error) {
	if !store.StorableKey(id) {
		return store.AuthRequest{}, fmt.Errorf("get auth request: %w", store.ErrNotFound)
	}
	r, err := scanAuthRequest(s.db.QueryRowContext(ctx,
		`SELECT `+authRequestColumns+` FROM auth_requests WHERE id = ?`, id))
	if err != nil {
		return store.AuthRequest{}, fmt.Errorf("get auth request: %w", s.mapError(err))
	}
	return r, nil
}

// GetAuthRequestByCode implements store.OAuthStore. The empty code is never
// found: it is what every request carries before its code is issued.
func (s *Store) GetAuthRequestByCode(ctx context.Context, code string) (store.AuthRequest, error) {
	if !store.StorableKey(code) {
		return store.AuthRequest{}, fmt.Errorf("get auth request by code: %w", store.ErrNotFound)
	}
	r, err := scanAuthRequest(s.db.QueryRowContext(ctx,
		`SELECT `+authRequestColumns+` FROM auth_requests WHERE code = ? AND code <> ''`, code))
	if err != nil {
		return store.AuthRequest{}, fmt.Errorf("get auth request by code: %w", s.mapError(err))
	}
	return r, nil
}

// DeleteAuthRequest implements store.OAuthStore. It reports ErrNotFound when
// there was nothing to delete, so of two callers redeeming the same code
// only one sees its delete succeed.
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	if !store.StorableKey(id) {
		return fmt.Errorf("delete auth request: %w", store.ErrNotFound)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM auth_requests WHERE id = ?`, id)
	if err := s.onlyOne(res, err); err != nil {
		return fmt.Errorf("delete auth request: %w", err)
	}
	return nil
}

// DeleteExpiredAuthRequests implements store.OAuthStore. A request expires
// at its ExpiresAt, so one expiring exactly at now is removed.
func (s *Store) DeleteExpiredAuthRequests(ctx context.Context, now time.Time) (int, error) {
	if err := store.ValidateTime("now", now); err != nil {
		return 0, fmt.Errorf("delete expired auth requests: %w", err)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM auth_requests WHERE expires_at_us <= ?`, toMicros(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired auth requests: %w", s.mapError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired auth requests: %w", s.mapError(err))
	}
	return int(n), nil
}

const refreshTokenColumns = `id, family, client_id, user_id, scopes, audience, amr, auth_time_us, created_at_us,
    expires_at_us, used_at_us, revoked_at_us`

// PutRefreshToken implements store.OAuthStore.
func (s *Store) PutRefreshToken(ctx context.Context, t store.RefreshToken) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("put refresh token: %w", err)
	}
	_, err := s.db.ExecContext(ctx, `
INSERT INTO refresh_tokens (`+refreshTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Family, t.ClientID, t.UserID, toList(t.Scopes), toList(t.Audience), toList(t.AMR),
		toNullMicros(t.AuthTime), toMicros(t.CreatedAt), toMicros(t.ExpiresAt),
		toNullMicros(t.UsedAt), toNullMicros(t.RevokedAt))
	if err != nil {
		return fmt.Errorf("put refresh token: %w", s.mapError(err))
	}
	return nil
}

// GetRefreshToken implements store.OAuthStore.
func (s *Store) GetRefreshToken(ctx context.Context, id string) (store.RefreshToken, error) {
	if !store.StorableKey(id) {
		return store.RefreshToken{}, fmt.Errorf("get refresh token: %w", store.ErrNotFound)
	}
	t, err := scanRefreshToken(s.db.QueryRowContext(ctx,
		`SELECT `+refreshTokenColumns+` FROM refresh_tokens WHERE id = ?`, id))
	if err != nil {
		return store.RefreshToken{}, fmt.Errorf("get refresh token: %w", s.mapError(err))
	}
	return t, nil
}

// UseRefreshToken implements store.OAuthStore. The single conditional
// UPDATE is what makes it atomic: of concurrent uses, exactly one matches
// the row. Only when it matches nothing does a second read find out why; a
// used or revoked token gives ErrConflict even once expired, because
// presenting it still means it was stolen.
func (s *Store) UseRefreshToken(ctx context.Context, id string, now time.Time) (store.RefreshToken, error) {
	if err := store.ValidateTime("now", now); err != nil {
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w", err)
	}
	if !store.StorableKey(id) {
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w", store.ErrNotFound)
	}
	us := toMicros(now)
	t, err := scanRefreshToken(s.db.QueryRowContext(ctx, `
UPDATE refresh_tokens SET used_at_us = ?
WHERE id = ? AND used_at_us IS NULL AND revoked_at_us IS NULL AND expires_at_us > ?
RETURNING `+refreshTokenColumns, us, id, us))
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w", s.mapError(err))
	}
	var spent bool
	err = s.db.QueryRowContext(ctx,
		`SELECT used_at_us IS NOT NULL OR revoked_at_us IS NOT NULL FROM refresh_tokens WHERE id = ?`, id).Scan(&spent)
	switch {
	case err != nil:
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w", s.mapError(err))
	case spent:
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w: already used or revoked", store.ErrConflict)
	default:
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w: expired", store.ErrNotFound)
	}
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
	_, err := s.db.ExecContext(ctx,
		`UPDATE refresh_tokens SET revoked_at_us = ? WHERE family = ? AND revoked_at_us IS NULL`,
		toMicros(now), family)
	if err != nil {
		return fmt.Errorf("revoke token family: %w", s.mapError(err))
	}
	return nil
}

const signingKeyColumns = `id, algorithm, private_key, created_at_us, not_after_us, retire_at_us`

// PutSigningKey implements store.OAuthStore. It creates or replaces the key
// with k.ID.
func (s *Store) PutSigningKey(ctx context.Context, k store.SigningKey) error {
	if err := k.Validate(); err != nil {
		return fmt.Errorf("put signing key: %w", err)
	}
	_, err := s.db.ExecContext(ctx, `
INSERT INTO signing_keys (`+signingKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    algorithm = excluded.algorithm, private_key = excluded.private_key, created_at_us = excluded.created_at_us,
    not_after_us = excluded.not_after_us, retire_at_us = excluded.retire_at_us`,
		k.ID, k.Algorithm, k.Private, toMicros(k.CreatedAt), toMicros(k.NotAfter), toMicros(k.RetireAt))
	if err != nil {
		return fmt.Errorf("put signing key %s: %w", k.ID, s.mapError(err))
	}
	return nil
}

// ListSigningKeys implements store.OAuthStore. Keys created at the same time
// come in ID order.
func (s *Store) ListSigningKeys(ctx context.Context, now time.Time) ([]store.SigningKey, error) {
	if err := store.ValidateTime("now", now); err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `
SELECT `+signingKeyColumns+` FROM signing_keys
WHERE retire_at_us > ?
ORDER BY created_at_us DESC, id`, toMicros(now))
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", s.mapError(err))
	}
	out, err := collect(rows, scanSigningKey)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", s.mapError(err))
	}
	return out, nil
}

// DeleteSigningKey implements store.OAuthStore; ErrNotFound when absent.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	if !store.StorableKey(id) {
		return fmt.Errorf("delete signing key: %w", store.ErrNotFound)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM signing_keys WHERE id = ?`, id)
	if err := s.onlyOne(res, err); err != nil {
		return fmt.Errorf("delete signing key %s: %w", id, err)
	}
	return nil
}

// onlyOne maps the outcome of a statement on one row by key, reporting
// ErrNotFound when it touched none.
func (s *Store) onlyOne(res sql.Result, err error) error {
	if err != nil {
		return s.mapError(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.mapError(err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// row is what a single-row query and a row of a multi-row one share.
type row interface{ Scan(dest ...any) error }

func scanUser(r row) (store.User, error) {
	var u store.User
	var groups string
	var created int64
	var lastLogin sql.NullInt64
	err := r.Scan(&u.ID, &u.Username, &u.Email, &groups, &u.PasswordHash, &u.Issuer, &u.Subject, &u.Disabled,
		&created, &lastLogin)
	if err != nil {
		return store.User{}, err
	}
	if u.Groups, err = fromList(groups); err != nil {
		return store.User{}, err
	}
	u.CreatedAt, u.LastLogin = fromMicros(created), fromNullMicros(lastLogin)
	return u, nil
}

func scanAgent(r row) (store.Agent, error) {
	var a store.Agent
	var redirects, grants, scopes string
	var created int64
	var firstSeen, lastSeen sql.NullInt64
	err := r.Scan(&a.ID, &a.Name, &a.Registration, &a.Owner, &a.TrustLevel, &a.Status, &redirects, &grants,
		&a.AuthMethod, &a.SecretHash, &a.JWKS, &a.JWKSURL, &scopes, &a.Metadata, &created, &firstSeen, &lastSeen)
	if err != nil {
		return store.Agent{}, err
	}
	if a.RedirectURIs, err = fromList(redirects); err != nil {
		return store.Agent{}, err
	}
	if a.GrantTypes, err = fromList(grants); err != nil {
		return store.Agent{}, err
	}
	if a.Scopes, err = fromList(scopes); err != nil {
		return store.Agent{}, err
	}
	a.JWKS, a.Metadata = fromBlob(a.JWKS), fromBlob(a.Metadata)
	a.CreatedAt, a.FirstSeen, a.LastSeen = fromMicros(created), fromNullMicros(firstSeen), fromNullMicros(lastSeen)
	return a, nil
}

func scanAuthRequest(r row) (store.AuthRequest, error) {
	var ar store.AuthRequest
	var scopes, resource string
	var authTime sql.NullInt64
	var created, expires int64
	err := r.Scan(&ar.ID, &ar.ClientID, &ar.RedirectURI, &ar.State, &ar.Nonce, &scopes, &ar.ResponseType,
		&ar.CodeChallenge, &ar.CodeChallengeMethod, &resource, &ar.UserID, &authTime, &ar.Done, &ar.Code,
		&created, &expires)
	if err != nil {
		return store.AuthRequest{}, err
	}
	if ar.Scopes, err = fromList(scopes); err != nil {
		return store.AuthRequest{}, err
	}
	if ar.Resource, err = fromList(resource); err != nil {
		return store.AuthRequest{}, err
	}
	ar.AuthTime, ar.CreatedAt, ar.ExpiresAt = fromNullMicros(authTime), fromMicros(created), fromMicros(expires)
	return ar, nil
}

func scanRefreshToken(r row) (store.RefreshToken, error) {
	var t store.RefreshToken
	var scopes, audience, amr string
	var authTime, used, revoked sql.NullInt64
	var created, expires int64
	err := r.Scan(&t.ID, &t.Family, &t.ClientID, &t.UserID, &scopes, &audience, &amr, &authTime, &created,
		&expires, &used, &revoked)
	if err != nil {
		return store.RefreshToken{}, err
	}
	if t.Scopes, err = fromList(scopes); err != nil {
		return store.RefreshToken{}, err
	}
	if t.Audience, err = fromList(audience); err != nil {
		return store.RefreshToken{}, err
	}
	if t.AMR, err = fromList(amr); err != nil {
		return store.RefreshToken{}, err
	}
	t.AuthTime, t.CreatedAt, t.ExpiresAt = fromNullMicros(authTime), fromMicros(created), fromMicros(expires)
	t.UsedAt, t.RevokedAt = fromNullMicros(used), fromNullMicros(revoked)
	return t, nil
}

func scanSigningKey(r row) (store.SigningKey, error) {
	var k store.SigningKey
	var created, notAfter, retire int64
	if err := r.Scan(&k.ID, &k.Algorithm, &k.Private, &created, &notAfter, &retire); err != nil {
		return store.SigningKey{}, err
	}
	k.CreatedAt, k.NotAfter, k.RetireAt = fromMicros(created), fromMicros(notAfter), fromMicros(retire)
	return k, nil
}

// collect scans every row, returning an empty slice, not nil, for none.
func collect[T any](rows *sql.Rows, scan func(row) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// toList stores a list as a JSON array, '[]' when empty; fromList reads
// an empty array back as nil, so nil and empty lists read back alike.
func toList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l) // a []string always marshals
	return string(b)
}

func fromList(s string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("decode list: %w", err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// toBlob stores an empty byte slice as NULL; fromBlob reads it back as nil.
func toBlob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func fromBlob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// toNullMicros stores the zero time, a time not yet set, as NULL.
func toNullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return toMicros(t)
}

func fromNullMicros(us sql.NullInt64) time.Time {
	if !us.Valid {
		return time.Time{}
	}
	return fromMicros(us.Int64)
}
