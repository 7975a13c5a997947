-- Approvals: a human's one-time decision on one exact call, bound to the
-- principal (user_id is '' for an autonomous agent), the upstream and tool,
-- the canonical hash of the arguments and the policy version. args_preview
-- is redacted JSON shown to the approver, never used to decide. Times are
-- Unix microseconds; decided_at_us is NULL until decided.
--
-- There are no foreign keys: an approval is evidence of a human decision and
-- outlives the records it names, for the audit log's sake.

CREATE TABLE approvals (
    id             TEXT    PRIMARY KEY CHECK (id <> ''),
    user_id        TEXT    NOT NULL DEFAULT '',
    agent_id       TEXT    NOT NULL CHECK (agent_id <> ''),
    upstream       TEXT    NOT NULL CHECK (upstream <> ''),
    tool           TEXT    NOT NULL CHECK (tool <> ''),
    args_hash      TEXT    NOT NULL CHECK (length(args_hash) = 64),
    args_preview   TEXT    NOT NULL,
    policy_version TEXT    NOT NULL DEFAULT '',
    status         TEXT    NOT NULL
                   CHECK (status IN ('pending', 'approved', 'denied', 'used', 'expired')),
    created_at_us  INTEGER NOT NULL,
    expires_at_us  INTEGER NOT NULL CHECK (expires_at_us > created_at_us),
    decided_at_us  INTEGER,
    decided_by     TEXT    NOT NULL DEFAULT '',
    CHECK ((decided_by = '') = (decided_at_us IS NULL))
);

-- The gateway looks for an approved approval on every call that needs one;
-- operators list the pending ones.
CREATE INDEX approvals_status ON approvals (status, created_at_us);
