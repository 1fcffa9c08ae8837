-- A hedged attempt makes two calls and both are billed: the second call's
-- settlement is its own row (hedge = 1), so the (job, entry, attempt) key that
-- keeps a call from being charged twice gains the hedge. SQLite cannot change a
-- table's UNIQUE constraint in place, so the table is rebuilt.

CREATE TABLE ledger_new (
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
    hedge INTEGER NOT NULL DEFAULT 0, -- 1: the other call of a hedged attempt
    UNIQUE (job_id, entry, attempt, hedge)   -- never charged twice for one call
);

INSERT INTO ledger_new (id, job_id, entry, attempt, team, channel, user, model, size, lane, prompt_tokens, output_tokens, image_tokens, cost_micros, status, price_version, created_at) SELECT id, job_id, entry, attempt, team, channel, user, model, size, lane, prompt_tokens, output_tokens, image_tokens, cost_micros, status, price_version, created_at FROM ledger;

DROP TABLE ledger;

ALTER TABLE ledger_new RENAME TO ledger;

CREATE INDEX ledger_team ON ledger (team, entry, created_at);

CREATE INDEX ledger_channel ON ledger (team, channel, entry, created_at);

CREATE INDEX ledger_user ON ledger (team, user, entry, created_at);
