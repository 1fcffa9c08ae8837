"""AfterAck: the work after a chat request's ack runs a few at a time, yields to requests being
acked, reports its failures, and is drained (or cut short) at shutdown."""

from __future__ import annotations

import asyncio
import time

from adapters.after_ack import AfterAck
from tests.support.probe import eventually


async def _spin(turns: int = 5) -> None:
    """Let every ready task take a few steps (not a wait for time to pass)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_at_most_its_slots_run_at_once_and_every_piece_of_work_runs():
    after = AfterAck(slots=3)
    running, most, done = 0, 0, []
    gate = asyncio.Event()

    async def work(i: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1
        done.append(i)

    for i in range(10):
        after.start(lambda i=i: work(i), on_error=_unexpected)
    await eventually(lambda: running == 3)
    gate.set()
    await eventually(lambda: len(done) == 10)
    assert most == 3 and sorted(done) == list(range(10)) and after.pending == 0


async def test_work_waits_while_a_request_is_being_acked():
    after = AfterAck(slots=4, yield_at_most=60)
    order: list[str] = []

    async def work() -> None:
        order.append("work")

    with after.acking():
        after.start(work, on_error=_unexpected)
        await _spin()  # the work had every chance to run
        order.append("acked")
    await eventually(lambda: order == ["acked", "work"])


async def test_work_starts_only_once_the_ack_path_has_been_idle_a_moment():
    """A burst arrives over some milliseconds: its last acks must not wait behind its first work."""
    after = AfterAck(slots=4, quiet_for=0.2, yield_at_most=60)
    started = asyncio.Event()

    async def work() -> None:
        started.set()

    with after.acking():
        after.start(work, on_error=_unexpected)
    acked = time.monotonic()
    await asyncio.wait_for(started.wait(), 5)
    assert time.monotonic() - acked >= 0.2


async def test_work_starts_in_the_order_it_was_acked():
    """A double click's first press decides: waiting for a quiet moment must not reorder work."""
    after = AfterAck(slots=8, quiet_for=0.05, yield_at_most=60)
    order: list[int] = []

    async def work(i: int) -> None:
        order.append(i)

    for i in range(8):
        with after.acking():
            after.start(lambda i=i: work(i), on_error=_unexpected)
        await _spin(i % 3)  # acks spread over a few turns of the loop
    await eventually(lambda: len(order) == 8)
    assert order == list(range(8))


async def test_work_goes_ahead_after_yielding_at_most_its_limit():
    """A steady stream of requests (one always being acked) cannot starve it."""
    after = AfterAck(slots=4, yield_at_most=0.05)
    ran = asyncio.Event()

    async def work() -> None:
        ran.set()

    with after.acking():
        after.start(work, on_error=_unexpected)
        await asyncio.wait_for(ran.wait(), 5)


async def test_a_failure_goes_to_its_own_handler_and_the_rest_runs_on():
    after = AfterAck(slots=1)
    failures: list[str] = []
    done = asyncio.Event()

    async def broken() -> None:
        raise RuntimeError("store lost")

    async def report(exc: Exception) -> None:
        failures.append(str(exc))

    async def fine() -> None:
        done.set()

    after.start(broken, on_error=report)
    after.start(fine, on_error=_unexpected)
    await asyncio.wait_for(done.wait(), 5)
    assert failures == ["store lost"]


async def test_drain_finishes_what_was_acked_even_work_handed_over_meanwhile():
    after = AfterAck(slots=2)
    gate = asyncio.Event()
    done: list[int] = []

    async def work(i: int) -> None:
        await gate.wait()
        done.append(i)
        if i == 0:  # an acked request whose work hands over more (a late socket-mode request)
            after.start(lambda: work(99), on_error=_unexpected)

    for i in range(5):
        after.start(lambda i=i: work(i), on_error=_unexpected)
    draining = asyncio.create_task(after.drain(timeout=30))
    await _spin()
    assert not draining.done()
    gate.set()
    assert await draining == 0
    assert sorted(done) == [0, 1, 2, 3, 4, 99]


async def test_drain_cuts_short_what_does_not_finish_in_time():
    after = AfterAck(slots=2)
    never = asyncio.Event()

    async def stuck() -> None:
        await never.wait()

    for _ in range(3):
        after.start(stuck, on_error=_unexpected)
    assert await after.drain(timeout=0.05) == 3
    assert after.pending == 0


async def _unexpected(exc: Exception) -> None:
    raise AssertionError(f"unexpected failure: {exc!r}")
