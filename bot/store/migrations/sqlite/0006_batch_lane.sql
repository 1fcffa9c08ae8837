-- Relaxed jobs wait for the Batch lane; the interactive workers never lease them.

ALTER TABLE jobs ADD COLUMN lane TEXT NOT NULL DEFAULT 'standard';

ALTER TABLE jobs ADD COLUMN batch_id INTEGER;

CREATE INDEX jobs_lane_queue ON jobs (lane, state, round, id);

CREATE INDEX jobs_batch ON jobs (batch_id);

CREATE TABLE batches (
    id INTEGER PRIMARY KEY,
    model_id TEXT NOT NULL,
    state TEXT NOT NULL,              -- creating | submitted | closed
    remote_name TEXT,                 -- the provider's name, e.g. batches/123
    remote_state TEXT,
    job_ids TEXT NOT NULL,            -- JSON list in request order (answers come back in it)
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    next_poll_at REAL NOT NULL
);

CREATE INDEX batches_due ON batches (state, next_poll_at);
