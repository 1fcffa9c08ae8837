-- Relaxed jobs wait for the Batch lane; the interactive workers never lease them.

ALTER TABLE jobs ADD COLUMN lane TEXT NOT NULL DEFAULT 'standard';

ALTER TABLE jobs ADD COLUMN batch_id {bigint};

CREATE INDEX jobs_lane_queue ON jobs (lane, state, round, id);

CREATE INDEX jobs_batch ON jobs (batch_id);

CREATE TABLE batches (
    id {serial},
    model_id TEXT NOT NULL,
    state TEXT NOT NULL,              -- creating | submitted | closed
    remote_name TEXT,                 -- the provider's name, e.g. batches/123
    remote_state TEXT,
    job_ids {json_column} NOT NULL,           -- list in request order (answers come back in it)
    created_at {float} NOT NULL,
    updated_at {float} NOT NULL,
    next_poll_at {float} NOT NULL
);

CREATE INDEX batches_due ON batches (state, next_poll_at);
