"""Waiting on a probe, not a clock: poll a condition until it holds, or fail saying what never did.

A fixed sleep either wastes time or, under load, is too short; a probe waits exactly as
long as the condition takes, and still fails (after `timeout`) when it never holds.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float = 10.0,
    *,
    interval: float = 0.05,
    what: str = "the condition",
) -> None:
    """Poll predicate() (sync or async) every `interval` s until it is true; AssertionError after `timeout` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(interval)
