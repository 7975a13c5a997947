-- Audit chains: one append-only, hash-linked sequence of records per writing
-- replica. body is the canonical JSON the audit package hashed, kept as a
-- blob so its bytes never change; the other columns copy fields of body so
-- records can be filtered without decoding every one, and verification checks
-- them against body. prev_hash is '' exactly for a chain's first record.
-- Times are Unix microseconds.
--
-- There are no foreign keys: a record is evidence and outlives whatever it
-- names (users, agents, mandates, approvals).

CREATE TABLE audit_records (
    chain      TEXT    NOT NULL CHECK (chain <> ''),
    seq        INTEGER NOT NULL CHECK (seq > 0),
    id         TEXT    NOT NULL UNIQUE CHECK (id <> ''),
    at_us      INTEGER NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind <> ''),
    event      TEXT    NOT NULL DEFAULT '',
    user_id    TEXT    NOT NULL DEFAULT '',
    agent_id   TEXT    NOT NULL DEFAULT '',
    upstream   TEXT    NOT NULL DEFAULT '',
    name       TEXT    NOT NULL DEFAULT '',
    decision   TEXT    NOT NULL DEFAULT '',
    mandate_id TEXT    NOT NULL DEFAULT '',
    ref        TEXT    NOT NULL DEFAULT '',
    prev_hash  TEXT    NOT NULL CHECK ((seq = 1) = (prev_hash = '')),
    hash       TEXT    NOT NULL CHECK (length(hash) = 64),
    body       BLOB    NOT NULL,
    PRIMARY KEY (chain, seq)
);

-- Queries list newest first, optionally narrowed to a time range; explaining
-- a decision looks up the outcome that refers to it.
CREATE INDEX audit_records_at ON audit_records (at_us);
CREATE INDEX audit_records_ref ON audit_records (ref) WHERE ref <> '';

-- Signed checkpoints: the chain's head (seq, hash) at a time, signed with the
-- replica's Ed25519 key named by key_id.
CREATE TABLE audit_checkpoints (
    chain     TEXT    NOT NULL CHECK (chain <> ''),
    seq       INTEGER NOT NULL CHECK (seq > 0),
    hash      TEXT    NOT NULL CHECK (length(hash) = 64),
    at_us     INTEGER NOT NULL,
    key_id    TEXT    NOT NULL CHECK (key_id <> ''),
    signature BLOB    NOT NULL,
    PRIMARY KEY (chain, seq)
);
