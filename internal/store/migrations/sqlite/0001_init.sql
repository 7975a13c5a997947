-- Health transitions of upstream servers, kept as an append-only log.
-- Times are Unix microseconds so that ordering is numeric and exact.
CREATE TABLE health_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    upstream TEXT    NOT NULL CHECK (upstream <> ''),
    at_us    INTEGER NOT NULL,
    status   TEXT    NOT NULL CHECK (status IN ('up', 'down', 'starting')),
    detail   TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX health_events_upstream_at ON health_events (upstream, at_us DESC, id DESC);

-- The catalog each upstream last advertised, one row per (upstream, kind).
CREATE TABLE catalogs (
    upstream      TEXT    NOT NULL CHECK (upstream <> ''),
    kind          TEXT    NOT NULL CHECK (kind IN ('tools', 'prompts', 'resources', 'resource_templates')),
    hash          TEXT    NOT NULL,
    body          BLOB    NOT NULL,
    fetched_at_us INTEGER NOT NULL,
    PRIMARY KEY (upstream, kind)
);

-- Every distinct catalog ever advertised, with the time it was first seen.
CREATE TABLE catalog_history (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    upstream      TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    hash          TEXT    NOT NULL,
    body          BLOB    NOT NULL,
    first_seen_us INTEGER NOT NULL,
    UNIQUE (upstream, kind, hash),
    FOREIGN KEY (upstream, kind) REFERENCES catalogs (upstream, kind)
);

CREATE INDEX catalog_history_first_seen ON catalog_history (upstream, kind, first_seen_us DESC, id DESC);
