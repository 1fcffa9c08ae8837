"""The Store contract: leasing, expiry, dead letters, fairness, outbox."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import pytest

from bot.money.admission import Admission, Charge
from bot.money.budgets import Budget, Period, Scope
from bot.money.quotas import QuotaLimits
from bot.store.ports import ANNOUNCE_WINDOW, final_delivery_key
from bot.types import CheckedImage, JobState, Lane, NewDelivery
from tests.support.images import png_bytes
from tests.support.jobs import new_job, spec

CHARGE = Charge(cost_micros=134_000, usage=None, status="succeeded")
ADMISSION = Admission(67_800, "test-prices", QuotaLimits(None, None, None))


def team_budget() -> Budget:
    return Budget(team="T1", scope=Scope.TEAM, scope_id="", limit_micros=10_000_000, period=Period.MONTH)


def relaxed_job(prompt: str):
    return replace(new_job(prompt=prompt), spec=spec(prompt, lane=Lane.BATCH))


def output_image() -> CheckedImage:
    data = png_bytes()
    return CheckedImage(data=data, mime="image/png", width=8, height=8, sha256="0" * 64)


async def fail(store, job, *, retryable=True, error="quota", retry_at=None, final=JobState.FAILED):
    return await store.fail(
        job.id,
        job.worker_id,
        job.attempt,
        error_class=error,
        detail=f"{error} detail",
        retryable=retryable,
        final_state=final,
        retry_at=retry_at,
        delivery=NewDelivery(final_delivery_key(job.id), "failure", {"error_class": error}),
    )


async def test_submit_then_lease_returns_the_job_running_with_attempt_one(store):
    submitted = await store.submit(new_job(prompt="a fox"), [])
    assert submitted.position == 1 and not submitted.duplicate
    job = await store.lease("w1", 60)
    assert job.id == submitted.job_id
    assert job.state is JobState.RUNNING and job.attempt == 1 and job.worker_id == "w1"
    assert job.spec.prompt == "a fox"
    assert await store.lease("w2", 60) is None
    assert await store.position(job.id) is None  # no longer queued


async def test_idempotency_key_never_creates_a_second_job(store):
    first = await store.submit(new_job(key="slack:Ev123"), [])
    again = await store.submit(new_job(key="slack:Ev123"), [])
    assert again.duplicate and again.job_id == first.job_id
    assert (await store.counts_by_state()) == {"queued": 1}


async def test_expired_lease_returns_the_job_and_the_old_worker_cannot_finish_it(store, clock):
    await store.submit(new_job(), [])
    first = await store.lease("w1", 30)
    clock.advance(31)
    second = await store.lease("w2", 30)
    assert second.id == first.id and second.attempt == 2 and second.worker_id == "w2"
    # The first worker wakes up late: nothing it writes may land.
    assert (
        await store.complete(
            first.id,
            "w1",
            first.attempt,
            output_image(),
            {},
            NewDelivery(final_delivery_key(first.id), "result", {}),
            CHARGE,
        )
        is None
    )
    assert not await store.extend_lease(first.id, "w1", first.attempt, 30)
    assert (
        await store.complete(
            second.id,
            "w2",
            second.attempt,
            output_image(),
            {"cost_usd": "0.1"},
            NewDelivery(final_delivery_key(second.id), "result", {}),
            CHARGE,
        )
        is not None
    )
    assert (await store.get_job(first.id)).state is JobState.SUCCEEDED


async def test_heartbeat_keeps_the_lease(store, clock):
    await store.submit(new_job(), [])
    job = await store.lease("w1", 30)
    for _ in range(5):
        clock.advance(20)
        assert await store.extend_lease(job.id, "w1", job.attempt, 30)
    assert await store.lease("w2", 30) is None


async def test_retryable_failures_requeue_with_backoff_then_dead_letter(store, clock):
    submitted = await store.submit(new_job(max_attempts=3), [])
    for attempt in (1, 2):
        job = await store.lease("w", 60)
        assert job.attempt == attempt
        state = await fail(store, job, retry_at=clock.now + 10)
        assert state is JobState.QUEUED
        assert await store.lease("w", 60) is None  # not before retry_at
        clock.advance(10)
    job = await store.lease("w", 60)
    assert await fail(store, job, error="overloaded") is JobState.DEAD
    dead = await store.get_job(submitted.job_id)
    assert dead.state is JobState.DEAD and dead.error_class == "overloaded" and dead.attempt == 3
    assert await store.lease("w", 60) is None


async def test_non_retryable_failure_ends_at_once(store):
    await store.submit(new_job(), [])
    job = await store.lease("w", 60)
    assert await fail(store, job, retryable=False, error="blocked", final=JobState.BLOCKED) is JobState.BLOCKED
    assert (await store.get_job(job.id)).state is JobState.BLOCKED


async def test_a_job_that_keeps_killing_its_worker_is_dead_lettered_and_announced(store, clock):
    submitted = await store.submit(new_job(max_attempts=2), [])
    for _ in range(2):
        assert (await store.lease("w", 30)) is not None
        clock.advance(31)
    assert await store.lease("w", 30) is None
    job = await store.get_job(submitted.job_id)
    assert job.state is JobState.DEAD and job.error_class == "lease_expired"
    finals = [d for d in await store.claim_deliveries(["cli"], 50, 60) if d.kind == "failure"]
    assert [d.payload["state"] for d in finals] == ["dead"]


async def test_fair_order_is_round_robin_across_teams_and_fifo_within(store):
    a = [(await store.submit(new_job("A", prompt=f"a{i}"), [])).job_id for i in range(100)]
    b = (await store.submit(new_job("B", prompt="b0"), [])).job_id
    assert await store.position(b) == 2  # behind A's first, not behind all 100
    order = [(await store.lease("w", 60)).id for _ in range(4)]
    assert order == [a[0], b, a[1], a[2]]


async def test_interleaving_of_teams_submitting_in_bursts(store):
    ids = {}
    for team in ("A", "B", "C"):
        for i in range(3):
            ids[(await store.submit(new_job(team, prompt=f"{team}{i}"), [])).job_id] = f"{team}{i}"
    leased = [ids[(await store.lease("w", 60)).id] for _ in range(9)]
    assert leased == ["A0", "B0", "C0", "A1", "B1", "C1", "A2", "B2", "C2"]


async def test_a_team_arriving_late_waits_at_most_one_round(store):
    for i in range(10):
        await store.submit(new_job("A", prompt=f"a{i}"), [])
    for _ in range(5):
        await store.lease("w", 60)
    late = (await store.submit(new_job("B"), [])).job_id
    # A's remaining five are each one round apart; B slots in at the current round.
    assert await store.position(late) == 1
    assert (await store.lease("w", 60)).id == late


async def test_positions_count_only_jobs_ahead(store):
    ids = [(await store.submit(new_job("A", prompt=str(i)), [])).job_id for i in range(5)]
    assert [await store.position(i) for i in ids] == [1, 2, 3, 4, 5]
    assert await store.cancel(ids[1])
    assert not await store.cancel(ids[1])
    assert [await store.position(i) for i in ids] == [1, None, 2, 3, 4]


async def test_completion_stores_image_and_one_delivery_even_if_finished_twice(store):
    await store.submit(new_job(), [])
    job = await store.lease("w", 60)
    delivery = NewDelivery(final_delivery_key(job.id), "result", {"cost_usd": "0.134"})
    image_id = await store.complete(job.id, "w", job.attempt, output_image(), {"cost_usd": "0.134"}, delivery, CHARGE)
    assert await store.complete(job.id, "w", job.attempt, output_image(), {}, delivery, CHARGE) is None
    image = await store.get_image(image_id)
    assert image.role == "output" and image.data == png_bytes() and image.job_id == job.id
    claimed = await store.claim_deliveries(["cli"], 50, 60)
    assert [d.kind for d in claimed] == ["started", "result"]
    assert claimed[1].payload == {"cost_usd": "0.134", "image_id": image_id}
    # Claimed rows are leased: a second dispatcher does not get them meanwhile.
    assert await store.claim_deliveries(["cli"], 50, 60) == []
    assert await store.claim_deliveries(["slack"], 50, 60) == []


async def test_unacknowledged_delivery_comes_back_and_gives_up_after_max_attempts(store, clock):
    await store.submit(new_job(), [])
    job = await store.lease("w", 60)
    started = (await store.claim_deliveries(["cli"], 1, 30))[0]
    clock.advance(31)  # the dispatcher died mid-send
    again = await store.claim_deliveries(["cli"], 1, 30)
    assert [d.id for d in again] == [started.id] and again[0].attempts == 2
    await store.retry_delivery(started.id, "boom", clock.now, max_attempts=2)
    clock.advance(1)
    assert await store.claim_deliveries(["cli"], 1, 30) == []
    await store.mark_delivered(started.id)
    assert job is not None


async def test_input_images_are_kept_with_the_job(store):
    data = png_bytes(4, 6)
    image = CheckedImage(data=data, mime="image/png", width=4, height=6, sha256="ab" * 32)
    submitted = await store.submit(new_job(), [image])
    [stored] = await store.job_inputs(submitted.job_id)
    assert (stored.data, stored.width, stored.height, stored.role) == (data, 4, 6, "input")


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


async def test_a_delivery_given_up_is_never_claimed_again(store, clock):
    await store.submit(new_job(), [])
    await store.lease("w", 60)
    [started] = await store.claim_deliveries(["cli"], 10, 30)
    await store.retry_delivery(started.id, "403 Missing Access", clock.now, max_attempts=0)
    clock.advance(3600)
    assert await store.claim_deliveries(["cli"], 10, 30) == []


async def test_an_announced_job_waits_for_its_status_message(store, clock):
    job = new_job()
    announced = type(job)(**{**job.__dict__, "announced": True})
    submitted = await store.submit(announced, [])
    assert await store.lease("w", 60) is None  # the adapter has not posted its status yet
    await store.attach_delivery(submitted.job_id, {"status": "123"})
    leased = await store.lease("w", 60)
    assert leased.id == submitted.job_id and leased.delivery == {"status": "123"}


def announced(job):
    return replace(job, announced=True)


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


async def test_cancel_relaxed_cancels_queued_relaxed_jobs_releases_and_tells_their_requesters(store):
    await store.set_budget(team_budget(), "mod")
    in_batch = await store.submit(relaxed_job("sent"), [], ADMISSION)
    assert [j.id for j in (await store.open_batch(10)).jobs] == [in_batch.job_id]
    queued = [(await store.submit(relaxed_job(f"r{i}"), [], ADMISSION)).job_id for i in range(2)]
    standard = await store.submit(new_job(prompt="interactive"), [], ADMISSION)
    assert sorted(await store.cancel_relaxed("The Batch lane is off on this bot.")) == queued
    for job_id in queued:
        job = await store.get_job(job_id)
        assert (job.state, job.error_class, job.held_micros) == (JobState.CANCELLED, "lane_unavailable", 0)
        assert [r["entry"] for r in await store.ledger() if r["job_id"] == job_id] == ["reservation", "release"]
    finals = [d for d in await store.claim_deliveries(["cli"], 50, 60) if d.kind == "failure"]
    assert sorted((d.key, d.job_id) for d in finals) == [(final_delivery_key(i), i) for i in queued]
    # Shaped like every failure delivery (see Notifier.deliver), with the reason to show.
    assert all(
        d.payload
        == {"state": "cancelled", "error_class": "lane_unavailable", "detail": "The Batch lane is off on this bot."}
        for d in finals
    )
    assert (await store.get_job(in_batch.job_id)).state is JobState.RUNNING  # its batch finishes it
    assert (await store.get_job(standard.job_id)).state is JobState.QUEUED
    assert await store.cancel_relaxed("again") == []


async def test_an_idempotency_key_with_a_window_is_free_again_after_it(store, clock):
    def press():
        return replace(new_job(key="slack:msg1:reroll:U1"), idempotency_window=10)

    first = await store.submit(press(), [])
    clock.advance(9)
    double = await store.submit(press(), [])
    assert double.duplicate and double.job_id == first.job_id
    clock.advance(2)
    later = await store.submit(press(), [])
    assert not later.duplicate and later.job_id != first.job_id
    assert (await store.get_job(first.job_id)).state is JobState.QUEUED  # the old job keeps its row
    assert (await store.counts_by_state()) == {"queued": 2}
    again = await store.submit(press(), [])
    assert again.duplicate and again.job_id == later.job_id


async def test_an_idempotency_key_without_a_window_is_taken_for_good(store, clock):
    first = await store.submit(new_job(key="slack:Ev1"), [])
    clock.advance(365 * 86400)
    again = await store.submit(new_job(key="slack:Ev1"), [])
    assert again.duplicate and again.job_id == first.job_id


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
