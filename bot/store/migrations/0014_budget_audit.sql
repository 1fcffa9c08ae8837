-- Who changed which budget, when, and from what to what: one row per change, written in the
-- transaction that makes it (chat, CLI or web alike). A removal leaves the new_* columns NULL;
-- a first set leaves the old_* columns NULL.

CREATE TABLE budget_audit (
    id {serial},
    team TEXT NOT NULL,
    "user" TEXT NOT NULL,             -- who made the change
    platform TEXT NOT NULL,           -- slack | discord | web | cli ('' when not said)
    scope TEXT NOT NULL,              -- team | channel | user
    scope_id TEXT NOT NULL,           -- '' for the team itself
    old_limit_micros {bigint},
    old_period TEXT,
    old_soft_threshold {float},
    new_limit_micros {bigint},
    new_period TEXT,
    new_soft_threshold {float},
    created_at {float} NOT NULL
);

CREATE INDEX budget_audit_team ON budget_audit (team, id);

-- The ledger page lists a team's rows newest first, a page at a time, whatever else it filters on.
CREATE INDEX ledger_team_id ON ledger (team, id);
