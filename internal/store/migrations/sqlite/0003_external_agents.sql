-- Agents of trusted external issuers (auth mode external) are registered on
-- first sight with registration 'external'. SQLite cannot change a CHECK
-- constraint in place, so the table is rebuilt with the same columns.
CREATE TABLE agents_new (
    id            TEXT    PRIMARY KEY CHECK (id <> ''),
    name          TEXT    NOT NULL DEFAULT '',
    registration  TEXT    NOT NULL CHECK (registration IN ('cimd', 'dcr', 'config', 'external')),
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
INSERT INTO agents_new SELECT id, name, registration, owner, trust_level, status, redirect_uris, grant_types,
    auth_method, secret_hash, jwks, jwks_url, scopes, metadata, created_at_us, first_seen_us, last_seen_us FROM agents;
DROP TABLE agents;
ALTER TABLE agents_new RENAME TO agents;
