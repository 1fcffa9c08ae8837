"""The Store contract for announced jobs: none starts before its status message is attached, and
one never attached in time is cancelled with its hold released."""

from __future__ import annotations

import asyncio

import pytest

from bot.store.ports import ANNOUNCE_WINDOW
from bot.types import JobState
from tests.support.jobs import new_job
from tests.support.store_contract import ADMISSION, announced, relaxed_job, team_budget


async def test_an_announced_job_waits_for_its_status_message(store, clock):
    job = new_job()
    announced = type(job)(**{**job.__dict__, "announced": True})
    submitted = await store.submit(announced, [])
    assert await store.lease("w", 60) is None  # the adapter has not posted its status yet
    await store.attach_delivery(submitted.job_id, {"status": "123"})
    leased = await store.lease("w", 60)
    assert leased.id == submitted.job_id and leased.delivery == {"status": "123"}


async def test_an_announced_job_never_attached_is_cancelled_released_and_never_started(store, clock):
    await store.set_budget(team_budget(), "mod")
    submitted = await store.submit(announced(new_job()), [], ADMISSION)
    clock.advance(ANNOUNCE_WINDOW - 1)
    assert await store.lease("w", 60) is None
    clock.advance(2)  # its adapter never posted the status (or died first)
    assert await store.lease("w", 60) is None
    job = await store.get_job(submitted.job_id)
    assert (job.state, job.error_class, job.held_micros, job.attempt) == (JobState.CANCELLED, "not_announced", 0, 0)
    # The user was told nothing was charged: the ledger agrees, and no message follows.
    assert [(r["entry"], r["cost_micros"]) for r in await store.ledger()] == [
        ("reservation", ADMISSION.estimate_micros),
        ("release", ADMISSION.estimate_micros),
    ]
    assert await store.claim_deliveries(["cli"], 10, 60) == []
    # Too late: it stays cancelled, and the adapter is told so (to show it as not started).
    assert await store.attach_delivery(submitted.job_id, {"status": "late"}) is False
    assert await store.lease("w", 60) is None
    assert (await store.get_job(submitted.job_id)).state is JobState.CANCELLED


async def test_an_announced_job_attached_in_time_runs_even_after_the_window(store, clock):
    submitted = await store.submit(announced(new_job()), [])
    assert await store.cancel(submitted.job_id) is True  # a failed status post can still cancel it
    second = await store.submit(announced(new_job(prompt="b")), [])
    assert await store.attach_delivery(second.job_id, {"status": "1"}) is True
    clock.advance(ANNOUNCE_WINDOW + 1)
    assert (await store.lease("w", 60)).id == second.job_id


async def test_a_relaxed_announced_job_is_batched_only_once_attached(store, clock):
    waiting = await store.submit(announced(relaxed_job("never told")), [], ADMISSION)
    told = await store.submit(announced(relaxed_job("told")), [], ADMISSION)
    assert await store.open_batch(10) is None
    await store.attach_delivery(told.job_id, {"status": "1"})
    batch = await store.open_batch(10)
    assert [j.id for j in batch.jobs] == [told.job_id]
    clock.advance(ANNOUNCE_WINDOW + 1)
    assert await store.open_batch(10) is None
    job = await store.get_job(waiting.job_id)
    assert (job.state, job.error_class, job.held_micros) == (JobState.CANCELLED, "not_announced", 0)


async def test_attaching_at_the_deadline_races_cancelling_cleanly(store_factory, clock):
    """Adapters attaching while workers cancel the overdue: each job ends one way,
    started only if attached, or cancelled with its hold released, never both."""
    stores = [await store_factory() for _ in range(4)]
    await stores[0].set_budget(team_budget(), "mod")
    ids = []
    for i in range(40):  # one deadline a second, half of them past once the clock moves on
        ids.append((await stores[0].submit(announced(new_job(prompt=str(i))), [], ADMISSION)).job_id)
        clock.advance(1)
    clock.advance(ANNOUNCE_WINDOW - 20)
    overdue = set(ids[:21])
    told = [job_id for n, job_id in enumerate(ids) if n % 4 != 3]  # every fourth adapter died

    async def attach(store, job_ids):
        for job_id in job_ids:
            await store.attach_delivery(job_id, {"status": str(job_id)})
            await asyncio.sleep(0)

    async def work(store, attaching):
        leased = []
        while True:
            done = attaching.done()  # read first: a last pass after the attaching ends
            if (job := await store.lease("w", 600)) is not None:
                leased.append(job)
            elif done:
                return leased
            await asyncio.sleep(0)

    attaching = asyncio.gather(attach(stores[0], told[::2]), attach(stores[1], told[1::2]))
    results = await asyncio.gather(work(stores[2], attaching), work(stores[3], attaching))
    leased = [job for r in results for job in r]
    assert len(leased) == len({job.id for job in leased})
    leased_ids = {job.id for job in leased}
    for job_id in ids:
        job = await stores[0].get_job(job_id)
        entries = [r["entry"] for r in await stores[0].ledger() if r["job_id"] == job_id]
        if job_id in leased_ids:
            assert job_id in told and job.delivery == {"status": str(job_id)}
            assert (job.state, entries, job.held_micros) == (
                JobState.RUNNING,
                ["reservation"],
                ADMISSION.estimate_micros,
            )
        elif job_id in overdue or job_id not in told:
            assert (job.state, job.error_class, entries) == (
                JobState.CANCELLED,
                "not_announced",
                ["reservation", "release"],
            ) or (job_id not in overdue and job.state is JobState.QUEUED)
        else:
            pytest.fail(f"job {job_id} was attached in time but never started")
    states = [(await stores[0].get_job(i)).state for i in ids]
    assert leased_ids and JobState.CANCELLED in states
