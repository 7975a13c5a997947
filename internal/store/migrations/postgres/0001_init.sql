-- Health transitions of upstream servers, kept as an append-only log.
CREATE TABLE health_events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    upstream text        NOT NULL CHECK (upstream <> ''),
    at       timestamptz NOT NULL,
    status   text        NOT NULL CHECK (status IN ('up', 'down', 'starting')),
    detail   text        NOT NULL DEFAULT ''
);

CREATE INDEX health_events_upstream_at ON health_events (upstream, at DESC, id DESC);

-- The catalog each upstream last advertised, one row per (upstream, kind).
CREATE TABLE catalogs (
    upstream   text        NOT NULL CHECK (upstream <> ''),
    kind       text        NOT NULL CHECK (kind IN ('tools', 'prompts', 'resources', 'resource_templates')),
    hash       text        NOT NULL,
    body       bytea       NOT NULL,
    fetched_at timestamptz NOT NULL,
    PRIMARY KEY (upstream, kind)
);

-- Every distinct catalog ever advertised, with the time it was first seen.
-- The body is bytea, not jsonb, so the exact advertised bytes survive.
CREATE TABLE catalog_history (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    upstream   text        NOT NULL,
    kind       text        NOT NULL,
    hash       text        NOT NULL,
    body       bytea       NOT NULL,
    first_seen timestamptz NOT NULL,
    UNIQUE (upstream, kind, hash),
    FOREIGN KEY (upstream, kind) REFERENCES catalogs (upstream, kind)
);

CREATE INDEX catalog_history_first_seen ON catalog_history (upstream, kind, first_seen DESC, id DESC);
