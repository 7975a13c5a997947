package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-mcp/mandate/internal/store"
)

const userColumns = `id, username, email, user_groups, password_hash, issuer, subject, disabled, created_at, last_login`

// CreateUser implements store.UserStore. The primary key and the unique
// indexes on username and (issuer, subject) report a taken id or identity.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	if err := u.Validate(); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	defer s.gen.written()
	_, err := s.pool.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		u.ID, u.Username, u.Email, toList(u.Groups), u.PasswordHash, u.Issuer, u.Subject, u.Disabled,
		normalize(u.CreatedAt), toNullTime(u.LastLogin))
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
	if err := s.open(); err != nil {
		return fmt.Errorf("update user: %w", err)
	}
	defer s.gen.written()
	tag, err := s.pool.Exec(ctx, `
UPDATE users SET username = $2, email = $3, user_groups = $4, password_hash = $5, issuer = $6, subject = $7,
    disabled = $8, created_at = $9, last_login = $10
WHERE id = $1`,
		u.ID, u.Username, u.Email, toList(u.Groups), u.PasswordHash, u.Issuer, u.Subject, u.Disabled,
		normalize(u.CreatedAt), toNullTime(u.LastLogin))
	if err := s.onlyOne(tag, err); err != nil {
		return fmt.Errorf("update user %s: %w", u.ID, err)
	}
	return nil
}

// GetUser implements store.UserStore.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	if !store.StorableKey(id) {
		return store.User{}, fmt.Errorf("get user: %w", store.ErrNotFound)
	}
	if err := s.open(); err != nil {
		return store.User{}, fmt.Errorf("get user: %w", err)
	}
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
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
	if err := s.open(); err != nil {
		return store.User{}, fmt.Errorf("get user by username: %w", err)
	}
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1`, username))
	if err != nil {
		return store.User{}, fmt.Errorf("get user by username: %w", s.mapError(err))
	}
	return u, nil
}

// GetUserBySubject implements store.UserStore. Repeating the partial
// index's condition in the query lets the planner use that index.
func (s *Store) GetUserBySubject(ctx context.Context, issuer, subject string) (store.User, error) {
	if !store.StorableKey(issuer) || !store.StorableKey(subject) {
		return store.User{}, fmt.Errorf("get user by subject: %w", store.ErrNotFound)
	}
	if err := s.open(); err != nil {
		return store.User{}, fmt.Errorf("get user by subject: %w", err)
	}
	u, err := scanUser(s.pool.QueryRow(ctx,
		`SELECT `+userColumns+` FROM users WHERE issuer = $1 AND subject = $2 AND issuer <> ''`, issuer, subject))
	if err != nil {
		return store.User{}, fmt.Errorf("get user by subject: %w", s.mapError(err))
	}
	return u, nil
}

// ListUsers implements store.UserStore. The "C" collation orders usernames
// bytewise, as the other backends do, whatever the database's locale.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY username COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", s.mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.User, error) { return scanUser(row) })
	if err != nil {
		return nil, fmt.Errorf("list users: %w", s.mapError(err))
	}
	return nonNil(out), nil
}

// CountUsers implements store.UserStore.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	if err := s.open(); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", s.mapError(err))
	}
	return n, nil
}

const agentColumns = `id, name, registration, owner, trust_level, status, redirect_uris, grant_types, auth_method,
    secret_hash, jwks, jwks_url, scopes, metadata, created_at, first_seen, last_seen`

// PutAgent implements store.AgentStore.
func (s *Store) PutAgent(ctx context.Context, a store.Agent) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("put agent: %w", err)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("put agent: %w", err)
	}
	defer s.gen.written()
	_, err := s.pool.Exec(ctx, `
INSERT INTO agents (`+agentColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, registration = excluded.registration, owner = excluded.owner,
    trust_level = excluded.trust_level, status = excluded.status, redirect_uris = excluded.redirect_uris,
    grant_types = excluded.grant_types, auth_method = excluded.auth_method, secret_hash = excluded.secret_hash,
    jwks = excluded.jwks, jwks_url = excluded.jwks_url, scopes = excluded.scopes, metadata = excluded.metadata,
    created_at = excluded.created_at, first_seen = excluded.first_seen, last_seen = excluded.last_seen`,
		a.ID, a.Name, a.Registration, a.Owner, a.TrustLevel, a.Status, toList(a.RedirectURIs), toList(a.GrantTypes),
		a.AuthMethod, a.SecretHash, toBlob(a.JWKS), a.JWKSURL, toList(a.Scopes), toBlob(a.Metadata),
		normalize(a.CreatedAt), toNullTime(a.FirstSeen), toNullTime(a.LastSeen))
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
	if err := s.open(); err != nil {
		return store.Agent{}, fmt.Errorf("get agent: %w", err)
	}
	a, err := scanAgent(s.pool.QueryRow(ctx, `SELECT `+agentColumns+` FROM agents WHERE id = $1`, id))
	if err != nil {
		return store.Agent{}, fmt.Errorf("get agent %s: %w", id, s.mapError(err))
	}
	return a, nil
}

