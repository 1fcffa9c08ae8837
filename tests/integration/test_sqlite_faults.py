"""A SQLite file that is read-only, locked past the busy timeout, or on a full disk is
refused cleanly with the real connector: a read-only file or directory is a configuration
error (StoreMisconfigured, exit 4), a lock or a full disk is "try later" (StoreUnavailable,
exit 5), and so is a file made read-only while the bot runs; requests get the "database
unavailable" refusal, /healthz says 503, and what was admitted before the fault is neither lost
nor charged twice once it clears."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.catalog import load_catalog
from bot.http import health_route
from bot.service import STORE_DOWN, ImagineService
from bot.store.ports import StoreMisconfigured, StoreUnavailable
from bot.store.sqlite import SQLiteStore
from bot.types import Accepted, ImagineRequest, JobState, RefusalReason, Refused
from tests.support.pipeline import Pipeline
from tests.support.sqlite_faults import fill, made, read_only, small_disk, write_locked


def request(prompt: str = "a koi pond") -> ImagineRequest:
    return ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt=prompt)


async def refused_at_open(path: Path) -> StoreUnavailable:
    """What opening a store on `path` raises (it must raise)."""
    store = SQLiteStore(str(path), busy_timeout=0.2)
    with pytest.raises(StoreUnavailable) as refused:
        await store.open()
    await store.close()
    return refused.value


async def test_a_read_only_database_file_is_a_configuration_error_naming_the_file(tmp_path):
    db = tmp_path / "ro.db"
    await made(db)
    with read_only(db):
        refused = await refused_at_open(db)
    assert isinstance(refused, StoreMisconfigured)
    assert str(db) in str(refused) and "read-only" in str(refused)


async def test_a_database_in_a_read_only_directory_is_a_configuration_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        refused = await refused_at_open(folder / "new.db")
    assert isinstance(refused, StoreMisconfigured) and str(folder / "new.db") in str(refused)


async def test_a_database_in_a_directory_that_does_not_exist_is_a_configuration_error(tmp_path):
    refused = await refused_at_open(tmp_path / "nowhere" / "x.db")
    assert isinstance(refused, StoreMisconfigured) and "nowhere" in str(refused)


async def test_a_locked_database_at_start_up_is_transient_not_configuration(tmp_path):
    db = tmp_path / "locked.db"
    await made(db)
    with write_locked(db):
        refused = await refused_at_open(db)
    assert not isinstance(refused, StoreMisconfigured) and "locked" in str(refused)


async def health(store: SQLiteStore) -> tuple[int, dict]:
    app = web.Application()
    app.add_routes([health_route(store, workers=1)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            return resp.status, await resp.json()
    finally:
        await runner.cleanup()


async def serving_with_a_job(path: Path) -> tuple[SQLiteStore, ImagineService, Accepted]:
    """A store on `path` (a short busy timeout), its service, and a job admitted before a fault."""
    store = SQLiteStore(str(path), busy_timeout=0.2)
    await store.open()
    service = ImagineService(store, load_catalog())
    before = await service.submit(request("before"))
    assert isinstance(before, Accepted)
    return store, service, before


async def test_while_locked_requests_are_refused_health_is_503_and_after_it_all_works(tmp_path):
    db = tmp_path / "w.db"
    store, service, before = await serving_with_a_job(db)
    try:
        with write_locked(db):
            assert await service.submit(request("during")) == Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)
            status, body = await health(store)
            assert (status, body["store"]) == (503, False)
        assert (await health(store))[0] == 200
        after = await service.submit(request("after"))
        assert isinstance(after, Accepted)
        # The job admitted before the lock is still there, held once; the refused one left nothing.
        assert await store.counts_by_state() == {"queued": 2}
        reservations = [r for r in await store.ledger() if r["entry"] == "reservation"]
        assert sorted(r["job_id"] for r in reservations) == sorted([before.job_id, after.job_id])
    finally:
        await store.close()


async def test_health_says_503_while_locked_without_waiting_out_the_busy_timeout(tmp_path):
    db = tmp_path / "w.db"
    store = SQLiteStore(str(db))  # the default busy timeout, 30 s: a probe must not wait it out
    await store.open()
    try:
        with write_locked(db):
            status, _ = await asyncio.wait_for(health(store), timeout=10)
        assert status == 503
        assert (await health(store))[0] == 200
    finally:
        await store.close()


@pytest.mark.parametrize(
    "fault",
    [
        sqlite3.OperationalError("database or disk is full"),
        OSError(errno.ENOSPC, "No space left on device"),
        sqlite3.OperationalError("attempt to write a readonly database"),
        sqlite3.OperationalError("disk I/O error"),
        OSError(errno.EROFS, "Read-only file system"),
    ],
    ids=["sqlite-full", "enospc", "sqlite-readonly", "sqlite-ioerr", "erofs"],
)
async def test_a_full_disk_refuses_requests_reports_503_and_loses_nothing(tmp_path, monkeypatch, fault):
    store, service, _ = await serving_with_a_job(tmp_path / "full.db")
    connector = store._sqlite
    real = connector._step

    def full(op, conn, write):
        if write:
            raise fault
        return real(op, conn, write)

    try:
        monkeypatch.setattr(connector, "_step", full)
        assert await service.submit(request("during")) == Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)
        assert (await health(store))[0] == 503
        monkeypatch.setattr(connector, "_step", real)
        assert (await health(store))[0] == 200
        assert await store.counts_by_state() == {"queued": 1}
        assert isinstance(await service.submit(request("after")), Accepted)
    finally:
        await store.close()


@pytest.mark.parametrize("made_read_only", ["file", "directory", "file and its WAL"])
async def test_a_database_made_read_only_while_running_refuses_writes_reports_503_and_recovers(
    tmp_path, made_read_only
):
    # As a non-root bot sees a chmod 0444 after start-up, or an immutable file: SQLite writes on
    # through its open handles into the WAL (a read-only file alone, or its directory) or fails
    # with "disk I/O error" (the WAL too). Either way the store is down until it is writable.
    db = tmp_path / "live.db"
    store, service, before = await serving_with_a_job(db)
    targets = {"file": [db], "directory": [tmp_path], "file and its WAL": [db, Path(f"{db}-wal")]}[made_read_only]
    try:
        with contextlib.ExitStack() as faults:
            for target in targets:
                faults.enter_context(read_only(target))
            assert await service.submit(request("during")) == Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)
            assert await service.submit(request("during again")) == Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)
            status, body = await health(store)
            assert (status, body["store"]) == (503, False)
            # Nothing admitted, nothing held: reads still answer.
            assert await store.counts_by_state() == {"queued": 1}
            assert [r["job_id"] for r in await store.ledger() if r["entry"] == "reservation"] == [before.job_id]
        assert (await health(store))[0] == 200
        after = await service.submit(request("after"))
        assert isinstance(after, Accepted)
        assert await store.counts_by_state() == {"queued": 2}
    finally:
        await store.close()
    # Nothing was lost: a fresh open (as a restart) finds both jobs.
    reopened = SQLiteStore(str(db))
    await reopened.open()
    try:
        assert await reopened.counts_by_state() == {"queued": 2}
    finally:
        await reopened.close()


async def test_a_job_whose_outcome_meets_a_lock_is_saved_once_charged_once_and_posted_once(tmp_path, fake):
    # The call is paid for when another process takes the write lock: saving the outcome is
    # refused past the busy timeout, then done once the lock is gone, with no second call.
    db = tmp_path / "w.db"
    store = SQLiteStore(str(db), busy_timeout=0.2)
    await store.open()
    real_complete, refusals = store.complete, []

    async def complete_under_a_lock(*args, **kwargs):
        if not refusals:
            with write_locked(db):
                try:
                    return await real_complete(*args, **kwargs)
                except StoreUnavailable as exc:
                    refusals.append(exc)
                    raise
        return await real_complete(*args, **kwargs)

    store.complete = complete_under_a_lock  # type: ignore[method-assign]
    try:
        async with Pipeline(store, fake) as p:
            accepted = await p.imagine()
            await p.notifier.wait_final(accepted.job_id)
        job = await store.get_job(accepted.job_id)
        assert refusals and "locked" in str(refusals[0])
        assert job.state is JobState.SUCCEEDED and job.attempt == 1 and len(fake.requests) == 1
        # Held once, settled once (the hold released once): never a second charge.
        assert [r["entry"] for r in await store.ledger()] == ["reservation", "settlement", "release"]
        assert p.notifier.kinds(accepted.job_id).count("result") == 1
    finally:
        await store.close()


async def test_a_really_full_disk_refuses_requests_and_loses_nothing(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        store = SQLiteStore(str(disk / "full.db"), busy_timeout=0.2)
        await store.open()
        service = ImagineService(store, load_catalog())
        try:
            before = await service.submit(request("before"))
            assert isinstance(before, Accepted)
            filler = fill(disk)
            refused = [await service.submit(request(f"during {i}")) for i in range(20)]
            assert Refused(RefusalReason.UNAVAILABLE, STORE_DOWN) in refused
            assert (await health(store))[0] == 503
            filler.unlink()
            assert (await health(store))[0] == 200
            assert isinstance(await service.submit(request("after")), Accepted)
            admitted = 2 + sum(isinstance(outcome, Accepted) for outcome in refused)
            assert await store.counts_by_state() == {"queued": admitted}
        finally:
            await store.close()
