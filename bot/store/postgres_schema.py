"""PostgreSQL schema as ordered, named migrations (recorded in imagine_migrations).

The same tables, names and migration steps as bot/store/sqlite_schema.py, in
PostgreSQL types: BIGSERIAL ids, BYTEA images, JSONB blobs, BIGINT
micro-dollars, and DOUBLE PRECISION epoch seconds (the store's clock is
injectable, so timestamps are written by Python, never by now()).

Append new migrations at the end; never edit one that has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection, sql
from psycopg.rows import scalar_row


@dataclass(frozen=True)
class Migration:
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_jobs_images_outbox", (
        """
        CREATE TABLE jobs (
            id BIGSERIAL PRIMARY KEY,
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            "user" TEXT NOT NULL,
            platform TEXT NOT NULL,
            kind TEXT NOT NULL,
            request JSONB NOT NULL,           -- GenerationSpec
            delivery JSONB NOT NULL,          -- opaque platform context
            idempotency_key TEXT UNIQUE,
            state TEXT NOT NULL,
            round BIGINT NOT NULL,            -- fair-queue position, see SQLiteStore.submit
            attempt INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            available_at DOUBLE PRECISION NOT NULL,   -- not leased before this (retry back-off)
            lease_until DOUBLE PRECISION,
            worker_id TEXT,
            result_image_id BIGINT,           -- REFERENCES images(id), added below
            result JSONB,                     -- model version, usage, cost
            error_class TEXT,
            error_detail TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            started_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION
        )
        """,
        "CREATE INDEX jobs_queue ON jobs (state, round, id)",
        "CREATE INDEX jobs_team_queue ON jobs (team, state, round)",
        "CREATE INDEX jobs_lease ON jobs (state, lease_until)",
        """
        CREATE TABLE images (
            id BIGSERIAL PRIMARY KEY,
            job_id BIGINT REFERENCES jobs(id),
            role TEXT NOT NULL,               -- input | output
            parent_image_id BIGINT REFERENCES images(id),
            mime TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            size_bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            data BYTEA NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX images_job ON images (job_id, role)",
        # jobs and images reference each other: the second key can only come now.
        "ALTER TABLE jobs ADD FOREIGN KEY (result_image_id) REFERENCES images(id)",
        """
        CREATE TABLE outbox (
            id BIGSERIAL PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,         -- one delivery per key, whatever retries happen
            job_id BIGINT NOT NULL REFERENCES jobs(id),
            platform TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload JSONB NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            available_at DOUBLE PRECISION NOT NULL,
            last_error TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            delivered_at DOUBLE PRECISION
        )
        """,
        "CREATE INDEX outbox_pending ON outbox (state, platform, available_at)",
        "CREATE TABLE queue_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        "INSERT INTO queue_meta (key, value) VALUES ('served_round', 0)",
    )),
    Migration("0002_ledger_budgets_moderation", (
        """
        CREATE TABLE ledger (
            id BIGSERIAL PRIMARY KEY,
            job_id BIGINT NOT NULL REFERENCES jobs(id),
            entry TEXT NOT NULL,              -- reservation | settlement | release
            attempt INTEGER NOT NULL,         -- 0 for reservation and release
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            "user" TEXT NOT NULL,
            model TEXT NOT NULL,
            size TEXT NOT NULL,
            lane TEXT NOT NULL,
            prompt_tokens BIGINT,
            output_tokens BIGINT,
            image_tokens BIGINT,
            cost_micros BIGINT NOT NULL,      -- held, charged or freed, in micro-dollars
            status TEXT NOT NULL,             -- held | succeeded | blocked | failed | released
            price_version TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            UNIQUE (job_id, entry, attempt)   -- never charged twice for one call
        )
        """,
        "CREATE INDEX ledger_team ON ledger (team, entry, created_at)",
        "CREATE INDEX ledger_channel ON ledger (team, channel, entry, created_at)",
        'CREATE INDEX ledger_user ON ledger (team, "user", entry, created_at)',
        """
        CREATE TABLE holds (                  -- open reservations: one per unfinished job
            job_id BIGINT PRIMARY KEY REFERENCES jobs(id),
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            "user" TEXT NOT NULL,
            amount_micros BIGINT NOT NULL,
            price_version TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        )
        """,
        'CREATE INDEX holds_team ON holds (team, channel, "user")',
        """
        CREATE TABLE budgets (
            team TEXT NOT NULL,
            scope TEXT NOT NULL,              -- team | channel | user
            scope_id TEXT NOT NULL,           -- '' for the team itself
            limit_micros BIGINT NOT NULL,
            period TEXT NOT NULL,             -- day | week | month (UTC)
            soft_threshold DOUBLE PRECISION NOT NULL,
            updated_by TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (team, scope, scope_id)
        )
        """,
        """
        CREATE TABLE moderation_log (
            id BIGSERIAL PRIMARY KEY,
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            "user" TEXT NOT NULL,
            reason TEXT NOT NULL,
            prompt TEXT,                      -- NULL when the team chose privacy mode
            created_at DOUBLE PRECISION NOT NULL
        )
        """,
        'CREATE INDEX jobs_user_day ON jobs (team, "user", created_at)',
    )),
    # Which bot image a chat thread is about, so a reply there edits it
    # without scanning the platform's message history.
    Migration("0003_threads", (
        """
        CREATE TABLE threads (
            platform TEXT NOT NULL,
            team TEXT NOT NULL,
            channel TEXT NOT NULL,
            thread_id TEXT NOT NULL,
            image_id BIGINT NOT NULL REFERENCES images(id),
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (platform, team, channel, thread_id)
        )
        """,
    )),
    # Requests waiting for [Run] / [Use Flash]; in the database so the
    # buttons still work after a restart.
    Migration("0004_confirmations", (
        """
        CREATE TABLE confirmations (
            token TEXT PRIMARY KEY,
            team TEXT NOT NULL,
            "user" TEXT NOT NULL,
            request JSONB NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )
        """,
    )),
    # Same model, size, ratio, prompt and input images: the stored image is reused at $0.
    Migration("0005_prompt_cache", (
        "ALTER TABLE jobs ADD COLUMN cache_key TEXT",
        "CREATE INDEX jobs_cache ON jobs (cache_key, state, finished_at)",
    )),
    # Relaxed jobs wait for the Batch lane; the interactive workers never lease them.
    Migration("0006_batch_lane", (
        "ALTER TABLE jobs ADD COLUMN lane TEXT NOT NULL DEFAULT 'standard'",
        "ALTER TABLE jobs ADD COLUMN batch_id BIGINT",
        "CREATE INDEX jobs_lane_queue ON jobs (lane, state, round, id)",
        "CREATE INDEX jobs_batch ON jobs (batch_id)",
        # One row per batch sent (or being sent) to the provider's Batch API.
        """
        CREATE TABLE batches (
            id BIGSERIAL PRIMARY KEY,
            model_id TEXT NOT NULL,
            state TEXT NOT NULL,              -- creating | submitted | closed
            remote_name TEXT,                 -- the provider's name, e.g. batches/123
            remote_state TEXT,
            job_ids JSONB NOT NULL,           -- list in request order (answers come back in it)
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            next_poll_at DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX batches_due ON batches (state, next_poll_at)",
    )),
    # Operator alerts (error rate, latency) go through the outbox too, so a
    # worker process can raise one that the adapter's process posts; they
    # belong to no job.
    Migration("0007_outbox_alerts", (
        "ALTER TABLE outbox ALTER COLUMN job_id DROP NOT NULL",
    )),
    # Provider calls in the last minute, per route and model: one rate limit for every process.
    Migration("0008_rate_slots", (
        "CREATE TABLE rate_slots (key TEXT NOT NULL, taken_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX rate_slots_key ON rate_slots (key, taken_at)",
    )),
    # An announced job waits for its adapter's attach_delivery until this
    # deadline, and is cancelled (never started) past it; NULL once attached
    # or when it was never announced. The last release put an announced job
    # off by exactly 120 s and attach_delivery brought it forward: one still
    # 120 s after its creation was never attached.
    Migration("0009_announce_by", (
        "ALTER TABLE jobs ADD COLUMN announce_by DOUBLE PRECISION",
        """UPDATE jobs SET announce_by = available_at, available_at = created_at
           WHERE state = 'queued' AND attempt = 0 AND available_at = created_at + 120""",
        "CREATE INDEX jobs_announce ON jobs (state, announce_by) WHERE announce_by IS NOT NULL",
    )),
    # The default team budget a job was admitted under (NULL: none applied),
    # so a billed retry is checked against the same cap.
    Migration("0010_hold_default_budget", (
        "ALTER TABLE holds ADD COLUMN default_limit_micros BIGINT",
        "ALTER TABLE holds ADD COLUMN default_period TEXT",
    )),
    # Image bytes stored once per distinct content: images rows name theirs by sha256.
    # The digest is recomputed from the bytes, never taken from the old row.
    Migration("0011_image_blobs", (
        "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, data BYTEA NOT NULL)",
        """INSERT INTO blobs (sha256, data) SELECT encode(sha256(data), 'hex'), data FROM images
           ON CONFLICT DO NOTHING""",
        "UPDATE images SET sha256 = encode(sha256(data), 'hex')",
        "ALTER TABLE images DROP COLUMN data",
        "ALTER TABLE images ADD FOREIGN KEY (sha256) REFERENCES blobs(sha256)",
    )),
    # A hedged attempt makes two calls and both are billed: the second call's settlement
    # is its own row (hedge = 1), so the key that keeps a call from being charged twice gains it.
    Migration("0012_hedged_calls", (
        "ALTER TABLE ledger ADD COLUMN hedge INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE ledger DROP CONSTRAINT ledger_job_id_entry_attempt_key",
        "ALTER TABLE ledger ADD CONSTRAINT ledger_job_id_entry_attempt_hedge_key UNIQUE (job_id, entry, attempt, hedge)",
    )),
)

# Advisory locks are database-wide; this key only has to differ from the team locks.
_MIGRATION_LOCK = "imagine-migrations"


async def migrate(conn: AsyncConnection, schema: str | None,
                  migrations: tuple[Migration, ...] | list[Migration] = MIGRATIONS) -> None:
    """Bring the database (or `schema`) up to date, in one transaction
    (`migrations`: only those, for tests that build an older database).

    Processes starting at once queue on an advisory lock, so exactly one of
    them runs each migration and the others find it recorded.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_MIGRATION_LOCK,))
        if schema is not None:
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS imagine_migrations (
                   name TEXT PRIMARY KEY,
                   applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
               )""")
        done = set(await applied(conn))
        for migration in migrations:
            if migration.name in done:
                continue
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO imagine_migrations (name) VALUES (%s)", (migration.name,))


async def applied(conn: AsyncConnection) -> list[str]:
    """Names of the migrations recorded, in the order they are declared."""
    async with conn.cursor(row_factory=scalar_row) as cur:
        names = set(await (await cur.execute("SELECT name FROM imagine_migrations")).fetchall())
    return [m.name for m in MIGRATIONS if m.name in names]
