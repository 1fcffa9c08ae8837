from __future__ import annotations

import asyncio
import sqlite3

from bot.store.sqlite import SQLiteStore
from bot.store.sqlite_schema import migrations
from tests.conftest import new_job

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
