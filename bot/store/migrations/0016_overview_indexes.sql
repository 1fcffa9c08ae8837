-- The overview's reads at 100,000 ledger rows (bench/dashboard.py): a month's spend by day,
-- model, person and channel is read from this index alone, not row by row from the table;
-- the old (team, entry, created_at) index is its prefix, so it goes.
CREATE INDEX ledger_team_spend ON ledger (team, entry, created_at, model, lane, "user", channel, cost_micros);
DROP INDEX ledger_team;
-- Cache savings read the team's cache hits (jobs that finished without a call: attempt 0).
CREATE INDEX jobs_cached ON jobs (team, created_at) WHERE state = 'succeeded' AND attempt = 0;
