"""The Slack adapter in this process, against the fake Slack, where a failure
must be made inside the bot (the store) rather than on the wire."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import patch

import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.app import SlackAdapter
from bot.apology import STORE_DOWN_NOW
from bot.catalog import load_catalog
from bot.service import STORE_DOWN, ImagineService
from bot.settings import Settings
from bot.store.ports import StoreUnavailable
from bot.store.sqlite import SQLiteStore
from bot.types import JobState
from tests.fakes.slack_requests import block_action_body
from tests.fakes.slack_server import event_body, slash_command_body


@pytest.fixture
async def store(tmp_path: Path):
    opened = SQLiteStore(str(tmp_path / "bot.db"))
    await opened.open()
    yield opened
    await opened.close()


async def test_a_job_that_cannot_record_its_status_is_cancelled_before_it_costs_anything(slack, store, monkeypatch):
    service = ImagineService(store, load_catalog())
    settings = Settings(_env_file=None, slack_bot_token="xoxb-test", slack_api_url=slack.url, slack_signing_secret=None)
    adapter = SlackAdapter(settings, service)

    async def store_lost(job_id: int, context: dict) -> None:
        raise StoreUnavailable("connection lost")

    monkeypatch.setattr(service, "attach_delivery", store_lost)
    body = slash_command_body("/imagine", "a koi pond", response_url=slack.response_url())
    try:
        await adapter.app.async_dispatch(
            AsyncBoltRequest(body=body, headers={"content-type": "application/x-www-form-urlencoded"})
        )
        await slack.wait_for(lambda: slack.responses)
    finally:
        await adapter.close()
    # The user hears "nothing was charged": the ledger must agree.
    assert slack.responses[0]["text"] == STORE_DOWN_NOW
    job = await store.get_job(1)
    assert job.state is JobState.CANCELLED
    assert [row["entry"] for row in await store.ledger()] == ["reservation", "release"]
    # And the status posted for it no longer says it is queued.
    [status] = slack.posted("C1")
    assert "could not start" in status.text and "Queued" not in status.text


async def test_a_reply_in_a_thread_while_the_database_is_down_is_refused_in_words(slack, store, monkeypatch, caplog):
    # Seen in bench/soak.py: the thread lookup raised, the listener failed with a traceback, and
    # the person who asked for the edit heard nothing (a reply has no response_url to answer).
    service = ImagineService(store, load_catalog())
    settings = Settings(_env_file=None, slack_bot_token="xoxb-test", slack_api_url=slack.url, slack_signing_secret=None)
    adapter = SlackAdapter(settings, service)

    async def store_down(*args) -> None:
        raise StoreUnavailable("couldn't get a connection after 10.00 sec")

    monkeypatch.setattr(store, "thread_image", store_down)
    reply = {
        "type": "message",
        "channel": "C1",
        "user": "U1",
        "text": "make it night",
        "ts": "1800000000.000200",
        "thread_ts": "1700000000.000100",
        "channel_type": "channel",
    }
    try:
        await adapter.app.async_dispatch(
            AsyncBoltRequest(body=event_body(reply, event_id="Ev-down-1"), headers={"content-type": "application/json"})
        )
        await slack.wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    finally:
        await adapter.close()
    [note] = slack.calls_to("chat.postEphemeral")
    assert note.args["text"] == STORE_DOWN and note.args["user"] == "U1"
    assert note.args["thread_ts"] == "1700000000.000100"
    assert await store.counts_by_state() == {}  # nothing admitted
    assert "Traceback" not in caplog.text and "listener failed" not in caplog.text


class ReadOnlyEnviron(Mapping):
    """os.environ as bolt reads it, refusing every write (a pop or a set raises)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)

    def __getitem__(self, key: str) -> str:
        return self._env[key]

    def __iter__(self):
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


TOKEN_UNUSED = "`token` will be unused"
# For a test of the adapter's own parts: the only call they make on the core is this one.
NO_SERVICE = SimpleNamespace(add_role_directory=lambda platform, directory: None)


