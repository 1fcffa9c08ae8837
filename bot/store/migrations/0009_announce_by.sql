-- An announced job waits for its adapter's attach_delivery until this
-- deadline, and is cancelled (never started) past it; NULL once attached
-- or when it was never announced. The last release put an announced job
-- off by exactly 120 s and attach_delivery brought it forward: one still
-- 120 s after its creation was never attached.

ALTER TABLE jobs ADD COLUMN announce_by {float};

UPDATE jobs SET announce_by = available_at, available_at = created_at
           WHERE state = 'queued' AND attempt = 0 AND available_at = created_at + 120;

CREATE INDEX jobs_announce ON jobs (state, announce_by) WHERE announce_by IS NOT NULL;
