CREATE TABLE ledger (
    id {serial},
    job_id {bigint} NOT NULL REFERENCES jobs(id),
    entry TEXT NOT NULL,              -- reservation | settlement | release
    attempt INTEGER NOT NULL,         -- 0 for reservation and release
    team TEXT NOT NULL,
    channel TEXT NOT NULL,
    "user" TEXT NOT NULL,
    model TEXT NOT NULL,
    size TEXT NOT NULL,
    lane TEXT NOT NULL,
    prompt_tokens {bigint},
    output_tokens {bigint},
    image_tokens {bigint},
    cost_micros {bigint} NOT NULL,      -- held, charged or freed, in micro-dollars
    status TEXT NOT NULL,             -- held | succeeded | blocked | failed | released
    price_version TEXT NOT NULL,
    created_at {float} NOT NULL,
    UNIQUE (job_id, entry, attempt)   -- never charged twice for one call
);

CREATE INDEX ledger_team ON ledger (team, entry, created_at);

CREATE INDEX ledger_channel ON ledger (team, channel, entry, created_at);

CREATE INDEX ledger_user ON ledger (team, "user", entry, created_at);

CREATE TABLE holds (                  -- open reservations: one per unfinished job
    job_id {bigint} PRIMARY KEY REFERENCES jobs(id),
    team TEXT NOT NULL,
    channel TEXT NOT NULL,
    "user" TEXT NOT NULL,
    amount_micros {bigint} NOT NULL,
    price_version TEXT NOT NULL,
    created_at {float} NOT NULL
);

CREATE INDEX holds_team ON holds (team, channel, "user");

CREATE TABLE budgets (
    team TEXT NOT NULL,
    scope TEXT NOT NULL,              -- team | channel | user
    scope_id TEXT NOT NULL,           -- '' for the team itself
    limit_micros {bigint} NOT NULL,
    period TEXT NOT NULL,             -- day | week | month (UTC)
    soft_threshold {float} NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at {float} NOT NULL,
    PRIMARY KEY (team, scope, scope_id)
);

CREATE TABLE moderation_log (
    id {serial},
    team TEXT NOT NULL,
    channel TEXT NOT NULL,
    "user" TEXT NOT NULL,
    reason TEXT NOT NULL,
    prompt TEXT,                      -- NULL when the team chose privacy mode
    created_at {float} NOT NULL
);

CREATE INDEX jobs_user_day ON jobs (team, "user", created_at);
