-- Mandates: consent grants from a user to an agent. grants is the consent
-- package's JSON, kept as opaque bytes. uses_left is -1 for no use count.
-- Times are Unix microseconds; revoked_at_us is NULL until revoked.
--
-- There are no foreign keys to users and agents: a mandate is evidence of
-- consent and outlives the records it names, for the audit log's sake.

CREATE TABLE mandates (
    id            TEXT    PRIMARY KEY CHECK (id <> ''),
    user_id       TEXT    NOT NULL CHECK (user_id <> ''),
    agent_id      TEXT    NOT NULL CHECK (agent_id <> ''),
    grants        BLOB    NOT NULL CHECK (length(grants) > 0),
    purpose       TEXT    NOT NULL DEFAULT '',
    created_at_us INTEGER NOT NULL,
    expires_at_us INTEGER NOT NULL CHECK (expires_at_us > created_at_us),
    uses_left     INTEGER NOT NULL CHECK (uses_left >= -1),
    revoked_at_us INTEGER,
    revoked_by    TEXT    NOT NULL DEFAULT '',
    CHECK (revoked_by = '' OR revoked_at_us IS NOT NULL)
);

-- The gateway looks mandates up by (user, agent) on every call; the admin
-- pages list them by agent.
CREATE INDEX mandates_user_agent ON mandates (user_id, agent_id, created_at_us);
CREATE INDEX mandates_agent ON mandates (agent_id, created_at_us);
