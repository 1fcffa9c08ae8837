"""Downloads of users' files, in this process against the fake Slack: never more at once
than the process's and each user's limit, and never more bytes than the cap, whatever
the file's declared size says."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.listeners import Listeners
from bot.attachments import DownloadSlots
from bot.catalog import load_catalog
from bot.service import ImagineService
from bot.store.sqlite import SQLiteStore
from bot.types import InvalidRequest
from tests.fakes.slack_server import FakeSlack
from tests.support.images import png_bytes
from tests.support.probe import eventually


@pytest.fixture
async def slack():
    async with FakeSlack() as server:
        yield server


def _listeners(slack: FakeSlack, store: SQLiteStore, slots: DownloadSlots) -> Listeners:
    service = ImagineService(store, load_catalog(), downloads=slots)
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)
    return Listeners(service, client, token=slack.bot_token, alert_channel=None, api_url=slack.url)


async def _held_downloads(slack: FakeSlack, slots: DownloadSlots, listeners: Listeners, users: list[str], serving: int):
    """Each of `users` downloads one file while the fake holds them open: `serving` are served
    at once and the rest wait for a slot; then all are let through and must arrive."""
    files = [slack.add_user_file(png_bytes(8, 8, "red"), user=user) for user in users]
    slack.hold_downloads()
    tasks = [asyncio.create_task(listeners.download_files("T1", f["user"], [f])) for f in files]
    await eventually(
        lambda: slack.downloads_in_flight.total() == serving and slots.waiting == len(users) - serving,
        what=f"{serving} downloads served and {len(users) - serving} waiting",
    )
    slack.release_downloads()
    done = await asyncio.gather(*tasks)
    assert [len(images) for images in done] == [1] * len(users)
    assert slots.waiting == 0 and slack.downloads_in_flight.total() == 0


async def test_downloads_at_once_never_exceed_the_process_limit(slack, sqlite_store):
    slots = DownloadSlots(per_process=3, per_user=2)
    listeners = _listeners(slack, sqlite_store, slots)
    await _held_downloads(slack, slots, listeners, ["U1", "U1", "U1", "U1", "U2", "U2", "U3", "U3"], serving=3)
    assert slack.download_high_water == 3
    assert max(slack.user_download_high_water.values()) <= 2


async def test_one_user_downloads_at_most_their_share_at_once(slack, sqlite_store):
    slots = DownloadSlots(per_process=8, per_user=2)
    listeners = _listeners(slack, sqlite_store, slots)
    await _held_downloads(slack, slots, listeners, ["U1"] * 5, serving=2)
    assert slack.download_high_water == 2 and slack.user_download_high_water["U1"] == 2


async def test_a_file_larger_than_it_says_stops_at_the_cap(slack, sqlite_store):
    listeners = _listeners(slack, sqlite_store, DownloadSlots())
    big = slack.add_user_file(b"\x89PNG" + bytes(15 * 1024 * 1024), name="huge.png", user="U1")
    big["size"] = 1024  # the sender's word only
    with pytest.raises(InvalidRequest, match="huge.png is larger than 14 MB"):
        await listeners.download_files("T1", "U1", [big])
