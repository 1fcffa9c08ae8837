CREATE TABLE jobs (
    id {serial},
    team TEXT NOT NULL,
    channel TEXT NOT NULL,
    "user" TEXT NOT NULL,
    platform TEXT NOT NULL,
    kind TEXT NOT NULL,
    request {json_column} NOT NULL,           -- GenerationSpec
    delivery {json_column} NOT NULL,          -- opaque platform context
    idempotency_key TEXT UNIQUE,
    state TEXT NOT NULL,
    round {bigint} NOT NULL,            -- fair-queue position, see bot/store/queue.py
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    available_at {float} NOT NULL,   -- not leased before this (retry back-off)
    lease_until {float},
    worker_id TEXT,
    result_image_id {bigint}{early_image_key},
    result {json_column},                     -- model version, usage, cost
    error_class TEXT,
    error_detail TEXT,
    created_at {float} NOT NULL,
    updated_at {float} NOT NULL,
    started_at {float},
    finished_at {float}
);

CREATE INDEX jobs_queue ON jobs (state, round, id);

CREATE INDEX jobs_team_queue ON jobs (team, state, round);

CREATE INDEX jobs_lease ON jobs (state, lease_until);

CREATE TABLE images (
    id {serial},
    job_id {bigint} REFERENCES jobs(id),
    role TEXT NOT NULL,               -- input | output
    parent_image_id {bigint} REFERENCES images(id),
    mime TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    data {bytes} NOT NULL,
    created_at {float} NOT NULL
);

CREATE INDEX images_job ON images (job_id, role);
-- jobs and images reference each other: PostgreSQL can add the second key only now.
{late_image_key};

CREATE TABLE outbox (
    id {serial},
    key TEXT NOT NULL UNIQUE,         -- one delivery per key, whatever retries happen
    job_id {bigint} NOT NULL REFERENCES jobs(id),
    platform TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload {json_column} NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at {float} NOT NULL,
    last_error TEXT,
    created_at {float} NOT NULL,
    delivered_at {float}
);

CREATE INDEX outbox_pending ON outbox (state, platform, available_at);

CREATE TABLE queue_meta (key TEXT PRIMARY KEY, value {bigint} NOT NULL);

INSERT INTO queue_meta (key, value) VALUES ('served_round', 0);
