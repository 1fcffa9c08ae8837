"""The per-process memory budget (IMAGINE_MEMORY_MB): waits for room, first come first served,
refuses what can never fit, and gives bytes back however a job ends."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from bot.catalog import load_catalog
from bot.memory_budget import INPUT_COPIES, JobMemory, MemoryBudget, NeverFits
from bot.providers.errors import TooBigForMemory
from bot.types import InputImage, Job, JobState, Lane
from tests.support.jobs import spec
from tests.support.probe import eventually


async def hold(budget: MemoryBudget, nbytes: int, got: list, release: asyncio.Event) -> None:
    async with budget.reserve(nbytes):
        got.append(nbytes)
        await release.wait()


async def test_a_reservation_that_does_not_fit_waits_until_bytes_are_given_back():
    budget = MemoryBudget(100)
    got: list[int] = []
    first_done, second_done = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(hold(budget, 60, got, first_done))
    await eventually(lambda: got == [60])
    second = asyncio.create_task(hold(budget, 60, got, second_done))
    await eventually(lambda: budget.waiting == 1, what="the second reservation waiting")
    assert got == [60] and budget.in_use == 60
    first_done.set()
    await first
    await eventually(lambda: got == [60, 60], what="the second reservation granted")
    assert budget.in_use == 60 and budget.waits == 1 and budget.peak == 60
    second_done.set()
    await second
    assert budget.in_use == 0


async def test_waiters_are_served_in_arrival_order_so_a_big_job_is_not_starved():
    budget = MemoryBudget(100)
    got: list[int] = []
    release = {n: asyncio.Event() for n in (60, 70, 10)}
    holder = asyncio.create_task(hold(budget, 60, got, release[60]))
    await eventually(lambda: got == [60])
    big = asyncio.create_task(hold(budget, 70, got, release[70]))
    await eventually(lambda: budget.waiting == 1)
    # 10 bytes would fit beside the 60 held, but the 70 asked first.
    small = asyncio.create_task(hold(budget, 10, got, release[10]))
    await eventually(lambda: budget.waiting == 2)
    assert got == [60]
    release[60].set()
    await eventually(lambda: got == [60, 70, 10], what="the big job first, then the small one beside it")
    for event in release.values():
        event.set()
    await asyncio.gather(holder, big, small)
    assert budget.in_use == 0


async def test_more_than_the_whole_budget_is_refused_at_once():
    budget = MemoryBudget(100)
    with pytest.raises(NeverFits, match="allows"):
        async with budget.reserve(101):
            pass
    assert budget.in_use == 0 and budget.waiting == 0


async def test_bytes_are_given_back_when_the_job_fails():
    budget = MemoryBudget(100)
    with pytest.raises(RuntimeError):
        async with budget.reserve(80):
            raise RuntimeError("the provider call blew up")
    assert budget.in_use == 0
    async with budget.reserve(100):
        assert budget.in_use == 100


async def test_a_job_cancelled_while_holding_gives_its_bytes_back():
    budget = MemoryBudget(100)
    got: list[int] = []
    task = asyncio.create_task(hold(budget, 80, got, asyncio.Event()))
    await eventually(lambda: got == [80])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert budget.in_use == 0


async def test_a_job_cancelled_while_waiting_takes_nothing_and_lets_the_next_one_in():
    budget = MemoryBudget(100)
    got: list[int] = []
    release = asyncio.Event()
    holder = asyncio.create_task(hold(budget, 60, got, release))
    await eventually(lambda: got == [60])
    waiter = asyncio.create_task(hold(budget, 60, got, asyncio.Event()))
    await eventually(lambda: budget.waiting == 1)
    behind = asyncio.create_task(hold(budget, 40, got, release))
    await eventually(lambda: budget.waiting == 2)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # The 40 behind the cancelled waiter fits beside the 60 and no longer waits for it.
    await eventually(lambda: got == [60, 40], what="the reservation behind the cancelled one granted")
    assert budget.in_use == 100 and budget.waiting == 0
    release.set()
    await asyncio.gather(holder, behind)
    assert budget.in_use == 0


def job_of(**overrides) -> Job:
    return Job(
        id=1,
        team="T1",
        channel="C1",
        user="U1",
        platform="cli",
        kind="imagine",
        spec=spec(**overrides),
        state=JobState.RUNNING,
        attempt=1,
        max_attempts=3,
        delivery={},
        created_at=0.0,
    )


def test_a_job_reserves_the_catalog_figure_for_its_model_and_size_twice_when_hedged():
    catalog = load_catalog()
    memory = JobMemory(MemoryBudget(10**12), catalog)
    four_k = spec(size="4K")
    assert memory.needed(four_k, []) == catalog.models["pro"].memory_bytes["4K"]
    assert memory.needed(dataclasses.replace(four_k, hedge_after_s=5.0), []) == 2 * memory.needed(four_k, [])
    inputs = [InputImage(b"x" * 1000, "image/png")]
    assert memory.needed(four_k, inputs) == memory.needed(four_k, []) + INPUT_COPIES * 1000
    # A model the catalog has no figure for reserves the largest figure there is.
    unknown = spec(model_alias="someday", size="4K")
    assert memory.needed(unknown, []) == max(n for m in catalog.models.values() for n in m.memory_bytes.values())


async def test_a_job_that_can_never_fit_is_refused_without_a_call_and_its_inputs_are_read_again_after_the_wait():
    catalog = load_catalog()
    loads: list[int] = []

    async def load(job: Job) -> list[InputImage]:
        loads.append(job.id)
        return [InputImage(b"x" * 10, "image/png")]

    small = JobMemory(MemoryBudget(catalog.models["pro"].memory_bytes["4K"] - 1), catalog)
    with pytest.raises(TooBigForMemory, match="IMAGINE_MEMORY_MB") as refused:
        async with small.running(job_of(size="4K"), load):
            pass
    assert refused.value.called is False and not refused.value.retryable
    assert small.budget.in_use == 0
    roomy = JobMemory(MemoryBudget(10**9), catalog)
    async with roomy.running(job_of(size="1K"), load) as inputs:
        assert [i.data for i in inputs] == [b"x" * 10]
        assert roomy.budget.in_use == roomy.needed(spec(size="1K"), inputs)
    assert roomy.budget.in_use == 0 and len(loads) == 3  # weighed once and read after the wait


def test_an_operator_sets_other_figures_in_imagine_config(tmp_path):
    config = tmp_path / "imagine.toml"
    config.write_text('[models.pro]\nmemory_bytes = { "4K" = 120_000_000 }\n')
    catalog = load_catalog(config)
    assert catalog.models["pro"].memory_bytes == {"1K": 10_000_000, "2K": 39_000_000, "4K": 120_000_000}
    assert JobMemory(MemoryBudget(10**12), catalog).needed(spec(size="4K"), []) == 120_000_000


async def test_a_job_gives_back_what_it_holds_once_even_when_its_inputs_are_gone_after_the_wait():
    calls = 0

    async def load(job: Job) -> list[InputImage]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise LookupError("the image to edit was deleted while the job waited")
        return [InputImage(b"x" * 10, "image/png")]

    memory = JobMemory(MemoryBudget(10**9), load_catalog())
    job = job_of(size="1K")
    with pytest.raises(LookupError):
        await memory.acquire(job, load)
    assert memory.budget.in_use > 0  # held until the worker's release, whatever happened
    await memory.release(job)
    await memory.release(job)  # a second release (or one for a job that holds nothing) gives nothing
    assert memory.budget.in_use == 0


async def test_no_job_is_leased_while_one_waits_for_memory_and_a_stop_ends_that_wait():
    memory = JobMemory(MemoryBudget(100), load_catalog())
    stop = asyncio.Event()
    assert await memory.before_lease(stop)  # nobody waits: lease at once
    got: list[int] = []
    release = asyncio.Event()
    holder = asyncio.create_task(hold(memory.budget, 60, got, release))
    await eventually(lambda: got == [60])
    waiter = asyncio.create_task(hold(memory.budget, 60, got, release))
    await eventually(lambda: memory.budget.waiting == 1)
    order: list[object] = got

    async def lease_gate() -> bool:
        leased = await memory.before_lease(stop)
        order.append("lease")
        return leased

    gate = asyncio.create_task(lease_gate())
    release.set()  # the holder gives back, the waiter gets its bytes: nobody waits any more
    assert await gate is True
    await asyncio.gather(holder, waiter)
    assert order == [60, 60, "lease"]  # the next lease only once the waiter had its bytes
    release.clear()
    holder = asyncio.create_task(hold(memory.budget, 60, got, release))
    waiter = asyncio.create_task(hold(memory.budget, 60, got, release))
    await eventually(lambda: memory.budget.waiting == 1)
    stop.set()
    assert await memory.before_lease(stop) is False
    release.set()
    await asyncio.gather(holder, waiter)


def test_imagine_memory_mb_is_a_setting_defaulting_to_512(monkeypatch):
    from bot.settings import Settings

    assert Settings(_env_file=None).imagine_memory_mb == 512
    monkeypatch.setenv("IMAGINE_MEMORY_MB", "2048")
    assert Settings(_env_file=None).imagine_memory_mb == 2048


async def test_flex_jobs_hold_at_most_half_the_budget_so_standard_jobs_still_find_room():
    # Review: a Flex call may last 15 minutes; Flex jobs filling the budget would stall every
    # Standard job of the process (and, through before_lease, its leasing) for that long.
    catalog = load_catalog()
    four_k = catalog.models["pro"].memory_bytes["4K"]
    memory = JobMemory(MemoryBudget(2 * four_k), catalog)

    async def no_inputs(job: Job) -> list[InputImage]:
        return []

    first_flex = dataclasses.replace(job_of(size="4K", lane=Lane.FLEX), id=1)
    second_flex = dataclasses.replace(job_of(size="4K", lane=Lane.FLEX), id=2)
    standard = dataclasses.replace(job_of(size="4K"), id=3)
    await memory.acquire(first_flex, no_inputs)
    waiting = asyncio.create_task(memory.acquire(second_flex, no_inputs))
    await eventually(lambda: memory.flex_waiting == 1, what="the second Flex job waiting for the Flex share")
    assert memory.budget.waiting == 0 and await memory.before_lease(asyncio.Event())  # leasing goes on
    await asyncio.wait_for(memory.acquire(standard, no_inputs), 5)  # the other half is the Standard lane's
    assert memory.budget.in_use == 2 * four_k and not waiting.done()
    await memory.release(first_flex)
    await memory.release(standard)
    await asyncio.wait_for(waiting, 5)
    await memory.release(second_flex)
    assert memory.budget.in_use == 0 and memory.flex_waiting == 0


async def test_a_flex_job_bigger_than_the_flex_share_still_runs_on_the_whole_budget():
    catalog = load_catalog()
    four_k = catalog.models["pro"].memory_bytes["4K"]
    memory = JobMemory(MemoryBudget(four_k), catalog)  # room for one 4K image only

    async def no_inputs(job: Job) -> list[InputImage]:
        return []

    flex = job_of(size="4K", lane=Lane.FLEX)
    await asyncio.wait_for(memory.acquire(flex, no_inputs), 5)
    assert memory.budget.in_use == four_k
    await memory.release(flex)
    assert memory.budget.in_use == 0
