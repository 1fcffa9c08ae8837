from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path

from bot.money.admission import Charge
from bot.store.migrate import SQLITE as migrations
from bot.store.sqlite import SQLiteStore
from bot.types import JobState
from tests.support.clock import FakeClock
from tests.support.images import png_bytes
from tests.support.jobs import new_job, spec

ALL = [m.name for m in migrations._migrations]


async def test_new_database_gets_every_migration_in_order_and_wal(tmp_path):
    store = SQLiteStore(str(tmp_path / "new.db"))
    await store.open()
    assert await store.applied_migrations() == ALL
    await store.close()
    conn = sqlite3.connect(tmp_path / "new.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "images", "outbox", "_sqlite_migrations"} <= tables


async def test_existing_database_keeps_its_data_and_migrates_once(tmp_path):
    path = str(tmp_path / "old.db")
    store = SQLiteStore(path)
    await store.open()
    job_id = (await store.submit(new_job(), [])).job_id
    await store.close()
    again = SQLiteStore(path)
    await again.open()
    assert await again.applied_migrations() == ALL  # recorded once, not re-run
    assert (await again.get_job(job_id)).spec.prompt == "a koi pond"
    await again.close()


async def test_existing_file_from_before_migrations_is_brought_up_to_date(tmp_path):
    path = tmp_path / "legacy.db"
    sqlite3.connect(path).execute("CREATE TABLE notes (x TEXT)").connection.commit()
    store = SQLiteStore(str(path))
    await store.open()
    assert await store.applied_migrations() == ALL
    await store.close()


async def test_stores_opening_a_new_file_at_once_migrate_it_exactly_once(tmp_path):
    path = str(tmp_path / "race.db")
    stores = [SQLiteStore(path) for _ in range(6)]
    await asyncio.gather(*(s.open() for s in stores))
    assert await stores[0].applied_migrations() == ALL
    for s in stores:
        await s.close()


# Files as an earlier release (the one before the store was written once) left them, from
# that release's own migrations, frozen as SQL dumps: a migration file that differs from
# what was shipped fails here, which a file built by today's runner could never show.
RELEASED = Path(__file__).parent / "data"


def legacy_database(path: str, before: str = "0009") -> sqlite3.Connection:
    """A file as a released version left it, migrated up to (not including) `before`."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript((RELEASED / f"sqlite_before_{before}.sql").read_text())
    return conn


def test_the_released_files_stop_where_they_say():
    for before, last in (("0009", "0008_rate_slots"), ("0012", "0011_image_blobs")):
        conn = legacy_database(":memory:", before)
        recorded = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
        assert recorded == ALL[: ALL.index(last) + 1]


def insert_legacy_job(conn: sqlite3.Connection, *, created: float, available: float, prompt: str) -> int:
    request = json.dumps(spec(prompt).to_json())
    return conn.execute(
        """INSERT INTO jobs (team, channel, user, platform, kind, request, delivery, state, round, max_attempts,
               available_at, created_at, updated_at) VALUES ('T1', 'C1', 'U1', 'cli', 'imagine', ?, '{}',
               'queued', 0, 3, ?, ?, ?)""",
        (request, available, created, created),
    ).lastrowid


async def test_old_images_move_to_one_copy_of_their_bytes(tmp_path):
    path = str(tmp_path / "images.db")
    conn = legacy_database(path)
    job_id = insert_legacy_job(conn, created=1.0, available=1.0, prompt="a")
    same, other = png_bytes(8, 8, "blue"), png_bytes(8, 8, "green")
    ids = [
        conn.execute(
            """INSERT INTO images (job_id, role, mime, width, height, size_bytes, sha256, data, created_at)
           VALUES (?, 'input', 'image/png', 8, 8, ?, ?, ?, 1.0)""",
            (job_id, len(data), digest, data),
        ).lastrowid
        for data, digest in (
            (same, hashlib.sha256(same).hexdigest()),
            (same, hashlib.sha256(same).hexdigest()),
            (other, "0" * 64),
        )
    ]  # a digest an old caller got wrong
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    assert [(await store.get_image(i)).data for i in ids] == [same, same, other]
    assert [i.sha256 for i in await store.job_inputs(job_id)] == [
        hashlib.sha256(same).hexdigest(),
        hashlib.sha256(same).hexdigest(),
        hashlib.sha256(other).hexdigest(),
    ]
    await store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT COUNT(*), SUM(length(data)) FROM blobs").fetchone() == (2, len(same) + len(other))
        assert "data" not in {r[1] for r in raw.execute("PRAGMA table_info(images)")}


async def test_old_announced_jobs_never_attached_are_cancelled_after_the_migration(tmp_path):
    path = str(tmp_path / "announced.db")
    conn = legacy_database(path)
    now = 1_800_000_000.0
    # The last release put off an announced job by 120 s, and attach_delivery brought it forward.
    never = insert_legacy_job(conn, created=now - 10, available=now - 10 + 120, prompt="never attached")
    attached = insert_legacy_job(conn, created=now - 10, available=now - 5, prompt="attached")
    conn.close()
    clock = FakeClock(now)
    store = SQLiteStore(path, clock=clock)
    await store.open()
    assert (await store.lease("w", 600)).id == attached
    clock.advance(111)
    assert await store.lease("w", 60) is None
    assert ((await store.get_job(never)).state, (await store.get_job(never)).error_class) == (
        JobState.CANCELLED,
        "not_announced",
    )
    await store.close()


async def test_the_ledger_keeps_its_rows_and_its_once_per_call_key_when_it_learns_of_hedges(tmp_path):
    path = str(tmp_path / "ledger.db")
    conn = legacy_database(path, "0012")
    job_id = insert_legacy_job(conn, created=1.0, available=1.0, prompt="a")
    conn.execute(
        """INSERT INTO ledger (job_id, entry, attempt, team, channel, user, model, size, lane,
                        cost_micros, status, price_version, created_at)
                    VALUES (?, 'settlement', 1, 'T1', 'C1', 'U1', 'pro', '1K', 'standard', 134000, 'succeeded',
                        'p1', 1.0)""",
        (job_id,),
    )
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    [row] = await store.ledger()
    assert (row["job_id"], row["cost_micros"], row["hedge"]) == (job_id, 134000, 0)
    charge = Charge(67000, None, "succeeded")
    await store.settle_hedge(job_id, 1, charge)
    await store.settle_hedge(job_id, 1, charge)
    assert [(r["attempt"], r["hedge"], r["cost_micros"]) for r in await store.ledger()] == [
        (1, 0, 134000),
        (1, 1, 67000),
    ]
    await store.close()
    with sqlite3.connect(path) as raw:
        indexes = {r[1] for r in raw.execute("PRAGMA index_list(ledger)")}
        assert {"ledger_team_spend", "ledger_team_id", "ledger_channel", "ledger_user"} <= indexes


async def test_images_stored_before_deletion_existed_keep_their_bytes_and_can_be_deleted(tmp_path):
    path = str(tmp_path / "deletion.db")
    conn = legacy_database(path, "0012")  # images in blobs already, sha256 NOT NULL
    job_id = insert_legacy_job(conn, created=1.0, available=1.0, prompt="an old fox")
    conn.execute("UPDATE jobs SET state = 'succeeded', finished_at = 2.0 WHERE id = ?", (job_id,))
    data = png_bytes(8, 8, "orange")
    digest = hashlib.sha256(data).hexdigest()
    conn.execute("INSERT INTO blobs (sha256, data) VALUES (?, ?)", (digest, data))
    image_id = conn.execute(
        """INSERT INTO images (job_id, role, mime, width, height, size_bytes, sha256, created_at)
           VALUES (?, 'output', 'image/png', 8, 8, ?, ?, 2.0)""",
        (job_id, len(data), digest),
    ).lastrowid
    conn.execute("UPDATE jobs SET result_image_id = ? WHERE id = ?", (image_id, job_id))
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    assert (await store.get_image(image_id)).data == data
    [listed] = await store.gallery_images("T1", 24, 0)
    assert (listed.id, listed.prompt, listed.deleted) == (image_id, "an old fox", False)
    assert (await store.delete_image("T1", image_id)).blob_deleted
    await store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT COUNT(*) FROM blobs").fetchone() == (0,)
        columns = {r[1]: r for r in raw.execute("PRAGMA table_info(images)")}
        assert columns["sha256"][3] == 0 and "deleted_at" in columns  # nullable now: a tombstone has none
