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
