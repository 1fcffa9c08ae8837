"""DownloadSlots: a download given up while it waits leaves no slot or user entry behind."""

from __future__ import annotations

import asyncio

from bot.attachments import DownloadSlots
from tests.support.probe import eventually


async def test_a_download_cancelled_while_waiting_leaves_nothing_behind():
    slots = DownloadSlots(per_process=1, per_user=1)
    release = asyncio.Event()

    async def download(user: str) -> None:
        async with slots.slot(user):
            await release.wait()

    first = asyncio.create_task(download("U1"))
    second = asyncio.create_task(download("U2"))  # waits for the process's one slot
    await eventually(lambda: slots.waiting == 1)
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert slots.waiting == 0
    release.set()
    await first
    assert slots.waiting == 0 and slots._users == {}
    async with slots.slot("U2"):  # the slot is free again
        pass
