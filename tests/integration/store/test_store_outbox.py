"""The Store contract's outbox: one delivery per outcome, leased while claimed, retried, and
given up for good."""

from __future__ import annotations

from bot.store.ports import final_delivery_key
from bot.types import NewDelivery
from tests.support.images import png_bytes
from tests.support.jobs import new_job
from tests.support.store_contract import CHARGE, output_image


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


async def test_a_delivery_given_up_is_never_claimed_again(store, clock):
    await store.submit(new_job(), [])
    await store.lease("w", 60)
    [started] = await store.claim_deliveries(["cli"], 10, 30)
    await store.retry_delivery(started.id, "403 Missing Access", clock.now, max_attempts=0)
    clock.advance(3600)
    assert await store.claim_deliveries(["cli"], 10, 30) == []
