"""IMAGINE_MEMORY_MB through the real worker pipeline: jobs wait for memory instead of running,
none fails for it, and a job that could never fit is refused with nothing charged."""

from __future__ import annotations

from bot.catalog import load_catalog
from bot.memory_budget import MemoryBudget
from bot.providers.errors import user_message_for
from bot.service import ImagineService
from bot.types import Accepted, ImagineRequest, JobState, RefusalReason, Refused
from tests.support.pipeline import Pipeline

FOUR_K = load_catalog().models["pro"].memory_bytes["4K"]


async def test_with_room_for_one_4k_image_every_job_still_succeeds_one_at_a_time(sqlite_store, fake):
    fake.latency = 0.2  # so the other slots have leased their jobs while the first one's call runs
    memory = MemoryBudget(FOUR_K)
    async with Pipeline(sqlite_store, fake, concurrency=4, memory=memory) as p:
        accepted = [await p.imagine(f"koi {n}", size="4K") for n in range(4)]
        for a in accepted:
            await p.notifier.wait_final(a.job_id)
    jobs = [await sqlite_store.get_job(a.job_id) for a in accepted]
    assert [j.state for j in jobs] == [JobState.SUCCEEDED] * 4
    # Waiting for memory used no attempt, and never more than one image was in flight.
    assert [j.attempt for j in jobs] == [1] * 4
    assert memory.peak == FOUR_K and memory.in_use == 0
    assert len(fake.requests) == 4


async def test_a_job_that_can_never_fit_fails_clearly_without_a_call_or_a_charge(sqlite_store, fake):
    memory = MemoryBudget(FOUR_K - 1)
    async with Pipeline(sqlite_store, fake, memory=memory) as p:
        too_big = await p.imagine("a koi pond", size="4K")
        fits = await p.imagine("a koi pond", size="2K")
        await p.notifier.wait_final(too_big.job_id)
        await p.notifier.wait_final(fits.job_id)
    job = await sqlite_store.get_job(too_big.job_id)
    assert job.state is JobState.FAILED and job.error_class == "too_big_for_memory"
    assert "IMAGINE_MEMORY_MB" in job.error_detail
    assert "smaller size" in user_message_for(job.error_class)
    assert (await sqlite_store.get_job(fits.job_id)).state is JobState.SUCCEEDED
    assert [r.image_size for r in fake.requests] == ["2K"]
    # Held at submit, released in full: nothing charged.
    entries = [(r["entry"], r["cost_micros"]) for r in await sqlite_store.ledger() if r["job_id"] == job.id]
    assert [e for e, _ in entries] == ["reservation", "release"] and entries[0][1] == entries[1][1]


async def test_when_the_submitting_process_knows_the_limit_the_request_is_refused_at_once(sqlite_store):
    service = ImagineService(sqlite_store, load_catalog(), memory_limit=FOUR_K - 1)
    outcome = await service.submit(
        ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="a koi pond", size="4K")
    )
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.INVALID_REQUEST
    assert "image memory" in outcome.detail and "smaller size" in outcome.detail
    assert await sqlite_store.ledger() == []  # nothing held, no job
    fits = await service.submit(
        ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="a koi pond", size="2K")
    )
    assert isinstance(fits, Accepted)
