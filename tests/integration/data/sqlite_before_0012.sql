-- A SQLite file as the release at commit 1186474 left it, migrated up to (not including) 0012_hedged_calls:
-- its schema and its migration records, dumped with sqlite3's iterdump. Frozen: never regenerate.
BEGIN TRANSACTION;
CREATE TABLE "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);
INSERT INTO "_sqlite_migrations" VALUES(1,'imagine','0001_jobs_images_outbox','2026-11-30 22:12:00.723701+00:00');
INSERT INTO "_sqlite_migrations" VALUES(2,'imagine','0002_ledger_budgets_moderation','2026-11-30 22:12:00.724093+00:00');
INSERT INTO "_sqlite_migrations" VALUES(3,'imagine','0003_threads','2026-11-30 22:12:00.724242+00:00');
INSERT INTO "_sqlite_migrations" VALUES(4,'imagine','0004_confirmations','2026-11-30 22:12:00.724391+00:00');
INSERT INTO "_sqlite_migrations" VALUES(5,'imagine','0005_prompt_cache','2026-11-30 22:12:00.724723+00:00');
INSERT INTO "_sqlite_migrations" VALUES(6,'imagine','0006_batch_lane','2026-11-30 22:12:00.725280+00:00');
INSERT INTO "_sqlite_migrations" VALUES(7,'imagine','0007_outbox_alerts','2026-11-30 22:12:00.726425+00:00');
INSERT INTO "_sqlite_migrations" VALUES(8,'imagine','0008_rate_slots','2026-11-30 22:12:00.726598+00:00');
INSERT INTO "_sqlite_migrations" VALUES(9,'imagine','0009_announce_by','2026-11-30 22:12:00.726917+00:00');
INSERT INTO "_sqlite_migrations" VALUES(10,'imagine','0010_hold_default_budget','2026-11-30 22:12:00.727399+00:00');
INSERT INTO "_sqlite_migrations" VALUES(11,'imagine','0011_image_blobs','2026-11-30 22:12:00.728462+00:00');
CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            model_id TEXT NOT NULL,
            state TEXT NOT NULL,              -- creating | submitted | closed
            remote_name TEXT,                 -- the provider's name, e.g. batches/123
            remote_state TEXT,
            job_ids TEXT NOT NULL,            -- JSON list in request order (answers come back in it)
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            next_poll_at REAL NOT NULL
        );
CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE budgets (
            team TEXT NOT NULL,
            scope TEXT NOT NULL,              -- team | channel | user
            scope_id TEXT NOT NULL,           -- '' for the team itself
            limit_micros INTEGER NOT NULL,
            period TEXT NOT NULL,             -- day | week | month (UTC)
            soft_threshold REAL NOT NULL,
            updated_by TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (team, scope, scope_id)
        );
CREATE TABLE confirmations (
            token TEXT PRIMARY KEY,
            team TEXT NOT NULL,
            user TEXT NOT NULL,
            request TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
CREATE TABLE holds (                  -- open reservations: one per unfinished job
            job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            user TEXT NOT NULL,
            amount_micros INTEGER NOT NULL,
            price_version TEXT NOT NULL,
            created_at REAL NOT NULL
        , default_limit_micros INTEGER, default_period TEXT);
CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            job_id INTEGER REFERENCES jobs(id),
            role TEXT NOT NULL,               -- input | output
            parent_image_id INTEGER REFERENCES images(id),
            mime TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            size_bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            created_at REAL NOT NULL
        );
CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            user TEXT NOT NULL,
            platform TEXT NOT NULL,
            kind TEXT NOT NULL,
            request TEXT NOT NULL,            -- GenerationSpec as JSON
            delivery TEXT NOT NULL,           -- opaque platform context as JSON
            idempotency_key TEXT UNIQUE,
            state TEXT NOT NULL,
            round INTEGER NOT NULL,           -- fair-queue position, see SQLiteStore.submit
            attempt INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            available_at REAL NOT NULL,       -- not leased before this (retry back-off)
            lease_until REAL,
            worker_id TEXT,
            result_image_id INTEGER REFERENCES images(id),
            result TEXT,                      -- model version, usage, cost as JSON
            error_class TEXT,
            error_detail TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        , cache_key TEXT, lane TEXT NOT NULL DEFAULT 'standard', batch_id INTEGER, announce_by REAL);
CREATE TABLE ledger (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            entry TEXT NOT NULL,              -- reservation | settlement | release
            attempt INTEGER NOT NULL,         -- 0 for reservation and release
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            user TEXT NOT NULL,
            model TEXT NOT NULL,
            size TEXT NOT NULL,
            lane TEXT NOT NULL,
            prompt_tokens INTEGER,
            output_tokens INTEGER,
            image_tokens INTEGER,
            cost_micros INTEGER NOT NULL,     -- held, charged or freed, in micro-dollars
            status TEXT NOT NULL,             -- held | succeeded | blocked | failed | released
            price_version TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (job_id, entry, attempt)   -- never charged twice for one call
        );
CREATE TABLE moderation_log (
            id INTEGER PRIMARY KEY,
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            user TEXT NOT NULL,
            reason TEXT NOT NULL,
            prompt TEXT,                      -- NULL when the team chose privacy mode
            created_at REAL NOT NULL
        );
CREATE TABLE "outbox" (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            job_id INTEGER REFERENCES jobs(id),   -- NULL for an alert
            platform TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            available_at REAL NOT NULL,
            last_error TEXT,
            created_at REAL NOT NULL,
            delivered_at REAL
        );
CREATE TABLE queue_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO "queue_meta" VALUES('served_round',0);
CREATE TABLE rate_slots (key TEXT NOT NULL, taken_at REAL NOT NULL);
CREATE TABLE threads (
            platform TEXT NOT NULL,
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            thread_id TEXT NOT NULL,
            image_id INTEGER NOT NULL REFERENCES images(id),
            updated_at REAL NOT NULL,
            PRIMARY KEY (platform, team, channel, thread_id)
        );
CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");
CREATE INDEX jobs_queue ON jobs (state, round, id);
CREATE INDEX jobs_team_queue ON jobs (team, state, round);
CREATE INDEX jobs_lease ON jobs (state, lease_until);
CREATE INDEX images_job ON images (job_id, role);
CREATE INDEX ledger_team ON ledger (team, entry, created_at);
CREATE INDEX ledger_channel ON ledger (team, channel, entry, created_at);
CREATE INDEX ledger_user ON ledger (team, user, entry, created_at);
CREATE INDEX holds_team ON holds (team, channel, user);
CREATE INDEX jobs_user_day ON jobs (team, user, created_at);
CREATE INDEX jobs_cache ON jobs (cache_key, state, finished_at);
CREATE INDEX jobs_lane_queue ON jobs (lane, state, round, id);
CREATE INDEX jobs_batch ON jobs (batch_id);
CREATE INDEX batches_due ON batches (state, next_poll_at);
CREATE INDEX outbox_pending ON outbox (state, platform, available_at);
CREATE INDEX rate_slots_key ON rate_slots (key, taken_at);
CREATE INDEX jobs_announce ON jobs (state, announce_by) WHERE announce_by IS NOT NULL;
COMMIT;
