"""Button presses: a double click must make one paid job, never two.

Each press carries an idempotency key made of the message, the button and
the user. The core keeps a key taken for PRESS_WINDOW seconds, so a second
press inside it gets the first press's job back (and is told so), while the
same button pressed a minute later is a new request.
"""

from __future__ import annotations

import asyncio
import weakref

PRESS_WINDOW = 10.0
ALREADY_ON_IT = "Already on it: you pressed that a moment ago, and the image it started is on its way."


def press_key(platform: str, message: str, button: str, user: str) -> str:
    return f"{platform}:press:{message}:{button}:{user}"


class OneAtATime:
    """A lock per question (a confirmation token): presses on it run one after
    another in this process, so a second press finds the first one's answer
    instead of racing it to the store. Locks nobody holds are dropped."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock
