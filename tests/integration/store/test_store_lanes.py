"""The Store contract, continued: batches cut by bytes as well as count, and the lanes
(Flex, Priority, Batch) a worker leases, moves a job between, and cancels."""

from __future__ import annotations

from dataclasses import replace

from bot.money.admission import Charge
from bot.store.batch_sizing import inline_request_bytes
from bot.store.ports import final_delivery_key
from bot.types import CheckedImage, JobState, Lane, NewDelivery
from tests.support.jobs import new_job, spec
from tests.support.store_contract import ADMISSION, relaxed_job, team_budget


def blob(size: int, fill: bytes = b"\0") -> CheckedImage:
    """An input of `size` bytes: the store measures it, it never decodes it."""
    return CheckedImage(data=fill * size, mime="image/png", width=8, height=8, sha256=fill.hex() * 32)


async def test_a_batch_is_cut_by_bytes_as_well_as_count(store):
    per_job = inline_request_bytes(600_000, 1, "r0")
    ids = [
        (await store.submit(relaxed_job(f"r{i}"), [blob(600_000, bytes([i + 1]))], ADMISSION)).job_id for i in range(3)
    ]
    first = await store.open_batch(10, max_bytes=2 * per_job + 100)
    assert [j.id for j in first.jobs] == ids[:2]  # the third would pass the byte limit
    second = await store.open_batch(10, max_bytes=2 * per_job + 100)
    assert [j.id for j in second.jobs] == ids[2:]
    assert await store.open_batch(10) is None


async def test_the_image_an_edit_changes_counts_toward_its_batchs_bytes(store):
    # A finished image to edit: 900 kB, stored with the job that made it.
    made = await store.submit(new_job(prompt="a fox"), [])
    job = await store.lease("w", 60)
    image_id = await store.complete(
        job.id,
        "w",
        job.attempt,
        blob(900_000, b"\1"),
        {},
        NewDelivery(final_delivery_key(job.id), "result", {}),
        Charge(1, None, "succeeded"),
    )
    small = (await store.submit(relaxed_job("small"), [], ADMISSION)).job_id
    edit = replace(relaxed_job("make it blue"), spec=spec("make it blue", lane=Lane.BATCH, parent_image_id=image_id))
    edit_id = (await store.submit(edit, [], ADMISSION)).job_id
    assert made.job_id != edit_id
    limit = inline_request_bytes(0, 0, "small") + inline_request_bytes(800_000, 1, "make it blue")
    assert [j.id for j in (await store.open_batch(10, max_bytes=limit)).jobs] == [small]
    # Too big for the limit even alone: it goes in a batch of its own, never with others.
    assert [j.id for j in (await store.open_batch(10, max_bytes=limit)).jobs] == [edit_id]


async def test_split_batch_moves_jobs_into_a_new_batch_being_created(store, clock):
    ids = [(await store.submit(relaxed_job(f"r{i}"), [], ADMISSION)).job_id for i in range(3)]
    batch = await store.open_batch(10)
    await store.batch_sending(batch.id, ids)
    half = await store.split_batch(batch.id, ids[1:])
    assert half.id != batch.id and half.state == "creating" and half.model_id == batch.model_id
    assert [j.id for j in half.jobs] == ids[1:] and half.job_ids == ()
    for job_id in ids[1:]:
        job = await store.get_job(job_id)
        assert (job.state, job.worker_id, job.attempt) == (JobState.RUNNING, half.worker_id, 1)
    assert (await store.get_job(ids[0])).worker_id == batch.worker_id
    # Each is sent and recorded on its own; recovery sees both if their sender dies.
    await store.batch_sending(batch.id, ids[:1])
    await store.batch_sending(half.id, ids[1:])
    clock.advance(1000)
    due = {b.id: [j.id for j in b.jobs] for b in await store.due_batches(60, 900)}
    assert due == {batch.id: ids[:1], half.id: ids[1:]}


def lane_job(prompt: str, lane: Lane):
    return replace(new_job(prompt=prompt), spec=spec(prompt, lane=lane))


async def test_workers_lease_flex_and_priority_jobs_priority_first_and_never_batch_ones(store):
    batch = await store.submit(relaxed_job("batch"), [], ADMISSION)
    standard = await store.submit(lane_job("standard", Lane.STANDARD), [], ADMISSION)
    flex = await store.submit(lane_job("flex", Lane.FLEX), [], ADMISSION)
    priority = await store.submit(lane_job("priority", Lane.PRIORITY), [], ADMISSION)
    leased = [(await store.lease("w", 60)).id for _ in range(3)]
    assert leased == [priority.job_id, standard.job_id, flex.job_id]
    assert await store.lease("w", 60) is None
    assert (await store.get_job(batch.job_id)).state is JobState.QUEUED


async def test_a_worker_whose_flex_slots_are_full_is_given_no_flex_job(store):
    flex = await store.submit(lane_job("flex", Lane.FLEX), [], ADMISSION)
    standard = await store.submit(lane_job("standard", Lane.STANDARD), [], ADMISSION)
    assert (await store.lease("w", 60, flex=False)).id == standard.job_id
    assert await store.lease("w", 60, flex=False) is None
    assert (await store.lease("w", 60)).id == flex.job_id


async def test_relane_moves_a_held_job_to_another_lane_keeping_its_hold_and_telling_its_requester(store):
    await store.set_budget(team_budget(), "mod")
    submitted = await store.submit(lane_job("a fox", Lane.FLEX), [], ADMISSION)
    job = await store.lease("w1", 60)
    told = NewDelivery(f"job:{job.id}:relaned:1", "started", {"attempt": 1, "relaned": "batch"})
    # Only the lease holder, at its attempt, may move it.
    assert not await store.relane(job.id, "w2", job.attempt, Lane.BATCH, told)
    assert not await store.relane(job.id, "w1", job.attempt + 1, Lane.BATCH, told)
    assert (await store.get_job(job.id)).state is JobState.RUNNING
    assert await store.relane(job.id, "w1", job.attempt, Lane.BATCH, told)
    moved = await store.get_job(submitted.job_id)
    assert (moved.state, moved.spec.lane, moved.worker_id, moved.held_micros) == (
        JobState.QUEUED,
        Lane.BATCH,
        None,
        ADMISSION.estimate_micros,
    )
    assert moved.spec == replace(job.spec, lane=Lane.BATCH)  # the rest of the request is untouched
    [delivery] = [d for d in await store.claim_deliveries(["cli"], 50, 60) if d.key == told.key]
    assert (delivery.job_id, delivery.kind, delivery.payload) == (job.id, "started", told.payload)
    assert [r["entry"] for r in await store.ledger() if r["job_id"] == job.id] == ["reservation"]
    # Now the Batch lane's: the workers pass it by, a batch takes it.
    assert await store.lease("w1", 60) is None
    assert [j.id for j in (await store.open_batch(10)).jobs] == [job.id]
    # A second relane by the same lease (a retried write after success) changes nothing.
    assert not await store.relane(job.id, "w1", job.attempt, Lane.BATCH, told)


async def test_cancel_relaxed_also_ends_queued_flex_and_priority_jobs(store):
    flex = await store.submit(lane_job("flex", Lane.FLEX), [], ADMISSION)
    priority = await store.submit(lane_job("priority", Lane.PRIORITY), [], ADMISSION)
    standard = await store.submit(lane_job("standard", Lane.STANDARD), [], ADMISSION)
    assert sorted(await store.cancel_relaxed("gone")) == sorted([flex.job_id, priority.job_id])
    assert (await store.get_job(standard.job_id)).state is JobState.QUEUED
