CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    team TEXT NOT NULL,
    channel TEXT NOT NULL,
    user TEXT NOT NULL,
    platform TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,            -- GenerationSpec as JSON
    delivery TEXT NOT NULL,           -- opaque platform context as JSON
    idempotency_key TEXT UNIQUE,
    state TEXT NOT NULL,
    round INTEGER NOT NULL,           -- fair-queue position, see SQLiteStore.submit
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    available_at REAL NOT NULL,       -- not leased before this (retry back-off)
    lease_until REAL,
    worker_id TEXT,
    result_image_id INTEGER REFERENCES images(id),
    result TEXT,                      -- model version, usage, cost as JSON
    error_class TEXT,
    error_detail TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);

CREATE INDEX jobs_queue ON jobs (state, round, id);

CREATE INDEX jobs_team_queue ON jobs (team, state, round);

CREATE INDEX jobs_lease ON jobs (state, lease_until);

CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    job_id INTEGER REFERENCES jobs(id),
    role TEXT NOT NULL,               -- input | output
    parent_image_id INTEGER REFERENCES images(id),
    mime TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL
);

CREATE INDEX images_job ON images (job_id, role);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,         -- one delivery per key, whatever retries happen
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    platform TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL
);

CREATE INDEX outbox_pending ON outbox (state, platform, available_at);

CREATE TABLE queue_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);

INSERT INTO queue_meta (key, value) VALUES ('served_round', 0);
