"""Writing a job's outcome when the call behind it is already paid for.

The image (or the billed failure) exists whatever the database says, so a
briefly unavailable store is waited out rather than given up on: giving up
would let the job run, and be paid for, again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_random_exponential
from tenacity.stop import stop_base

from bot.store.ports import StoreUnavailable
from bot.types import Job

# The worker's logger: these lines read, and are filtered, as the worker's own.
log = logging.getLogger("bot.worker")
STORE_WRITE_ATTEMPTS = 6
T = TypeVar("T")


async def write_outcome(write: Callable[[], Awaitable[T]], job: Job) -> T:
    """Run `write`, retrying while the store is unavailable (with backoff, a few times)."""
    return await waiting_out_the_store(
        write,
        stop_after_attempt(STORE_WRITE_ATTEMPTS),
        lambda exc: log.warning("job %d: store unavailable while saving its outcome (%s); retrying", job.id, exc),
    )


async def waiting_out_the_store(
    write: Callable[[], Awaitable[T]], stop: stop_base, warn: Callable[[BaseException | None], None]
) -> T:
    """Run `write`, retrying (with backoff) while the store is unavailable, until `stop`;
    `warn` is told each error retried. The last error is re-raised."""
    # The usual case, a store that answers, costs one call: tenacity's machinery (a retry
    # state, callbacks, an iterator: a tenth of a busy worker's time) only once it fails.
    try:
        return await write()
    except StoreUnavailable as exc:
        first: list[StoreUnavailable] = [exc]

    async def again() -> T:
        if first:  # tenacity's first attempt is the one just made: counted, warned, waited after
            raise first.pop()
        return await write()

    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(StoreUnavailable),
        stop=stop,
        wait=wait_random_exponential(multiplier=0.5, max=30),
        reraise=True,
        before_sleep=lambda state: warn(_error_of(state)),
    ):
        with attempt:
            return await again()
    raise AssertionError("unreachable: tenacity re-raises the last error")


def _error_of(state: RetryCallState) -> BaseException | None:
    # Before a sleep the attempt has always ended (with the error being retried); tenacity types it optional.
    return state.outcome.exception() if state.outcome is not None else None
