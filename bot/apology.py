"""What a chat user is told when an action fails on our side, and how the failure is logged.

A store outage is expected (a restart, a failover): the action gets its own words and the log
one warning line. Anything else is a bug: its trace goes to the log, and the user gets one line
that never carries the exception's text. The adapters' error handlers both end here.
"""

from __future__ import annotations

import logging

from bot.store.ports import StoreUnavailable

SORRY = "Sorry, something went wrong on my side. Nothing was charged; please try again."
STORE_DOWN_NOW = "I can't reach my database right now, so nothing was changed or charged. Please try again in a minute."


def outage_behind(error: BaseException) -> StoreUnavailable | None:
    """The store outage behind `error`, through the wrappers a chat SDK puts around a
    listener's exception (`.original`, as discord.py's CommandInvokeError) and `raise ... from`."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, StoreUnavailable):
            return current
        seen.add(id(current))
        original = getattr(current, "original", None)
        current = original if isinstance(original, BaseException) else current.__cause__
    return None


def apology(error: BaseException, log: logging.Logger, what: str) -> str:
    """Log the failure of `what` (one line for an outage, the trace for anything else) and
    return the line to show the user."""
    if (outage := outage_behind(error)) is not None:
        log.warning("%s: the database is unavailable (%s)", what, outage)
        return STORE_DOWN_NOW
    log.error("%s failed", what, exc_info=error)
    return SORRY
