-- Leasing reads the next queued job from this index, in lease_pick's own order (Priority first,
-- then round, then id), instead of sorting every queued job for each lease: flat from 1,000 to
-- 100,000 queued jobs (bench/scaling.py). Only queued jobs are in it; `state` leads all the same,
-- so that SQLite, which has no statistics, sees lease_pick's `state = 'queued'` use it.
CREATE INDEX jobs_lease_order ON jobs (state, (lane = 'priority') DESC, round, id) WHERE state = 'queued';
