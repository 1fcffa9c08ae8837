-- SQLite: one writer at a time (BEGIN IMMEDIATE), so no row locks; JSON is
-- TEXT read with json_extract; a list parameter arrives as a JSON array.

-- fragment: skip_locked

-- fragment: skip_locked_jobs

-- fragment: lock_row

-- fragment: lock_image_row

-- fragment: json
json_extract($1, '$.$2')

-- fragment: set_json
json_set($1, '$.$2', :$3)

-- The UTC midnight (epoch seconds) of a row's created_at.
-- fragment: utc_day
(CAST(created_at AS INTEGER) / 86400 * 86400)

-- A JSON object parameter's value under a column's value as its key.
-- fragment: json_key
json_extract(:$1, '$."' || $2 || '"')

-- A JSON object of one key and a column's value.
-- fragment: json_pair
json_object('$1', $2)

-- Without statistics SQLite's planner prefers any index on state = 'queued', then sorts.
-- fragment: use_index
INDEXED BY $1

-- fragment: in
IN (SELECT value FROM json_each(:$1))

-- The migration record sqlite-utils kept (set "imagine"), so files it migrated open as they are.
-- name: migrations_table
CREATE TABLE IF NOT EXISTS _sqlite_migrations (
    id INTEGER PRIMARY KEY, migration_set TEXT, name TEXT, applied_at TEXT)

-- name: migrations_index
CREATE UNIQUE INDEX IF NOT EXISTS idx__sqlite_migrations_migration_set_name
ON _sqlite_migrations (migration_set, name)

-- name: migrations_applied
SELECT name FROM _sqlite_migrations WHERE migration_set = 'imagine'

-- /healthz's write probe: rewrite one row as it is, so that the commit really appends a page
-- to the WAL and fails on a full disk (an empty write transaction writes nothing).
-- name: write_probe
UPDATE _sqlite_migrations SET name = name
WHERE id = (SELECT MAX(id) FROM _sqlite_migrations WHERE migration_set = 'imagine')

-- name: migration_record
INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('imagine', :name, :at)

-- Column types of the migrations shared by both databases (bot/store/migrations/*.sql).
-- fragment: serial
INTEGER PRIMARY KEY
-- fragment: bigint
INTEGER
-- fragment: float
REAL
-- fragment: json_column
TEXT
-- fragment: bytes
BLOB
-- SQLite lets a table name a key to a table made after it.
-- fragment: early_image_key
 REFERENCES images(id)
-- fragment: late_image_key

-- Retention (bot/store/retention.py): the file's pages, used and free.
-- name: database_size
SELECT page_count * page_size AS bytes,
    page_count || ' pages of ' || page_size || ' bytes, ' || freelist_count || ' free' AS detail
FROM pragma_page_count(), pragma_page_size(), pragma_freelist_count()