// ListAgents implements store.AgentStore, ordering IDs bytewise.
func (s *Store) ListAgents(ctx context.Context) ([]store.Agent, error) {
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+agentColumns+` FROM agents ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", s.mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Agent, error) { return scanAgent(row) })
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", s.mapError(err))
	}
	return nonNil(out), nil
}

// SetAgentStatus implements store.AgentStore.
func (s *Store) SetAgentStatus(ctx context.Context, id, status string) error {
	if err := store.ValidateAgentStatus(status); err != nil {
		return fmt.Errorf("set agent status: %w", err)
	}
	if !store.StorableKey(id) {
		return fmt.Errorf("set agent status: %w", store.ErrNotFound)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("set agent status: %w", err)
	}
	defer s.gen.written()
	tag, err := s.pool.Exec(ctx, `UPDATE agents SET status = $2 WHERE id = $1`, id, status)
	if err := s.onlyOne(tag, err); err != nil {
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
	if err := s.open(); err != nil {
		return fmt.Errorf("touch agent: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `
UPDATE agents SET
    first_seen = coalesce(first_seen, $2),
    last_seen = CASE WHEN last_seen IS NULL OR last_seen < $2 THEN $2 ELSE last_seen END
WHERE id = $1`, id, normalize(at))
	if err := s.onlyOne(tag, err); err != nil {
		return fmt.Errorf("touch agent %s: %w", id, err)
	}
	return nil
}

const authRequestColumns = `id, client_id, redirect_uri, state, nonce, scopes, response_type, code_challenge,
    code_challenge_method, resource, user_id, auth_time, done, code, created_at, expires_at`

// PutAuthRequest implements store.OAuthStore. A code another request holds
// violates the partial unique index and is reported as ErrConflict.
func (s *Store) PutAuthRequest(ctx context.Context, r store.AuthRequest) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("put auth request: %w", err)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("put auth request: %w", err)
	}
	_, err := s.pool.Exec(ctx, `
INSERT INTO auth_requests (`+authRequestColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (id) DO UPDATE SET
    client_id = excluded.client_id, redirect_uri = excluded.redirect_uri, state = excluded.state,
    nonce = excluded.nonce, scopes = excluded.scopes, response_type = excluded.response_type,
    code_challenge = excluded.code_challenge, code_challenge_method = excluded.code_challenge_method,
    resource = excluded.resource, user_id = excluded.user_id, auth_time = excluded.auth_time,
    done = excluded.done, code = excluded.code, created_at = excluded.created_at,
    expires_at = excluded.expires_at`,
		r.ID, r.ClientID, r.RedirectURI, r.State, r.Nonce, toList(r.Scopes), r.ResponseType, r.CodeChallenge,
		r.CodeChallengeMethod, toList(r.Resource), r.UserID, toNullTime(r.AuthTime), r.Done, r.Code,
		normalize(r.CreatedAt), normalize(r.ExpiresAt))
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
	if err := s.open(); err != nil {
		return store.AuthRequest{}, fmt.Errorf("get auth request: %w", err)
	}
	r, err := scanAuthRequest(s.pool.QueryRow(ctx,
		`SELECT `+authRequestColumns+` FROM auth_requests WHERE id = $1`, id))
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
	if err := s.open(); err != nil {
		return store.AuthRequest{}, fmt.Errorf("get auth request by code: %w", err)
	}
	r, err := scanAuthRequest(s.pool.QueryRow(ctx,
		`SELECT `+authRequestColumns+` FROM auth_requests WHERE code = $1 AND code <> ''`, code))
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
	if err := s.open(); err != nil {
		return fmt.Errorf("delete auth request: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM auth_requests WHERE id = $1`, id)
	if err := s.onlyOne(tag, err); err != nil {
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
	if err := s.open(); err != nil {
		return 0, fmt.Errorf("delete expired auth requests: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM auth_requests WHERE expires_at <= $1`, normalize(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired auth requests: %w", s.mapError(err))
	}
	return int(tag.RowsAffected()), nil
}

const refreshTokenColumns = `id, family, client_id, user_id, scopes, audience, amr, auth_time, created_at,
    expires_at, used_at, revoked_at`

// PutRefreshToken implements store.OAuthStore.
func (s *Store) PutRefreshToken(ctx context.Context, t store.RefreshToken) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("put refresh token: %w", err)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("put refresh token: %w", err)
	}
	_, err := s.pool.Exec(ctx, `
INSERT INTO refresh_tokens (`+refreshTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		t.ID, t.Family, t.ClientID, t.UserID, toList(t.Scopes), toList(t.Audience), toList(t.AMR),
		toNullTime(t.AuthTime), normalize(t.CreatedAt), normalize(t.ExpiresAt),
		toNullTime(t.UsedAt), toNullTime(t.RevokedAt))
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
	if err := s.open(); err != nil {
		return store.RefreshToken{}, fmt.Errorf("get refresh token: %w", err)
	}
	t, err := scanRefreshToken(s.pool.QueryRow(ctx,
		`SELECT `+refreshTokenColumns+` FROM refresh_tokens WHERE id = $1`, id))
	if err != nil {
		return store.RefreshToken{}, fmt.Errorf("get refresh token: %w", s.mapError(err))
	}
	return t, nil
}

// UseRefreshToken implements store.OAuthStore. The single conditional
// UPDATE is what makes it atomic: a concurrent use waits for the row lock,
// then re-checks the condition against the committed row and matches
// nothing. Only then does a second read find out why; a used or revoked
// token gives ErrConflict even once expired, because presenting it still
// means it was stolen.
func (s *Store) UseRefreshToken(ctx context.Context, id string, now time.Time) (store.RefreshToken, error) {
	if err := store.ValidateTime("now", now); err != nil {
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w", err)
	}
	if !store.StorableKey(id) {
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w", store.ErrNotFound)
	}
	if err := s.open(); err != nil {
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w", err)
	}
	t, err := scanRefreshToken(s.pool.QueryRow(ctx, `
UPDATE refresh_tokens SET used_at = $2
WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2
RETURNING `+refreshTokenColumns, id, normalize(now)))
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.RefreshToken{}, fmt.Errorf("use refresh token: %w", s.mapError(err))
	}
	var spent bool
	err = s.pool.QueryRow(ctx,
		`SELECT used_at IS NOT NULL OR revoked_at IS NOT NULL FROM refresh_tokens WHERE id = $1`, id).Scan(&spent)
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
	if err := s.open(); err != nil {
		return fmt.Errorf("revoke token family: %w", err)
	}
	_, err := s.pool.Exec(ctx,
		`UPDATE refresh_tokens SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL`,
		family, normalize(now))
	if err != nil {
		return fmt.Errorf("revoke token family: %w", s.mapError(err))
	}
	return nil
}

