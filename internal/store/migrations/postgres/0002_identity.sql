-- Identity: the humans who log in, the agents (OAuth clients) acting for
-- them, and the embedded authorization server's state.
--
-- NULL stands for a time not yet set (a first login, a first sighting, a
-- rotation, a revocation). Lists are text[], '{}' when empty. Text that is
-- ordered or compared (usernames, ids) is ordered with COLLATE "C" by the
-- queries, so the order is bytewise whatever the database's locale.

CREATE TABLE users (
    id            text        PRIMARY KEY CHECK (id <> ''),
    username      text        NOT NULL UNIQUE CHECK (username <> ''),
    email         text        NOT NULL DEFAULT '',
    user_groups   text[]      NOT NULL DEFAULT '{}',
    password_hash text        NOT NULL DEFAULT '',
    issuer        text        NOT NULL DEFAULT '',
    subject       text        NOT NULL DEFAULT '',
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    last_login    timestamptz,
    -- A federated user has both halves of its identity, a local user neither.
    CHECK ((issuer = '') = (subject = ''))
);

-- Local users (issuer '') share the empty pair, so uniqueness applies to
-- federated identities only.
CREATE UNIQUE INDEX users_issuer_subject ON users (issuer, subject) WHERE issuer <> '';

CREATE TABLE agents (
    id            text        PRIMARY KEY CHECK (id <> ''),
    name          text        NOT NULL DEFAULT '',
    registration  text        NOT NULL CHECK (registration IN ('cimd', 'dcr', 'config')),
    owner         text        NOT NULL DEFAULT '',
    trust_level   text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('active', 'suspended')),
    redirect_uris text[]      NOT NULL DEFAULT '{}',
    grant_types   text[]      NOT NULL DEFAULT '{}',
    auth_method   text        NOT NULL,
    secret_hash   text        NOT NULL DEFAULT '',
    jwks          bytea,
    jwks_url      text        NOT NULL DEFAULT '',
    scopes        text[]      NOT NULL DEFAULT '{}',
    metadata      bytea,
    created_at    timestamptz NOT NULL,
    first_seen    timestamptz,
    last_seen     timestamptz
);

-- Authorization requests between /authorize and the exchange of their code.
CREATE TABLE auth_requests (
    id                    text        PRIMARY KEY CHECK (id <> ''),
    client_id             text        NOT NULL CHECK (client_id <> ''),
    redirect_uri          text        NOT NULL DEFAULT '',
    state                 text        NOT NULL DEFAULT '',
    nonce                 text        NOT NULL DEFAULT '',
    scopes                text[]      NOT NULL DEFAULT '{}',
    response_type         text        NOT NULL DEFAULT '',
    code_challenge        text        NOT NULL DEFAULT '',
    code_challenge_method text        NOT NULL DEFAULT '',
    resource              text[]      NOT NULL DEFAULT '{}',
    user_id               text        NOT NULL DEFAULT '',
    auth_time             timestamptz,
    done                  boolean     NOT NULL DEFAULT false,
    code                  text        NOT NULL DEFAULT '',
    created_at            timestamptz NOT NULL,
    expires_at            timestamptz NOT NULL
);

-- Every request has code '' until its code is issued; issued codes are unique.
CREATE UNIQUE INDEX auth_requests_code ON auth_requests (code) WHERE code <> '';
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

-- Refresh tokens, by hash; a family is every token rotated from one grant.
CREATE TABLE refresh_tokens (
    id         text        PRIMARY KEY CHECK (id <> ''),
    family     text        NOT NULL CHECK (family <> ''),
    client_id  text        NOT NULL CHECK (client_id <> ''),
    user_id    text        NOT NULL DEFAULT '',
    scopes     text[]      NOT NULL DEFAULT '{}',
    audience   text[]      NOT NULL DEFAULT '{}',
    amr        text[]      NOT NULL DEFAULT '{}',
    auth_time  timestamptz,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

-- The authorization server's signing keys; private_key is sealed by the
-- server and opaque here.
CREATE TABLE signing_keys (
    id          text        PRIMARY KEY CHECK (id <> ''),
    algorithm   text        NOT NULL CHECK (algorithm <> ''),
    private_key bytea       NOT NULL CHECK (length(private_key) > 0),
    created_at  timestamptz NOT NULL,
    not_after   timestamptz NOT NULL,
    retire_at   timestamptz NOT NULL CHECK (retire_at >= not_after)
);

CREATE INDEX signing_keys_retire_at ON signing_keys (retire_at);
