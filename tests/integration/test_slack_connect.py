"""Meeting Slack at start-up (adapters/slack/connect.py) against the fake Socket Mode server: what
is refused for good stops at once, what may pass is retried in the background."""

from __future__ import annotations

import logging
import time

import pytest
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import connect
from adapters.slack.connect import SocketMode, TokenRejected, check_bot_token
from tests.fakes.slack_socket import FakeSlackSocket


@pytest.fixture
async def fake(monkeypatch):
    monkeypatch.setattr(connect, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(connect, "FIRST_ANSWER_SECONDS", 0.3)
    async with FakeSlackSocket() as server:
        yield server


def socket_mode(fake: FakeSlackSocket, app_token: str | None = None) -> SocketMode:
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.url)
    app = AsyncApp(client=client, request_verification_enabled=False)
    return SocketMode(app, client, app_token or fake.app_token)


async def test_a_token_revoked_while_slack_was_down_is_said_once_and_tried_no_more(fake, caplog):
    fake.fail_next("apps.connections.open", "internal_error", status=503)
    fake.fail_next("apps.connections.open", "token_revoked")  # 200 {"ok": false}: the token itself
    socket = socket_mode(fake)
    with caplog.at_level(logging.WARNING, logger=connect.__name__):
        await socket.start()  # the 503 is not start-up's business
        assert socket._task is not None
        await fake.wait_for(socket._task.done)
    await socket.close()
    assert len(fake.calls_to("apps.connections.open")) == 2 and fake.connections == []
    [warning, error] = caplog.records
    assert warning.levelno == logging.WARNING and "HTTP 503" in warning.getMessage()
    assert error.levelno == logging.ERROR and "SLACK_APP_TOKEN was rejected by Slack" in error.getMessage()
    assert error.exc_info is None  # one line, no traceback


async def test_a_slack_that_does_not_answer_holds_start_up_only_briefly_and_is_tried_again(fake):
    fake.stalled.add("apps.connections.open")
    socket = socket_mode(fake)
    started = time.monotonic()
    await socket.start()
    assert time.monotonic() - started < 2
    await fake.wait_for(lambda: len(fake.calls_to("apps.connections.open")) >= 2)
    fake.stalled.clear()
    try:
        await fake.wait_connected()
    finally:
        await socket.close()
    await fake.wait_for(lambda: not any(c.open for c in fake.connections))


@pytest.mark.parametrize(
    ("token", "error"), [("xoxb-test", "not_allowed_token_type"), ("xapp-1-A1-1-nope", "invalid_auth")]
)
async def test_a_refused_app_token_is_refused_at_start(fake, token, error):
    with pytest.raises(
        TokenRejected, match=f"SLACK_APP_TOKEN was rejected by Slack \\(apps.connections.open: {error}\\)"
    ):
        await socket_mode(fake, token).start()
    assert len(fake.calls_to("apps.connections.open")) == 1


async def test_the_bot_token_check(fake, caplog):
    await check_bot_token(AsyncWebClient(token=fake.bot_token, base_url=fake.url))
    with pytest.raises(TokenRejected, match="SLACK_BOT_TOKEN was rejected by Slack \\(auth.test: invalid_auth\\)"):
        await check_bot_token(AsyncWebClient(token="xoxb-nope", base_url=fake.url))
    # Slack down: a warning, and start-up goes on (bolt asks again on the first request).
    fake.fail_next("auth.test", "internal_error", status=500)
    with caplog.at_level(logging.WARNING, logger=connect.__name__):
        await check_bot_token(AsyncWebClient(token=fake.bot_token, base_url=fake.url))
    assert "auth.test failed (HTTP 500" in caplog.text
