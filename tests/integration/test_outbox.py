"""The outbox dispatcher: delivered once, retried on failure, given up on permanent errors."""

from __future__ import annotations

import pytest

from bot.notify import GiveUp, OutboxDispatcher, RetryLater, Unavailable
from bot.store.ports import StoreUnavailable, final_delivery_key
from bot.types import JobState, NewDelivery
from tests.support.jobs import new_job


class ScriptedNotifier:
    platform = "cli"

    def __init__(self, *errors: Exception | None) -> None:
        self.errors = list(errors)
        self.attempts: list[str] = []

    async def deliver(self, delivery, job) -> None:
        self.attempts.append(delivery.key)
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error


async def started_row(store) -> None:
    await store.submit(new_job(), [])
    await store.lease("w", 60)  # writes the job's "started" delivery


async def test_success_is_delivered_once(store, clock):
    await started_row(store)
    notifier = ScriptedNotifier()
    dispatcher = OutboxDispatcher(store, [notifier], clock=clock)
    assert await dispatcher.dispatch_once() == 1
    clock.advance(3600)
    assert await dispatcher.dispatch_once() == 0
    assert notifier.attempts == ["job:1:started:1"]


async def test_a_failure_is_retried_later_and_a_give_up_is_final(store, clock):
    await started_row(store)
    notifier = ScriptedNotifier(RuntimeError("boom"), GiveUp("403 Missing Access"))
    dispatcher = OutboxDispatcher(store, [notifier], clock=clock)
    await dispatcher.dispatch_once()
    assert await dispatcher.dispatch_once() == 0  # backing off
    clock.advance(600)
    await dispatcher.dispatch_once()
    clock.advance(3600)
    assert await dispatcher.dispatch_once() == 0  # the 403 is never retried
    assert len(notifier.attempts) == 2


async def test_retry_later_comes_back_soon(store, clock):
    await started_row(store)
    notifier = ScriptedNotifier(RetryLater("status not posted yet"))
    dispatcher = OutboxDispatcher(store, [notifier], clock=clock)
    await dispatcher.dispatch_once()
    clock.advance(0.5)
    await dispatcher.dispatch_once()
    assert notifier.attempts == ["job:1:started:1", "job:1:started:1"]


async def test_a_platform_outage_is_waited_out_past_max_attempts_and_retry_after_is_kept(store, clock):
    await started_row(store)
    refusals = [Unavailable("Slack answered 503") for _ in range(5)]
    notifier = ScriptedNotifier(Unavailable("Slack answered 429", retry_after=30), *refusals)
    dispatcher = OutboxDispatcher(store, [notifier], clock=clock, max_attempts=3, max_backoff=1.0)
    await dispatcher.dispatch_once()
    clock.advance(20)
    assert await dispatcher.dispatch_once() == 0  # Retry-After is 30 s
    clock.advance(11)
    for _ in range(6):  # more refusals than max_attempts; each waits at most max_backoff
        assert await dispatcher.dispatch_once() == 1
        clock.advance(1.0)
    assert await dispatcher.dispatch_once() == 0
    assert len(notifier.attempts) == 7 and not notifier.errors


async def test_a_started_row_for_a_finished_job_is_dropped_not_sent(store, clock):
    await started_row(store)
    job = await store.get_job(1)
    await store.fail(
        1,
        "w",
        job.attempt,
        error_class="bad_request",
        detail="x",
        retryable=False,
        final_state=JobState.FAILED,
        retry_at=None,
        delivery=NewDelivery(final_delivery_key(1), "failure", {}),
    )
    notifier = ScriptedNotifier()
    dispatcher = OutboxDispatcher(store, [notifier], clock=clock, batch=10)
    assert await dispatcher.dispatch_once() == 2
    assert notifier.attempts == ["job:1:final"]  # the late "started" never reached the adapter
    clock.advance(3600)
    assert await dispatcher.dispatch_once() == 0  # and it is done with, not retried


async def test_a_store_lost_mid_delivery_is_one_warning_and_the_delivery_comes_back(store, clock, caplog):
    # Seen in bench/soak.py: the database died while a delivery was under way (a notifier reads
    # the job's image from the store); the outbox logged it as a failed delivery with a
    # traceback, while run() logs an unavailable store in one line and the claim's lease
    # brings the delivery back.
    await started_row(store)
    lost = StoreUnavailable("postgres: consuming input failed: server closed the connection unexpectedly")
    notifier = ScriptedNotifier(lost)
    dispatcher = OutboxDispatcher(store, [notifier], clock=clock)
    with pytest.raises(StoreUnavailable):
        await dispatcher.dispatch_once()
    assert "Traceback" not in caplog.text and "failed" not in caplog.text
    clock.advance(3600)  # the claim's lease has run out
    assert await dispatcher.dispatch_once() == 1
    assert notifier.attempts == ["job:1:started:1", "job:1:started:1"]
