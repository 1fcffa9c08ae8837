-- PostgreSQL: concurrent writers, so rows a statement takes are locked, and
-- those another transaction holds are skipped (FOR NO KEY UPDATE excludes
-- other takers without blocking inserts of rows that merely reference the
-- row, such as a job's ledger entries); JSON is JSONB; lists are arrays.

-- fragment: skip_locked
FOR NO KEY UPDATE SKIP LOCKED

-- fragment: skip_locked_jobs
FOR NO KEY UPDATE OF jobs SKIP LOCKED

-- fragment: lock_row
FOR NO KEY UPDATE

-- fragment: lock_image_row
FOR NO KEY UPDATE OF images

-- fragment: json
($1->>'$2')

-- fragment: set_json
jsonb_set($1, ARRAY['$2'], to_jsonb(CAST(:$3 AS TEXT)))

-- The UTC midnight (epoch seconds) of a row's created_at.
-- fragment: utc_day
(CAST(FLOOR(created_at / 86400) AS BIGINT) * 86400)

-- A JSON object parameter's value under a column's value as its key.
-- fragment: json_key
(:$1 ->> CAST($2 AS TEXT))

-- A JSON object of one key and a column's value.
-- fragment: json_pair
jsonb_build_object('$1', $2)

-- PostgreSQL's planner chooses by its statistics.
-- fragment: use_index

-- fragment: in
= ANY(:$1)

-- Held until commit. Advisory locks are database-wide: stores in other
-- schemas of the same database only ever wait on each other, harmlessly.
-- name: advisory_lock
SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))

-- Delivered when the transaction commits, and not at all if it rolls back.
-- name: notify
SELECT pg_notify(channel, '') FROM unnest(CAST(:channels AS TEXT[])) AS channel

-- name: migrations_table
CREATE TABLE IF NOT EXISTS imagine_migrations (
    name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())

-- name: migrations_index
SELECT 1

-- name: migrations_applied
SELECT name FROM imagine_migrations

-- name: migration_record
INSERT INTO imagine_migrations (name) VALUES (:name)

-- Column types of the migrations shared by both databases (bot/store/migrations/*.sql).
-- fragment: serial
BIGSERIAL PRIMARY KEY
-- fragment: bigint
BIGINT
-- fragment: float
DOUBLE PRECISION
-- fragment: json_column
JSONB
-- fragment: bytes
BYTEA
-- fragment: early_image_key
-- jobs and images reference each other: the key from jobs can only come once images exists.
-- fragment: late_image_key
ALTER TABLE jobs ADD FOREIGN KEY (result_image_id) REFERENCES images(id)

-- Retention (bot/store/retention.py): the whole database, and this store's biggest tables.
-- name: database_size
SELECT pg_database_size(current_database()) AS bytes, 'database ' || current_database() AS detail

-- name: table_sizes
SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'r'
ORDER BY bytes DESC, name LIMIT 5

-- A finished job in one statement, one round trip (sent outside a transaction: the
-- statement is its own), doing what QueueOperations.complete does in ten: take the
-- job back (locked; nothing more when the lease moved on), its image and bytes, the
-- job succeeded, its hold released with the call's settlement at the hold's price
-- version and the release of the rest, and its result delivery. Every CTE sees the
-- same snapshot, so `charged` adds this settlement to the ones before it (`settled`
-- is empty when the same call was already settled). A lease lost: the call is
-- settled all the same (`lost`), as _settle_lost_attempt does.
-- name: complete_job
WITH taken AS (
    SELECT * FROM jobs WHERE id = :id AND state = 'running' AND worker_id = :worker AND attempt = :attempt
    FOR NO KEY UPDATE
), blob AS (
    INSERT INTO blobs (sha256, data) SELECT CAST(:sha256 AS TEXT), CAST(:data AS BYTEA) FROM taken
    ON CONFLICT DO NOTHING
), image AS (
    INSERT INTO images (job_id, role, parent_image_id, mime, width, height, size_bytes, sha256, created_at)
    SELECT id, 'output', CAST(request->>'parent_image_id' AS BIGINT), CAST(:mime AS TEXT), CAST(:width AS INTEGER),
        CAST(:height AS INTEGER), CAST(:size_bytes AS INTEGER), CAST(:sha256 AS TEXT), CAST(:now AS DOUBLE PRECISION)
    FROM taken RETURNING id, job_id
), succeeded AS (
    UPDATE jobs SET state = 'succeeded', result_image_id = image.id, result = :result, lease_until = NULL,
        finished_at = :now, updated_at = :now, error_class = NULL, error_detail = NULL
    FROM image WHERE jobs.id = image.job_id
), hold AS (
    DELETE FROM holds WHERE job_id = (SELECT id FROM taken) RETURNING amount_micros, price_version
), settled AS (
    INSERT INTO ledger (job_id, entry, attempt, team, channel, "user", model, size, lane, prompt_tokens,
        output_tokens, image_tokens, cost_micros, status, price_version, created_at, hedge, approved_by)
    SELECT taken.id, 'settlement', taken.attempt, taken.team, taken.channel, taken."user",
        taken.request->>'model_alias', taken.request->>'size', taken.request->>'lane',
        CAST(:prompt_tokens AS BIGINT), CAST(:output_tokens AS BIGINT), CAST(:image_tokens AS BIGINT),
        CAST(:cost_micros AS BIGINT), CAST(:status AS TEXT),
        COALESCE((SELECT price_version FROM hold), 'unmetered'), CAST(:now AS DOUBLE PRECISION), 0,
        taken.request->>'approved_by'
    FROM taken WHERE CAST(:cost_micros AS BIGINT) IS NOT NULL
    ON CONFLICT DO NOTHING RETURNING cost_micros
), charged AS (
    SELECT (SELECT COALESCE(SUM(cost_micros), 0) FROM ledger WHERE job_id = :id AND entry = 'settlement')
        + COALESCE((SELECT SUM(cost_micros) FROM settled), 0) AS micros
), released AS (
    INSERT INTO ledger (job_id, entry, attempt, team, channel, "user", model, size, lane, prompt_tokens,
        output_tokens, image_tokens, cost_micros, status, price_version, created_at, hedge, approved_by)
    SELECT taken.id, 'release', 0, taken.team, taken.channel, taken."user",
        taken.request->>'model_alias', taken.request->>'size', taken.request->>'lane', NULL, NULL, NULL,
        GREATEST(0, hold.amount_micros - charged.micros), 'released', hold.price_version,
        CAST(:now AS DOUBLE PRECISION), 0, taken.request->>'approved_by'
    FROM taken, hold, charged
    ON CONFLICT DO NOTHING
), delivery AS (
    INSERT INTO outbox (key, job_id, platform, kind, payload, available_at, created_at)
    SELECT CAST(:key AS TEXT), taken.id, taken.platform, CAST(:kind AS TEXT),
        CAST(:payload AS JSONB) || jsonb_build_object('image_id', image.id),
        CAST(:now AS DOUBLE PRECISION), CAST(:now AS DOUBLE PRECISION)
    FROM taken, image
    ON CONFLICT DO NOTHING RETURNING id
), lost AS (
    INSERT INTO ledger (job_id, entry, attempt, team, channel, "user", model, size, lane, prompt_tokens,
        output_tokens, image_tokens, cost_micros, status, price_version, created_at, hedge, approved_by)
    SELECT jobs.id, 'settlement', CAST(:attempt AS INTEGER), jobs.team, jobs.channel, jobs."user",
        jobs.request->>'model_alias', jobs.request->>'size', jobs.request->>'lane',
        CAST(:prompt_tokens AS BIGINT), CAST(:output_tokens AS BIGINT), CAST(:image_tokens AS BIGINT),
        CAST(:cost_micros AS BIGINT), CAST(:status AS TEXT),
        COALESCE((SELECT price_version FROM holds WHERE job_id = jobs.id), 'unmetered'),
        CAST(:now AS DOUBLE PRECISION), 0, jobs.request->>'approved_by'
    FROM jobs WHERE jobs.id = :id AND CAST(:cost_micros AS BIGINT) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM taken)
    ON CONFLICT DO NOTHING
)
SELECT (SELECT id FROM image) AS image_id, (SELECT amount_micros FROM hold) AS held_micros,
    (SELECT micros FROM charged) AS charged_micros, EXISTS (SELECT 1 FROM delivery) AS queued

-- lease_take, insert_started and advance_served_round in one statement (QueueOperations._take):
-- the jobs leased, each one's "started" delivery (from the leased row: its new attempt), and the
-- served round moved on to the last round taken. `started` counts the deliveries queued.
-- name: lease_take_all
WITH taken AS (
    UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = {json_key:workers.id},
        lease_until = :until, started_at = COALESCE(started_at, :now), updated_at = :now
    WHERE id {in:ids} RETURNING *, {held_micros},
        EXISTS (SELECT 1 FROM images i WHERE i.job_id = jobs.id AND i.role = 'input') AS has_inputs
), started AS (
    INSERT INTO outbox (key, job_id, platform, kind, payload, available_at, created_at)
    SELECT 'job:' || id || ':' || 'started' || ':' || attempt, id, platform, 'started',
        {json_pair:attempt.attempt}, :now, :now
    FROM taken ORDER BY id
    ON CONFLICT DO NOTHING RETURNING 1
), served AS (
    UPDATE queue_meta SET value = (SELECT MAX(round) FROM taken)
    WHERE key = 'served_round' AND value < (SELECT MAX(round) FROM taken)
)
SELECT taken.*, (SELECT COUNT(*) FROM started) AS started FROM taken
