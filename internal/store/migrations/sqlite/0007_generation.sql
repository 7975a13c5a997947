-- The change generation (store.ChangeStore): one number that grows with
-- every change to users, agents and mandates, so that a process caching
-- those records can tell with one cheap read whether they are still what
-- the database holds, whichever process changed them. Triggers move it in
-- the writing transaction, so no reader sees a change without its
-- generation.
--
-- Bookkeeping written on every call leaves it alone, or every call would
-- empty every cache: a mandate's uses_left, an agent's sighting times and a
-- user's last login. An UPDATE moves it only when another column changed,
-- so a column added to one of these tables later must be added to its
-- trigger's condition.

CREATE TABLE generations (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO generations (id, value) VALUES (1, 0);

CREATE TRIGGER users_insert_generation AFTER INSERT ON users
BEGIN UPDATE generations SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER users_delete_generation AFTER DELETE ON users
BEGIN UPDATE generations SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER users_update_generation AFTER UPDATE ON users
WHEN NEW.id IS NOT OLD.id OR NEW.username IS NOT OLD.username OR NEW.email IS NOT OLD.email
    OR NEW.user_groups IS NOT OLD.user_groups OR NEW.password_hash IS NOT OLD.password_hash
    OR NEW.issuer IS NOT OLD.issuer OR NEW.subject IS NOT OLD.subject OR NEW.disabled IS NOT OLD.disabled
    OR NEW.created_at_us IS NOT OLD.created_at_us
BEGIN UPDATE generations SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER agents_insert_generation AFTER INSERT ON agents
BEGIN UPDATE generations SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER agents_delete_generation AFTER DELETE ON agents
BEGIN UPDATE generations SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER agents_update_generation AFTER UPDATE ON agents
WHEN NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.registration IS NOT OLD.registration
    OR NEW.owner IS NOT OLD.owner OR NEW.trust_level IS NOT OLD.trust_level OR NEW.status IS NOT OLD.status
    OR NEW.redirect_uris IS NOT OLD.redirect_uris OR NEW.grant_types IS NOT OLD.grant_types
    OR NEW.auth_method IS NOT OLD.auth_method OR NEW.secret_hash IS NOT OLD.secret_hash
    OR NEW.jwks IS NOT OLD.jwks OR NEW.jwks_url IS NOT OLD.jwks_url OR NEW.scopes IS NOT OLD.scopes
    OR NEW.metadata IS NOT OLD.metadata OR NEW.created_at_us IS NOT OLD.created_at_us
BEGIN UPDATE generations SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER mandates_insert_generation AFTER INSERT ON mandates
BEGIN UPDATE generations SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER mandates_delete_generation AFTER DELETE ON mandates
BEGIN UPDATE generations SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER mandates_update_generation AFTER UPDATE ON mandates
WHEN NEW.id IS NOT OLD.id OR NEW.user_id IS NOT OLD.user_id OR NEW.agent_id IS NOT OLD.agent_id
    OR NEW.grants IS NOT OLD.grants OR NEW.purpose IS NOT OLD.purpose
    OR NEW.created_at_us IS NOT OLD.created_at_us OR NEW.expires_at_us IS NOT OLD.expires_at_us
    OR NEW.revoked_at_us IS NOT OLD.revoked_at_us OR NEW.revoked_by IS NOT OLD.revoked_by
BEGIN UPDATE generations SET value = value + 1 WHERE id = 1; END;
