-- The pruner's picks (bot/store/sql/queries.sql, retention section) find old rows by age,
-- not by reading whole tables every run.
CREATE INDEX images_age ON images (created_at) WHERE deleted_at IS NULL;

CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE INDEX outbox_age ON outbox (created_at);

CREATE INDEX moderation_log_age ON moderation_log (created_at) WHERE prompt IS NOT NULL;
