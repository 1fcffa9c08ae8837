-- The default team budget a job was admitted under (NULL: none applied),
-- so a billed retry is checked against the same cap.

ALTER TABLE holds ADD COLUMN default_limit_micros {bigint};

ALTER TABLE holds ADD COLUMN default_period TEXT;