const signingKeyColumns = `id, algorithm, private_key, created_at, not_after, retire_at`

// PutSigningKey implements store.OAuthStore. It creates or replaces the key
// with k.ID.
func (s *Store) PutSigningKey(ctx context.Context, k store.SigningKey) error {
	if err := k.Validate(); err != nil {
		return fmt.Errorf("put signing key: %w", err)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("put signing key: %w", err)
	}
	_, err := s.pool.Exec(ctx, `
INSERT INTO signing_keys (`+signingKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET
    algorithm = excluded.algorithm, private_key = excluded.private_key, created_at = excluded.created_at,
    not_after = excluded.not_after, retire_at = excluded.retire_at`,
		k.ID, k.Algorithm, k.Private, normalize(k.CreatedAt), normalize(k.NotAfter), normalize(k.RetireAt))
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
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	rows, err := s.pool.Query(ctx, `
SELECT `+signingKeyColumns+` FROM signing_keys
WHERE retire_at > $1
ORDER BY created_at DESC, id COLLATE "C"`, normalize(now))
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", s.mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.SigningKey, error) {
		return scanSigningKey(row)
	})
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", s.mapError(err))
	}
	return nonNil(out), nil
}

// DeleteSigningKey implements store.OAuthStore; ErrNotFound when absent.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	if !store.StorableKey(id) {
		return fmt.Errorf("delete signing key: %w", store.ErrNotFound)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("delete signing key: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM signing_keys WHERE id = $1`, id)
	if err := s.onlyOne(tag, err); err != nil {
		return fmt.Errorf("delete signing key %s: %w", id, err)
	}
	return nil
}

