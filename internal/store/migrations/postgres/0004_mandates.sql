-- Mandates: consent grants from a user to an agent. grants is the consent
-- package's JSON, kept as opaque bytes (bytea, not jsonb, which would
-- reorder it). uses_left is -1 for no use count; revoked_at is NULL until
-- revoked.
--
-- There are no foreign keys to users and agents: a mandate is evidence of
-- consent and outlives the records it names, for the audit log's sake.

CREATE TABLE mandates (
    id         text        PRIMARY KEY CHECK (id <> ''),
    user_id    text        NOT NULL CHECK (user_id <> ''),
    agent_id   text        NOT NULL CHECK (agent_id <> ''),
    grants     bytea       NOT NULL CHECK (length(grants) > 0),
    purpose    text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL CHECK (expires_at > created_at),
    uses_left  bigint      NOT NULL CHECK (uses_left >= -1),
    revoked_at timestamptz,
    revoked_by text        NOT NULL DEFAULT '',
    CHECK (revoked_by = '' OR revoked_at IS NOT NULL)
);

-- The gateway looks mandates up by (user, agent) on every call; the admin
-- pages list them by agent.
CREATE INDEX mandates_user_agent ON mandates (user_id, agent_id, created_at);
CREATE INDEX mandates_agent ON mandates (agent_id, created_at);
