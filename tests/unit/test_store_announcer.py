"""PostgreSQL's NOTIFYs are coalesced: what is posted within a short window goes in one."""

from __future__ import annotations

import asyncio

from bot.store.postgres import _Announcer
from tests.support.probe import eventually


def recording():
    """A send that keeps what it was asked to send."""
    sent: list[set[str]] = []

    async def send(channels: set[str]) -> None:
        sent.append(channels)

    return sent, send


async def test_channels_posted_within_the_window_go_in_one_notify_and_later_ones_in_the_next():
    sent, send = recording()
    announcer = _Announcer(send, window=0.5)
    announcer.post({"jobs"})
    await asyncio.sleep(0.05)  # a later commit, well within the window
    announcer.post({"outbox"})
    announcer.post({"jobs"})
    await eventually(lambda: sent == [{"jobs", "outbox"}], what="one notify for the three posts")
    announcer.post({"outbox"})
    await eventually(lambda: sent == [{"jobs", "outbox"}, {"outbox"}], what="the next in a notify of its own")
    await announcer.close()


async def test_close_sends_what_is_due_at_once():
    sent, send = recording()
    announcer = _Announcer(send, window=60)
    announcer.post({"jobs"})
    await asyncio.wait_for(announcer.close(), 5)
    assert sent == [{"jobs"}]