// onlyOne maps the outcome of a statement on one row by key, reporting
// ErrNotFound when it touched none.
func (s *Store) onlyOne(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return s.mapError(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func scanUser(row pgx.Row) (store.User, error) {
	var u store.User
	var lastLogin *time.Time
	err := row.Scan(&u.ID, &u.Username, &u.Email, &u.Groups, &u.PasswordHash, &u.Issuer, &u.Subject, &u.Disabled,
		&u.CreatedAt, &lastLogin)
	if err != nil {
		return store.User{}, err
	}
	u.Groups = fromList(u.Groups)
	u.CreatedAt, u.LastLogin = u.CreatedAt.UTC(), fromNullTime(lastLogin)
	return u, nil
}

func scanAgent(row pgx.Row) (store.Agent, error) {
	var a store.Agent
	var firstSeen, lastSeen *time.Time
	err := row.Scan(&a.ID, &a.Name, &a.Registration, &a.Owner, &a.TrustLevel, &a.Status, &a.RedirectURIs,
		&a.GrantTypes, &a.AuthMethod, &a.SecretHash, &a.JWKS, &a.JWKSURL, &a.Scopes, &a.Metadata, &a.CreatedAt,
		&firstSeen, &lastSeen)
	if err != nil {
		return store.Agent{}, err
	}
	a.RedirectURIs, a.GrantTypes, a.Scopes = fromList(a.RedirectURIs), fromList(a.GrantTypes), fromList(a.Scopes)
	a.JWKS, a.Metadata = fromBlob(a.JWKS), fromBlob(a.Metadata)
	a.CreatedAt, a.FirstSeen, a.LastSeen = a.CreatedAt.UTC(), fromNullTime(firstSeen), fromNullTime(lastSeen)
	return a, nil
}

func scanAuthRequest(row pgx.Row) (store.AuthRequest, error) {
	var r store.AuthRequest
	var authTime *time.Time
	err := row.Scan(&r.ID, &r.ClientID, &r.RedirectURI, &r.State, &r.Nonce, &r.Scopes, &r.ResponseType,
		&r.CodeChallenge, &r.CodeChallengeMethod, &r.Resource, &r.UserID, &authTime, &r.Done, &r.Code,
		&r.CreatedAt, &r.ExpiresAt)
	if err != nil {
		return store.AuthRequest{}, err
	}
	r.Scopes, r.Resource = fromList(r.Scopes), fromList(r.Resource)
	r.AuthTime, r.CreatedAt, r.ExpiresAt = fromNullTime(authTime), r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	return r, nil
}

func scanRefreshToken(row pgx.Row) (store.RefreshToken, error) {
	var t store.RefreshToken
	var authTime, used, revoked *time.Time
	err := row.Scan(&t.ID, &t.Family, &t.ClientID, &t.UserID, &t.Scopes, &t.Audience, &t.AMR, &authTime,
		&t.CreatedAt, &t.ExpiresAt, &used, &revoked)
	if err != nil {
		return store.RefreshToken{}, err
	}
	t.Scopes, t.Audience, t.AMR = fromList(t.Scopes), fromList(t.Audience), fromList(t.AMR)
	t.AuthTime, t.CreatedAt, t.ExpiresAt = fromNullTime(authTime), t.CreatedAt.UTC(), t.ExpiresAt.UTC()
	t.UsedAt, t.RevokedAt = fromNullTime(used), fromNullTime(revoked)
	return t, nil
}

func scanSigningKey(row pgx.Row) (store.SigningKey, error) {
	var k store.SigningKey
	if err := row.Scan(&k.ID, &k.Algorithm, &k.Private, &k.CreatedAt, &k.NotAfter, &k.RetireAt); err != nil {
		return store.SigningKey{}, err
	}
	k.CreatedAt, k.NotAfter, k.RetireAt = k.CreatedAt.UTC(), k.NotAfter.UTC(), k.RetireAt.UTC()
	return k, nil
}

// toList stores a list as a text[], '{}' when empty; fromList reads an
// empty array back as nil, so nil and empty lists read back alike.
func toList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func fromList(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

// toBlob stores an empty byte slice as NULL; fromBlob reads it back as nil.
func toBlob(b []byte) []byte {
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

// toNullTime stores the zero time, a time not yet set, as NULL.
func toNullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	n := normalize(t)
	return &n
}

func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
