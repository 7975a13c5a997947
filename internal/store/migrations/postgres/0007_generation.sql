-- The change generation (store.ChangeStore): one number that grows with
-- every change to users, agents and mandates, so that a process caching
-- those records can tell whether they are still what the database holds,
-- whichever process changed them. Triggers move it in the writing
-- transaction, so no reader sees a change without its generation, and
-- announce the new value on channel mandate_generation, which every
-- replica listens to instead of reading the row on each request.
--
-- Bookkeeping written on every call leaves it alone, or every call would
-- empty every cache: a mandate's uses_left, an agent's sighting times and a
-- user's last login. An UPDATE moves it only when another column changed,
-- so a column added to one of these tables later must be added to its
-- trigger's condition.
--
-- Every writer of these tables takes the one row's lock until it commits.
-- Such writes are rare (grants, revocations, registrations, logins), and
-- each store method changes one table, so writers queue but cannot
-- deadlock.

CREATE TABLE generations (
    id    integer PRIMARY KEY CHECK (id = 1),
    value bigint  NOT NULL
);
INSERT INTO generations (id, value) VALUES (1, 0);

CREATE FUNCTION bump_generation() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    UPDATE generations SET value = value + 1 WHERE id = 1 RETURNING value INTO v;
    PERFORM pg_notify('mandate_generation', v::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_generation AFTER INSERT OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION bump_generation();
CREATE TRIGGER users_update_generation AFTER UPDATE ON users
    FOR EACH ROW WHEN ((OLD.id, OLD.username, OLD.email, OLD.user_groups, OLD.password_hash, OLD.issuer,
        OLD.subject, OLD.disabled, OLD.created_at)
    IS DISTINCT FROM (NEW.id, NEW.username, NEW.email, NEW.user_groups, NEW.password_hash, NEW.issuer,
        NEW.subject, NEW.disabled, NEW.created_at))
    EXECUTE FUNCTION bump_generation();

CREATE TRIGGER agents_generation AFTER INSERT OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION bump_generation();
CREATE TRIGGER agents_update_generation AFTER UPDATE ON agents
    FOR EACH ROW WHEN ((OLD.id, OLD.name, OLD.registration, OLD.owner, OLD.trust_level, OLD.status,
        OLD.redirect_uris, OLD.grant_types, OLD.auth_method, OLD.secret_hash, OLD.jwks, OLD.jwks_url,
        OLD.scopes, OLD.metadata, OLD.created_at)
    IS DISTINCT FROM (NEW.id, NEW.name, NEW.registration, NEW.owner, NEW.trust_level, NEW.status,
        NEW.redirect_uris, NEW.grant_types, NEW.auth_method, NEW.secret_hash, NEW.jwks, NEW.jwks_url,
        NEW.scopes, NEW.metadata, NEW.created_at))
    EXECUTE FUNCTION bump_generation();

CREATE TRIGGER mandates_generation AFTER INSERT OR DELETE ON mandates
    FOR EACH ROW EXECUTE FUNCTION bump_generation();
CREATE TRIGGER mandates_update_generation AFTER UPDATE ON mandates
    FOR EACH ROW WHEN ((OLD.id, OLD.user_id, OLD.agent_id, OLD.grants, OLD.purpose, OLD.created_at,
        OLD.expires_at, OLD.revoked_at, OLD.revoked_by)
    IS DISTINCT FROM (NEW.id, NEW.user_id, NEW.agent_id, NEW.grants, NEW.purpose, NEW.created_at,
        NEW.expires_at, NEW.revoked_at, NEW.revoked_by))
    EXECUTE FUNCTION bump_generation();
