"""The Store contract's queue: leasing, lease expiry, retries and dead letters, fair order,
positions, idempotency keys, and cancelling the relaxed lanes' jobs."""

from __future__ import annotations

from dataclasses import replace

from bot.store.ports import final_delivery_key
from bot.types import CheckedImage, JobState, NewDelivery
from tests.support.images import png_bytes
from tests.support.jobs import new_job
from tests.support.store_contract import ADMISSION, CHARGE, output_image, relaxed_job, team_budget


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


async def test_leases_look_for_lapsed_leases_once_a_second_so_a_lapsed_job_waits_at_most_a_second_more(store, clock):
    await store.submit(new_job(), [])
    first = await store.lease("w1", 0.5)
    clock.advance(0.6)  # lapsed, but the last look was 0.6 s ago
    assert await store.lease("w2", 30) is None
    clock.advance(0.5)
    second = await store.lease("w2", 30)
    assert second.id == first.id and second.attempt == 2 and second.worker_id == "w2"


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


async def test_input_images_are_kept_with_the_job(store):
    data = png_bytes(4, 6)
    image = CheckedImage(data=data, mime="image/png", width=4, height=6, sha256="ab" * 32)
    submitted = await store.submit(new_job(), [image])
    [stored] = await store.job_inputs(submitted.job_id)
    assert (stored.data, stored.width, stored.height, stored.role) == (data, 4, 6, "input")


async def test_a_leased_job_says_whether_it_has_input_images_so_the_worker_reads_them_only_then(store):
    image = CheckedImage(data=png_bytes(4, 6), mime="image/png", width=4, height=6, sha256="ab" * 32)
    with_one = await store.submit(new_job("A", prompt="edit this"), [image])
    without = await store.submit(new_job("B", prompt="a fox"), [])
    leased = {job.id: job for job in await store.lease_many([("w1", True), ("w2", True)], 60)}
    assert leased[with_one.job_id].has_inputs
    assert not leased[without.job_id].has_inputs


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
