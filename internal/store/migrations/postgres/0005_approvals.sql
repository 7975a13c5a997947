-- Approvals: a human's one-time decision on one exact call, bound to the
-- principal (user_id is '' for an autonomous agent), the upstream and tool,
-- the canonical hash of the arguments and the policy version. args_preview
-- is redacted JSON shown to the approver, never used to decide; it is text,
-- not jsonb, which would reorder it. decided_at is NULL until decided.
--
-- There are no foreign keys: an approval is evidence of a human decision and
-- outlives the records it names, for the audit log's sake.

CREATE TABLE approvals (
    id             text        PRIMARY KEY CHECK (id <> ''),
    user_id        text        NOT NULL DEFAULT '',
    agent_id       text        NOT NULL CHECK (agent_id <> ''),
    upstream       text        NOT NULL CHECK (upstream <> ''),
    tool           text        NOT NULL CHECK (tool <> ''),
    args_hash      text        NOT NULL CHECK (length(args_hash) = 64),
    args_preview   text        NOT NULL,
    policy_version text        NOT NULL DEFAULT '',
    status         text        NOT NULL
                   CHECK (status IN ('pending', 'approved', 'denied', 'used', 'expired')),
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL CHECK (expires_at > created_at),
    decided_at     timestamptz,
    decided_by     text        NOT NULL DEFAULT '',
    CHECK ((decided_by = '') = (decided_at IS NULL))
);

-- The gateway looks for an approved approval on every call that needs one;
-- operators list the pending ones.
CREATE INDEX approvals_status ON approvals (status, created_at);