async def test_bolts_token_warning_is_filtered_without_touching_the_environment(monkeypatch, caplog):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    settings = Settings(
        _env_file=None, slack_bot_token="xoxb-test", slack_api_url="http://127.0.0.1:9", slack_signing_secret=None
    )
    caplog.set_level(logging.WARNING, logger="slack_bolt")
    # Only around the constructors: pytest itself writes to the environment between tests.
    with patch.object(os, "environ", ReadOnlyEnviron(os.environ)):
        # Bolt does warn when it finds the variable and a client too: the filter is what hides it.
        AsyncApp(client=AsyncWebClient(token="xoxb-test"), request_verification_enabled=False)
        assert [r for r in caplog.records if TOKEN_UNUSED in r.getMessage()]
        caplog.clear()
        adapter = SlackAdapter(settings, service=NO_SERVICE)  # type: ignore[arg-type]
    try:
        assert not [r for r in caplog.records if TOKEN_UNUSED in r.getMessage()], caplog.records
        assert os.environ["SLACK_BOT_TOKEN"] == "xoxb-from-the-environment"
        # The filter was scoped to building the app: bolt's logger speaks as before afterwards.
        bolt_log = logging.getLogger("slack_bolt.AsyncApp")
        assert bolt_log.filters == []
        bolt_log.warning("As you gave `client` as well, `token` will be unused.")
        assert [r for r in caplog.records if TOKEN_UNUSED in r.getMessage()]
    finally:
        await adapter.close()


async def test_a_demoted_admin_loses_moderator_rights_within_a_minute(slack):
    from adapters.slack.listeners import ADMIN_CACHE_SIZE, Listeners
    from tests.support.clock import FakeClock

    slack.add_user("UBOSS", is_admin=True)
    clock = FakeClock(0.0)
    client = AsyncWebClient(token="xoxb-test", base_url=slack.url)
    listeners = Listeners(NO_SERVICE, client, token="xoxb-test", alert_channel=None, api_url=None, clock=clock)  # type: ignore[arg-type]
    assert await listeners._is_admin("T1", "UBOSS")
    slack.add_user("UBOSS", is_admin=False)  # demoted in Slack
    clock.advance(30)
    assert await listeners._is_admin("T1", "UBOSS")  # still cached: one users.info a minute, not per command
    clock.advance(31)
    assert not await listeners._is_admin("T1", "UBOSS")
    # The cache is bounded: a flood of distinct users never grows it past its size.
    for n in range(ADMIN_CACHE_SIZE + 50):
        listeners._admins[("T1", f"U{n}")] = False
    assert len(listeners._admins) == ADMIN_CACHE_SIZE


@pytest.mark.parametrize("action_id", ["imagine_reroll", "imagine_delete"])
async def test_a_button_pressed_while_the_database_is_down_is_told_so_without_a_trace(
    action_id, slack, store, monkeypatch, caplog
):
    # Seen in bench/soak.py: [Reroll] and [Delete] read the job before anything that knew of
    # outages, so the press got "something went wrong" and the log a traceback.
    service = ImagineService(store, load_catalog())
    settings = Settings(_env_file=None, slack_bot_token="xoxb-test", slack_api_url=slack.url, slack_signing_secret=None)
    adapter = SlackAdapter(settings, service)

    async def store_down(*args, **kwargs) -> None:
        raise StoreUnavailable("couldn't get a connection after 10.00 sec")

    monkeypatch.setattr(store, "get_job", store_down)
    body = block_action_body(action_id, "7", response_url=slack.response_url())
    try:
        with caplog.at_level(logging.WARNING):
            await adapter.app.async_dispatch(
                AsyncBoltRequest(body=body, headers={"content-type": "application/x-www-form-urlencoded"})
            )
            await slack.wait_for(lambda: slack.responses)
    finally:
        await adapter.close()
    [answer] = slack.responses
    assert answer["text"] == STORE_DOWN_NOW and answer["response_type"] == "ephemeral"
    assert not [r for r in caplog.records if r.exc_info], "an outage is one log line, not a trace"
