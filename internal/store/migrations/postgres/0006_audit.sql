-- Audit chains: one append-only, hash-linked sequence of records per writing
-- replica. body is the canonical JSON the audit package hashed, kept as bytea
-- (jsonb would reorder it) so its bytes never change; the other columns copy
-- fields of body so records can be filtered without decoding every one, and
-- verification checks them against body. prev_hash is '' exactly for a
-- chain's first record.
--
-- There are no foreign keys: a record is evidence and outlives whatever it
-- names (users, agents, mandates, approvals).

CREATE TABLE audit_records (
    chain      text        NOT NULL CHECK (chain <> ''),
    seq        bigint      NOT NULL CHECK (seq > 0),
    id         text        NOT NULL UNIQUE CHECK (id <> ''),
    at         timestamptz NOT NULL,
    kind       text        NOT NULL CHECK (kind <> ''),
    event      text        NOT NULL DEFAULT '',
    user_id    text        NOT NULL DEFAULT '',
    agent_id   text        NOT NULL DEFAULT '',
    upstream   text        NOT NULL DEFAULT '',
    name       text        NOT NULL DEFAULT '',
    decision   text        NOT NULL DEFAULT '',
    mandate_id text        NOT NULL DEFAULT '',
    ref        text        NOT NULL DEFAULT '',
    prev_hash  text        NOT NULL CHECK ((seq = 1) = (prev_hash = '')),
    hash       text        NOT NULL CHECK (length(hash) = 64),
    body       bytea       NOT NULL,
    PRIMARY KEY (chain, seq)
);

-- Queries list newest first, optionally narrowed to a time range; explaining
-- a decision looks up the outcome that refers to it.
CREATE INDEX audit_records_at ON audit_records (at);
CREATE INDEX audit_records_ref ON audit_records (ref) WHERE ref <> '';

-- Signed checkpoints: the chain's head (seq, hash) at a time, signed with the
-- replica's Ed25519 key named by key_id.
CREATE TABLE audit_checkpoints (
    chain     text        NOT NULL CHECK (chain <> ''),
    seq       bigint      NOT NULL CHECK (seq > 0),
    hash      text        NOT NULL CHECK (length(hash) = 64),
    at        timestamptz NOT NULL,
    key_id    text        NOT NULL CHECK (key_id <> ''),
    signature bytea       NOT NULL,
    PRIMARY KEY (chain, seq)
);
