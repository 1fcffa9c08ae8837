"""SQLite schema as ordered, named migrations (recorded in _sqlite_migrations).

Append new migrations at the end; never edit one that has shipped.
"""

from __future__ import annotations

import hashlib

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("imagine")


@migrations(name="0001_jobs_images_outbox")
def _jobs_images_outbox(db: Database) -> None:
    for statement in (
        """
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
        )
        """,
        "CREATE INDEX jobs_queue ON jobs (state, round, id)",
        "CREATE INDEX jobs_team_queue ON jobs (team, state, round)",
        "CREATE INDEX jobs_lease ON jobs (state, lease_until)",
        """
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
            data BLOB NOT NULL,
            created_at REAL NOT NULL
        )
        """,
        "CREATE INDEX images_job ON images (job_id, role)",
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,         -- one delivery per key, whatever retries happen
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            platform TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            available_at REAL NOT NULL,
            last_error TEXT,
            created_at REAL NOT NULL,
            delivered_at REAL
        )
        """,
        "CREATE INDEX outbox_pending ON outbox (state, platform, available_at)",
        "CREATE TABLE queue_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO queue_meta (key, value) VALUES ('served_round', 0)",
    ):
        db.execute(statement)


@migrations(name="0002_ledger_budgets_moderation")
def _ledger_budgets_moderation(db: Database) -> None:
    for statement in (
        """
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
        )
        """,
        "CREATE INDEX ledger_team ON ledger (team, entry, created_at)",
        "CREATE INDEX ledger_channel ON ledger (team, channel, entry, created_at)",
        "CREATE INDEX ledger_user ON ledger (team, user, entry, created_at)",
        """
        CREATE TABLE holds (                  -- open reservations: one per unfinished job
            job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            user TEXT NOT NULL,
            amount_micros INTEGER NOT NULL,
            price_version TEXT NOT NULL,
            created_at REAL NOT NULL
        )
        """,
        "CREATE INDEX holds_team ON holds (team, channel, user)",
        """
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
        )
        """,
        """
        CREATE TABLE moderation_log (
            id INTEGER PRIMARY KEY,
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            user TEXT NOT NULL,
            reason TEXT NOT NULL,
            prompt TEXT,                      -- NULL when the team chose privacy mode
            created_at REAL NOT NULL
        )
        """,
        "CREATE INDEX jobs_user_day ON jobs (team, user, created_at)",
    ):
        db.execute(statement)


@migrations(name="0003_threads")
def _threads(db: Database) -> None:
    # Which bot image a chat thread is about, so a reply there edits it
    # without scanning the platform's message history.
    db.execute(
        """
        CREATE TABLE threads (
            platform TEXT NOT NULL,
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            thread_id TEXT NOT NULL,
            image_id INTEGER NOT NULL REFERENCES images(id),
            updated_at REAL NOT NULL,
            PRIMARY KEY (platform, team, channel, thread_id)
        )
        """
    )


@migrations(name="0004_confirmations")
def _confirmations(db: Database) -> None:
    # Requests waiting for [Run] / [Use Flash]; in the database so the
    # buttons still work after a restart.
    db.execute(
        """
        CREATE TABLE confirmations (
            token TEXT PRIMARY KEY,
            team TEXT NOT NULL,
            user TEXT NOT NULL,
            request TEXT NOT NULL,
            expires_at REAL NOT NULL
        )
        """
    )


@migrations(name="0005_prompt_cache")
def _prompt_cache(db: Database) -> None:
    # Same model, size, ratio, prompt and input images: the stored image is reused at $0.
    db.execute("ALTER TABLE jobs ADD COLUMN cache_key TEXT")
    db.execute("CREATE INDEX jobs_cache ON jobs (cache_key, state, finished_at)")


@migrations(name="0006_batch_lane")
def _batch_lane(db: Database) -> None:
    # Relaxed jobs wait for the Batch lane; the interactive workers never lease them.
    db.execute("ALTER TABLE jobs ADD COLUMN lane TEXT NOT NULL DEFAULT 'standard'")
    db.execute("ALTER TABLE jobs ADD COLUMN batch_id INTEGER")
    db.execute("CREATE INDEX jobs_lane_queue ON jobs (lane, state, round, id)")
    db.execute("CREATE INDEX jobs_batch ON jobs (batch_id)")
    # One row per batch sent (or being sent) to the provider's Batch API.
    db.execute(
        """
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
        )
        """
    )
    db.execute("CREATE INDEX batches_due ON batches (state, next_poll_at)")


@migrations(name="0007_outbox_alerts")
def _outbox_alerts(db: Database) -> None:
    # Operator alerts (error rate, latency) go through the outbox too, so a
    # worker process can raise one that the adapter's process posts; they
    # belong to no job. SQLite cannot drop NOT NULL in place: rebuild the table.
    for statement in (
        """
        CREATE TABLE outbox_new (
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
        )
        """,
        """INSERT INTO outbox_new (id, key, job_id, platform, kind, payload, state, attempts, available_at,
               last_error, created_at, delivered_at)
           SELECT id, key, job_id, platform, kind, payload, state, attempts, available_at, last_error,
               created_at, delivered_at FROM outbox""",
        "DROP TABLE outbox",
        "ALTER TABLE outbox_new RENAME TO outbox",
        "CREATE INDEX outbox_pending ON outbox (state, platform, available_at)",
    ):
        db.execute(statement)


@migrations(name="0008_rate_slots")
def _rate_slots(db: Database) -> None:
    # Provider calls in the last minute, per route and model: one rate limit for every process.
    db.execute("CREATE TABLE rate_slots (key TEXT NOT NULL, taken_at REAL NOT NULL)")
    db.execute("CREATE INDEX rate_slots_key ON rate_slots (key, taken_at)")


@migrations(name="0009_announce_by")
def _announce_by(db: Database) -> None:
    # An announced job waits for its adapter's attach_delivery until this
    # deadline, and is cancelled (never started) past it; NULL once attached
    # or when it was never announced.
    db.execute("ALTER TABLE jobs ADD COLUMN announce_by REAL")
    # The last release put an announced job off by exactly 120 s and
    # attach_delivery brought it forward: one still 120 s after its creation
    # was never attached.
    db.execute("""UPDATE jobs SET announce_by = available_at, available_at = created_at
                  WHERE state = 'queued' AND attempt = 0 AND available_at = created_at + 120""")
    db.execute("CREATE INDEX jobs_announce ON jobs (state, announce_by) WHERE announce_by IS NOT NULL")


@migrations(name="0010_hold_default_budget")
def _hold_default_budget(db: Database) -> None:
    # The default team budget a job was admitted under (NULL: none applied),
    # so a billed retry is checked against the same cap.
    db.execute("ALTER TABLE holds ADD COLUMN default_limit_micros INTEGER")
    db.execute("ALTER TABLE holds ADD COLUMN default_period TEXT")


@migrations(name="0011_image_blobs")
def _image_blobs(db: Database) -> None:
    # Image bytes stored once per distinct content: images rows name theirs by sha256.
    # The digest is recomputed from the bytes, never taken from the old row.
    db.conn.create_function("sha256_hex", 1, lambda data: hashlib.sha256(data).hexdigest(), deterministic=True)
    for statement in (
        "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL)",
        "INSERT OR IGNORE INTO blobs (sha256, data) SELECT sha256_hex(data), data FROM images",
        "UPDATE images SET sha256 = sha256_hex(data)",
        "ALTER TABLE images DROP COLUMN data",
    ):
        db.execute(statement)


@migrations(name="0012_hedged_calls")
def _hedged_calls(db: Database) -> None:
    # A hedged attempt makes two calls and both are billed: the second call's
    # settlement is its own row (hedge = 1), so the (job, entry, attempt) key that
    # keeps a call from being charged twice gains the hedge. SQLite cannot change a
    # table's UNIQUE constraint in place, so the table is rebuilt.
    columns = ("id, job_id, entry, attempt, team, channel, user, model, size, lane, prompt_tokens, "
               "output_tokens, image_tokens, cost_micros, status, price_version, created_at")
    for statement in (
        """
        CREATE TABLE ledger_new (
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
            hedge INTEGER NOT NULL DEFAULT 0, -- 1: the other call of a hedged attempt
            UNIQUE (job_id, entry, attempt, hedge)   -- never charged twice for one call
        )
        """,
        f"INSERT INTO ledger_new ({columns}) SELECT {columns} FROM ledger",
        "DROP TABLE ledger",
        "ALTER TABLE ledger_new RENAME TO ledger",
        "CREATE INDEX ledger_team ON ledger (team, entry, created_at)",
        "CREATE INDEX ledger_channel ON ledger (team, channel, entry, created_at)",
        "CREATE INDEX ledger_user ON ledger (team, user, entry, created_at)",
    ):
        db.execute(statement)
