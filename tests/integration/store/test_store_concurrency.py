"""The Store contract under concurrency: workers sharing one loop, threads or processes never
lease the same job twice."""

from __future__ import annotations

import asyncio
import threading

from tests.support.jobs import new_job


async def test_eight_concurrent_workers_never_lease_a_job_twice(store_factory):
    setup = await store_factory()
    total = 240
    for i in range(total):
        await setup.submit(new_job(f"T{i % 7}", prompt=str(i)), [])
    stores = [await store_factory() for _ in range(8)]

    async def drain(n: int, s) -> list[int]:
        got = []
        while (job := await s.lease(f"w{n}", 60)) is not None:
            got.append(job.id)
            await asyncio.sleep(0)
        return got

    results = await asyncio.gather(*(drain(n, s) for n, s in enumerate(stores)))
    leased = [job_id for r in results for job_id in r]
    assert len(leased) == len(set(leased)) == total
    assert sum(1 for r in results if r) > 1  # the work really was shared


def test_workers_in_separate_threads_and_processes_never_share_a_job(tmp_path):
    import multiprocessing

    db = str(tmp_path / "shared.db")
    total = 300
    asyncio.run(_fill(db, total))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        async_results = [pool.apply_async(_drain_in_process, (db, f"p{n}")) for n in range(3)]
        thread_results: list[list[int]] = []
        threads = [
            threading.Thread(target=lambda n=n: thread_results.append(asyncio.run(_drain(db, f"t{n}"))))
            for n in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        process_results = [r.get(timeout=120) for r in async_results]
    leased = [i for r in thread_results + process_results for i in r]
    assert len(leased) == len(set(leased)) == total


async def _fill(db: str, total: int) -> None:
    from bot.store.sqlite import SQLiteStore

    store = SQLiteStore(db)
    await store.open()
    for i in range(total):
        await store.submit(new_job(f"T{i % 5}", prompt=str(i)), [])
    await store.close()


async def _drain(db: str, worker: str) -> list[int]:
    from bot.store.sqlite import SQLiteStore

    store = SQLiteStore(db)
    await store.open()
    got = []
    while (job := await store.lease(worker, 60)) is not None:
        got.append(job.id)
    await store.close()
    return got


def _drain_in_process(db: str, worker: str) -> list[int]:
    return asyncio.run(_drain(db, worker))
