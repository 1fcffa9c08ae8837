-- Operator alerts (error rate, latency) go through the outbox too, so a
-- worker process can raise one that the adapter's process posts; they
-- belong to no job.

ALTER TABLE outbox ALTER COLUMN job_id DROP NOT NULL;
