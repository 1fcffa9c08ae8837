-- A hedged attempt makes two calls and both are billed: the second call's settlement
-- is its own row (hedge = 1), so the key that keeps a call from being charged twice gains it.

ALTER TABLE ledger ADD COLUMN hedge INTEGER NOT NULL DEFAULT 0;

ALTER TABLE ledger DROP CONSTRAINT ledger_job_id_entry_attempt_key;

ALTER TABLE ledger ADD CONSTRAINT ledger_job_id_entry_attempt_hedge_key UNIQUE (job_id, entry, attempt, hedge);
