"""The Notifier port and the outbox dispatcher that drives it.

Workers never talk to Slack or Discord. They write outbox rows in the same
transaction that changes the job; a dispatcher in whichever process runs
the platform's adapter claims those rows and hands them to the adapter's
Notifier. A crash between "job done" and "message posted" therefore loses
nothing: the row is still there and is claimed again after its lease.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Protocol

from bot.store.ports import Store, StoreUnavailable
from bot.teams import NOTICE
from bot.types import Delivery, Job

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """A notifier can't deliver yet for an expected reason (say the status
    message is still being posted); the dispatcher tries again shortly."""


class GiveUp(Exception):
    """Retrying cannot help (the channel is gone, the bot lost access: a
    403 or 404). The delivery is marked failed at once, never retried in a loop."""


class Unavailable(Exception):
    """The platform refuses for now (a 5xx, or a 429 naming when to come back). Retried with
    backoff, at least `retry_after` seconds later, and for longer than other failures: an
    outage of a minute or more must not use up the delivery's attempts."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Notifier(Protocol):
    platform: str

    async def deliver(self, delivery: Delivery, job: Job) -> None:
        """Post one outbox message. Raise to have it retried later.

        `delivery.kind` is "started" (a worker took the job; never sent once
        the job has finished), "result"
        (payload has image_id, model, cost) or "failure" (payload has state
        and error_class; render it with bot.providers.errors.user_message_for).
        """

    async def alert(self, text: str) -> None:
        """Post an operator alert to the moderators' channel."""

    async def notice(self, payload: dict) -> None:
        """Tell one user something that is no job's message (an approval denied or lapsed):
        payload has channel, user, text and thread_ts (None: in the channel itself)."""


class OutboxDispatcher:
    def __init__(
        self,
        store: Store,
        notifiers: list[Notifier],
        *,
        poll_interval: float = 1.0,
        lease_seconds: float = 60.0,
        max_attempts: int = 8,
        max_backoff: float = 300.0,
        batch: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._store = store
        self._notifiers = {n.platform: n for n in notifiers}
        self._poll = poll_interval
        self._lease = lease_seconds
        self._max_attempts = max_attempts
        self._max_backoff = max_backoff  # the longest wait before a failed delivery is retried
        # One row per claim by default: a row's claim lease then starts when it is
        # sent, so a slow upload ahead of it can't let another process post it too.
        self._batch = batch
        self._wakeup = asyncio.Event()
        self._retry_due: float | None = None  # seconds until a RetryLater delivery is due
        # Sent, not yet marked: marked in the transaction of the next claim (or before a wait),
        # not one transaction each. A crash before that re-sends them once their claim lapses.
        self._sent: list[int] = []

    def add(self, notifier: Notifier) -> None:
        self._notifiers[notifier.platform] = notifier

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        if not self._notifiers:
            return
        try:
            await self._dispatch_until(stop)
        finally:
            await self._mark_sent()

    async def _dispatch_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                sent = await self.dispatch_once()
            except StoreUnavailable as exc:
                log.warning("outbox: store unavailable, retrying: %s", exc)
                sent = 0
            if sent and not self._retry_due:
                continue
            await self._mark_sent()
            # Wake for new rows, for stop, or when a "not yet" delivery is due again.
            timeout = min(self._poll, self._retry_due or self._poll)
            self._retry_due = None
            self._wakeup.clear()
            waiters = [
                asyncio.ensure_future(self._wakeup.wait()),
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self._store.wait_for_deliveries(timeout)),
            ]
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def dispatch_once(self) -> int:
        sent, self._sent = self._sent, []
        try:
            claimed = await self._store.claim_for_dispatch(
                list(self._notifiers), self._batch, self._lease, delivered=sent
            )
        except BaseException:
            self._sent = sent + self._sent
            raise
        # In order: a job's "started" must not overwrite its "result".
        for delivery, job in claimed:
            await self._deliver(delivery, job)
        return len(claimed)

    async def _mark_sent(self) -> None:
        """Mark what was sent delivered now (before a wait, or at the end)."""
        sent, self._sent = self._sent, []
        if not sent:
            return
        try:
            await self._store.mark_delivered_many(sent)
        except StoreUnavailable as exc:
            log.warning("outbox: store unavailable marking %d deliveries sent: %s", len(sent), exc)
            self._sent = sent + self._sent

    def _backoff(self, attempts: int) -> float:
        # Exponential with jitter, but never below half the step: retries stay spread out.
        return min(self._max_backoff, 2.0**attempts) * (0.5 + random.random() / 2)

    async def _deliver(self, delivery: Delivery, job: Job | None) -> None:
        notifier = self._notifiers[delivery.platform]
        try:
            if delivery.kind == "alert":
                await notifier.alert(delivery.payload["text"])
            elif delivery.kind == NOTICE:
                await notifier.notice(delivery.payload)
            else:
                if job is None:
                    raise LookupError(f"job {delivery.job_id} is gone")
                # A "started" that comes after the job finished must not overwrite its final status.
                if not (delivery.kind == "started" and job.state.terminal):
                    await notifier.deliver(delivery, job)
        except GiveUp as exc:
            log.warning("outbox: giving up on %s (%s): %s", delivery.key, delivery.kind, exc)
            await self._store.retry_delivery(delivery.id, repr(exc), self._clock(), max_attempts=0)
            return
        except RetryLater as exc:
            log.debug("outbox: %s not deliverable yet: %s", delivery.key, exc)
            delay = 0.2 * delivery.attempts
            self._retry_due = min(self._retry_due or delay, delay)
            await self._store.retry_delivery(delivery.id, repr(exc), self._clock() + delay, self._max_attempts * 4)
            return
        except Unavailable as exc:
            log.warning(
                "outbox: %s (%s) refused for now, attempt %d: %s", delivery.key, delivery.kind, delivery.attempts, exc
            )
            delay = max(exc.retry_after or 0.0, self._backoff(delivery.attempts))
            await self._store.retry_delivery(delivery.id, repr(exc), self._clock() + delay, self._max_attempts * 4)
            return
        except StoreUnavailable:
            # Not the delivery's failure: run() logs the outage in one line, and the claim's
            # lease brings the delivery back (no attempt spent on it).
            raise
        except Exception as exc:
            log.exception("outbox: delivery %s (%s) failed, attempt %d", delivery.key, delivery.kind, delivery.attempts)
            backoff = self._backoff(delivery.attempts)
            await self._store.retry_delivery(delivery.id, repr(exc), self._clock() + backoff, self._max_attempts)
            return
        self._sent.append(delivery.id)
