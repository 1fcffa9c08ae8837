CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    team TEXT NOT NULL,
    channel TEXT NOT NULL,
    "user" TEXT NOT NULL,
    platform TEXT NOT NULL,
    kind TEXT NOT NULL,
    request JSONB NOT NULL,           -- GenerationSpec
    delivery JSONB NOT NULL,          -- opaque platform context
    idempotency_key TEXT UNIQUE,
    state TEXT NOT NULL,
    round BIGINT NOT NULL,            -- fair-queue position, see SQLiteStore.submit
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    available_at DOUBLE PRECISION NOT NULL,   -- not leased before this (retry back-off)
    lease_until DOUBLE PRECISION,
    worker_id TEXT,
    result_image_id BIGINT,           -- REFERENCES images(id), added below
    result JSONB,                     -- model version, usage, cost
    error_class TEXT,
    error_detail TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION
);

CREATE INDEX jobs_queue ON jobs (state, round, id);

CREATE INDEX jobs_team_queue ON jobs (team, state, round);

CREATE INDEX jobs_lease ON jobs (state, lease_until);

CREATE TABLE images (
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT REFERENCES jobs(id),
    role TEXT NOT NULL,               -- input | output
    parent_image_id BIGINT REFERENCES images(id),
    mime TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    data BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE INDEX images_job ON images (job_id, role);

ALTER TABLE jobs ADD FOREIGN KEY (result_image_id) REFERENCES images(id);

CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,         -- one delivery per key, whatever retries happen
    job_id BIGINT NOT NULL REFERENCES jobs(id),
    platform TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload JSONB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at DOUBLE PRECISION NOT NULL,
    last_error TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    delivered_at DOUBLE PRECISION
);

CREATE INDEX outbox_pending ON outbox (state, platform, available_at);

CREATE TABLE queue_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);

INSERT INTO queue_meta (key, value) VALUES ('served_round', 0);
