"""The Slack adapter in this process, against the fake Slack, where a failure
must be made inside the bot (the store) rather than on the wire."""

from __future__ import annotations

from pathlib import Path

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from adapters.slack.app import SORRY, SlackAdapter
from bot.catalog import load_catalog
from bot.service import ImagineService
from bot.settings import Settings
from bot.store.base import StoreUnavailable
from bot.store.sqlite import SQLiteStore
from bot.types import JobState
from tests.fakes.slack_server import FakeSlack, slash_command_body


@pytest.fixture
async def slack():
    async with FakeSlack() as server:
        server.add_user("U1")
        yield server


@pytest.fixture
async def store(tmp_path: Path):
    opened = SQLiteStore(str(tmp_path / "bot.db"))
    await opened.open()
    yield opened
    await opened.close()


async def test_a_job_that_cannot_record_its_status_is_cancelled_before_it_costs_anything(slack, store, monkeypatch):
    service = ImagineService(store, load_catalog())
    settings = Settings(_env_file=None, slack_bot_token="xoxb-test", slack_api_url=slack.url,
                        slack_signing_secret=None)
    adapter = SlackAdapter(settings, service)

    async def store_lost(job_id: int, context: dict) -> None:
        raise StoreUnavailable("connection lost")

    monkeypatch.setattr(service, "attach_delivery", store_lost)
    body = slash_command_body("/imagine", "a koi pond", response_url=slack.response_url())
    try:
        await adapter.app.async_dispatch(AsyncBoltRequest(
            body=body, headers={"content-type": "application/x-www-form-urlencoded"}))
        await slack.wait_for(lambda: slack.responses)
    finally:
        await adapter.close()
    # The user hears "nothing was charged": the ledger must agree.
    assert slack.responses[0]["text"] == SORRY
    job = await store.get_job(1)
    assert job.state is JobState.CANCELLED
    assert [row["entry"] for row in await store.ledger()] == ["reservation", "release"]
    # And the status posted for it no longer says it is queued.
    [status] = slack.posted("C1")
    assert "could not start" in status.text and "Queued" not in status.text
