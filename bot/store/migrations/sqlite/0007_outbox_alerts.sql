-- Operator alerts (error rate, latency) go through the outbox too, so a
-- worker process can raise one that the adapter's process posts; they
-- belong to no job. SQLite cannot drop NOT NULL in place: rebuild the table.

CREATE TABLE outbox_new (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    job_id INTEGER REFERENCES jobs(id),   -- NULL for an alert
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

INSERT INTO outbox_new (id, key, job_id, platform, kind, payload, state, attempts, available_at,
               last_error, created_at, delivered_at)
           SELECT id, key, job_id, platform, kind, payload, state, attempts, available_at, last_error,
               created_at, delivered_at FROM outbox;

DROP TABLE outbox;

ALTER TABLE outbox_new RENAME TO outbox;

CREATE INDEX outbox_pending ON outbox (state, platform, available_at);
