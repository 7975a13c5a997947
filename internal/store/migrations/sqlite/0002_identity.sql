-- Identity: the humans who log in, the agents (OAuth clients) acting for
-- them, and the embedded authorization server's state.
--
-- Times are Unix microseconds; NULL stands for a time not yet set (a first
-- login, a first sighting, a rotation, a revocation). Lists are JSON arrays
-- of strings, '[]' when empty.

CREATE TABLE users (
    id            TEXT    PRIMARY KEY CHECK (id <> ''),
    username      TEXT    NOT NULL UNIQUE CHECK (username <> ''),
    email         TEXT    NOT NULL DEFAULT '',
    user_groups   TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(user_groups) = 'array'),
    password_hash TEXT    NOT NULL DEFAULT '',
    issuer        TEXT    NOT NULL DEFAULT '',
    subject       TEXT    NOT NULL DEFAULT '',
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at_us INTEGER NOT NULL,
    last_login_us INTEGER,
    -- A federated user has both halves of its identity, a local user neither.
    CHECK ((issuer = '') = (subject = ''))
);

-- Local users (issuer '') share the empty pair, so uniqueness applies to
-- federated identities only.
CREATE UNIQUE INDEX users_issuer_subject ON users (issuer, subject) WHERE issuer <> '';

CREATE TABLE agents (
    id            TEXT    PRIMARY KEY CHECK (id <> ''),
    name          TEXT    NOT NULL DEFAULT '',
    registration  TEXT    NOT NULL CHECK (registration IN ('cimd', 'dcr', 'config')),
    owner         TEXT    NOT NULL DEFAULT '',
    trust_level   TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'suspended')),
    redirect_uris TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(redirect_uris) = 'array'),
    grant_types   TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(grant_types) = 'array'),
    auth_method   TEXT    NOT NULL,
    secret_hash   TEXT    NOT NULL DEFAULT '',
    jwks          BLOB,
    jwks_url      TEXT    NOT NULL DEFAULT '',
    scopes        TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(scopes) = 'array'),
    metadata      BLOB,
    created_at_us INTEGER NOT NULL,
    first_seen_us INTEGER,
    last_seen_us  INTEGER
);

-- Authorization requests between /authorize and the exchange of their code.
CREATE TABLE auth_requests (
    id                    TEXT    PRIMARY KEY CHECK (id <> ''),
    client_id             TEXT    NOT NULL CHECK (client_id <> ''),
    redirect_uri          TEXT    NOT NULL DEFAULT '',
    state                 TEXT    NOT NULL DEFAULT '',
    nonce                 TEXT    NOT NULL DEFAULT '',
    scopes                TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(scopes) = 'array'),
    response_type         TEXT    NOT NULL DEFAULT '',
    code_challenge        TEXT    NOT NULL DEFAULT '',
    code_challenge_method TEXT    NOT NULL DEFAULT '',
    resource              TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(resource) = 'array'),
    user_id               TEXT    NOT NULL DEFAULT '',
    auth_time_us          INTEGER,
    done                  INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
    code                  TEXT    NOT NULL DEFAULT '',
    created_at_us         INTEGER NOT NULL,
    expires_at_us         INTEGER NOT NULL
);

-- Every request has code '' until its code is issued; issued codes are unique.
CREATE UNIQUE INDEX auth_requests_code ON auth_requests (code) WHERE code <> '';
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at_us);

-- Refresh tokens, by hash; a family is every token rotated from one grant.
CREATE TABLE refresh_tokens (
    id            TEXT    PRIMARY KEY CHECK (id <> ''),
    family        TEXT    NOT NULL CHECK (family <> ''),
    client_id     TEXT    NOT NULL CHECK (client_id <> ''),
    user_id       TEXT    NOT NULL DEFAULT '',
    scopes        TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(scopes) = 'array'),
    audience      TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(audience) = 'array'),
    amr           TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(amr) = 'array'),
    auth_time_us  INTEGER,
    created_at_us INTEGER NOT NULL,
    expires_at_us INTEGER NOT NULL,
    used_at_us    INTEGER,
    revoked_at_us INTEGER
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

-- The authorization server's signing keys; private_key is sealed by the
-- server and opaque here.
CREATE TABLE signing_keys (
    id            TEXT    PRIMARY KEY CHECK (id <> ''),
    algorithm     TEXT    NOT NULL CHECK (algorithm <> ''),
    private_key   BLOB    NOT NULL CHECK (length(private_key) > 0),
    created_at_us INTEGER NOT NULL,
    not_after_us  INTEGER NOT NULL,
    retire_at_us  INTEGER NOT NULL CHECK (retire_at_us >= not_after_us)
);

CREATE INDEX signing_keys_retire_at ON signing_keys (retire_at_us);
