"""Work a chat adapter does after it has acked a request: submit to the core, post the
status, record where it is. It runs here, off the path of the next request.

Slack and Discord give a request 3 s to be acked and judge an app by how fast it is.
Under a burst (200 /imagine at once) the acks and the work after them share one event
loop, so the work waits its turn twice over:

* at most `slots` pieces of work run at once (the store and the Web API would only
  queue the rest anyway), the others wait for a slot in arrival order;
* a piece of work starts only once no request has been acked for `quiet_for` seconds
  (`AfterAck.acking` marks the requests being answered: a burst arrives over some
  milliseconds, and its last acks must not wait behind its first requests' work), or
  once it is `yield_at_most` seconds old, so a steady stream of requests cannot
  starve it either (work that waited for a slot that long goes at once).

Every piece of work is tracked from the moment it is handed over, so `drain()` at
shutdown (after the HTTP server stopped taking requests) runs what was acked to the end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress

log = logging.getLogger(__name__)

# Work running at once. Each holds a store transaction or a Web API call at a time, and
# SQLite runs one writer: more slots would only lengthen the queue inside the store.
DEFAULT_SLOTS = 16
# How long the ack path must have been idle before work starts, and how old work may get
# (from its ack) before it goes anyway.
QUIET_FOR = 0.02
YIELD_AT_MOST = 0.5

Work = Callable[[], Awaitable[None]]
OnError = Callable[[Exception], Awaitable[None]]


class AfterAck:
    def __init__(
        self, slots: int = DEFAULT_SLOTS, *, quiet_for: float = QUIET_FOR, yield_at_most: float = YIELD_AT_MOST
    ) -> None:
        self._slots = asyncio.Semaphore(slots)
        # Work starts in the order it was acked (a double click's first press decides): the
        # slots and this turnstile are both first come, first served.
        self._turnstile = asyncio.Lock()
        self._quiet_for, self._yield_at_most = quiet_for, yield_at_most
        self._last_ack = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._acking = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @contextmanager
    def acking(self) -> Iterator[None]:
        """Around the handling of one request up to its ack: work waits while any is open."""
        self._acking += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._acking -= 1
            self._last_ack = time.monotonic()
            if self._acking == 0:
                self._quiet.set()

    def start(self, work: Work, on_error: OnError) -> None:
        """Run `work()` after the ack; an exception from it goes to `on_error` (which tells the user)."""
        task = asyncio.get_running_loop().create_task(self._run(work, on_error, time.monotonic()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def pending(self) -> int:
        """Acked requests whose work has not finished (waiting or running)."""
        return len(self._tasks)

    async def _run(self, work: Work, on_error: OnError, acked_at: float) -> None:
        async with self._slots:
            async with self._turnstile:
                await self._turn(acked_at + self._yield_at_most)
            try:
                await work()
            except Exception as exc:
                try:
                    await on_error(exc)
                except Exception:
                    log.exception("could not report a failure after the ack")

    async def _turn(self, deadline: float) -> None:
        """Until the ack path has been idle for quiet_for, or the deadline."""
        while (left := deadline - time.monotonic()) > 0:
            if not self._quiet.is_set():
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._quiet.wait(), left)
                continue
            idle = time.monotonic() - self._last_ack
            if idle >= self._quiet_for:
                return
            await asyncio.sleep(min(self._quiet_for - idle, left))

    async def drain(self, timeout: float) -> int:
        """Wait for every acked request's work (those handed over meanwhile too), at most
        `timeout` seconds; what is left then is cancelled. Returns how many were cut short."""
        deadline = time.monotonic() + timeout
        while self._tasks:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=left)
        cut = list(self._tasks)
        if cut:
            log.error("stopping: %d acked request(s) were not handled to the end in %.0f s", len(cut), timeout)
            for task in cut:
                task.cancel()
            await asyncio.gather(*cut, return_exceptions=True)
        return len(cut)
