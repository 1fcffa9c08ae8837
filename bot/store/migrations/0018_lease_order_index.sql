-- lease_pick's order (Priority first, then round, then id) read straight from an index over the
-- queued jobs: a lease no longer sorts the whole queue, so its cost stays flat as the queue grows.
CREATE INDEX jobs_runnable ON jobs ((lane = 'priority') DESC, round, id) WHERE state = 'queued';
