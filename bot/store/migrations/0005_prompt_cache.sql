-- Same model, size, ratio, prompt and input images: the stored image is reused at $0.

ALTER TABLE jobs ADD COLUMN cache_key TEXT;

CREATE INDEX jobs_cache ON jobs (cache_key, state, finished_at);
