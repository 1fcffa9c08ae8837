CREATE TABLE ledger (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    entry TEXT NOT NULL,              -- reservation | settlement | release
    attempt INTEGER NOT NULL,         -- 0 for reservation and release
    team TEXT NOT NULL,
    channel TEXT NOT NULL,
    user TEXT NOT NULL,
    model TEXT NOT NULL,
    size TEXT NOT NULL,
    lane TEXT NOT NULL,
    prompt_tokens INTEGER,
    output_tokens INTEGER,
    image_tokens INTEGER,
    cost_micros INTEGER NOT NULL,     -- held, charged or freed, in micro-dollars
    status TEXT NOT NULL,             -- held | succeeded | blocked | failed | released
    price_version TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (job_id, entry, attempt)   -- never charged twice for one call
);

CREATE INDEX ledger_team ON ledger (team, entry, created_at);

CREATE INDEX ledger_channel ON ledger (team, channel, entry, created_at);

CREATE INDEX ledger_user ON ledger (team, user, entry, created_at);

CREATE TABLE holds (                  -- open reservations: one per unfinished job
    job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
    team TEXT NOT NULL,
    channel TEXT NOT NULL,
    user TEXT NOT NULL,
    amount_micros INTEGER NOT NULL,
    price_version TEXT NOT NULL,
    created_at REAL NOT NULL
);

CREATE INDEX holds_team ON holds (team, channel, user);

CREATE TABLE budgets (
    team TEXT NOT NULL,
    scope TEXT NOT NULL,              -- team | channel | user
    scope_id TEXT NOT NULL,           -- '' for the team itself
    limit_micros INTEGER NOT NULL,
    period TEXT NOT NULL,             -- day | week | month (UTC)
    soft_threshold REAL NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (team, scope, scope_id)
);

CREATE TABLE moderation_log (
    id INTEGER PRIMARY KEY,
    team TEXT NOT NULL,
    channel TEXT NOT NULL,
    user TEXT NOT NULL,
    reason TEXT NOT NULL,
    prompt TEXT,                      -- NULL when the team chose privacy mode
    created_at REAL NOT NULL
);

CREATE INDEX jobs_user_day ON jobs (team, user, created_at);
