"""Slack adapter: the bolt app and its Web API client, the HTTP endpoint Slack
calls, and the notifier port the outbox drives. It translates; the core decides.

What comes in is handled in adapters/slack/listeners.py; what goes out for a
job (status edits, the image in its thread) in adapters/slack/delivery.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from adapters.after_ack import AfterAck
from adapters.slack import render
from adapters.slack.connect import SocketMode, TokenRejected, check_bot_token
from adapters.slack.delivery import PLATFORM, SlackDelivery
from adapters.slack.listeners import Listeners
from bot.apology import SORRY
from bot.service import ImagineService
from bot.settings import Settings
from bot.types import Delivery, Job

__all__ = ["SORRY", "SlackAdapter", "TokenRejected"]

# On shutdown, how long the work of requests already acked may take to finish (post their status).
SHUTDOWN_GRACE = 10.0


class SlackAdapter:
    platform = PLATFORM

    def __init__(self, settings: Settings, service: ImagineService) -> None:
        # Built only when SLACK_BOT_TOKEN is set (bootstrap checks slack_configured).
        token = cast(SecretStr, settings.slack_bot_token).get_secret_value()
        self._alert_channel = settings.slack_alert_channel
        # One session for every Web API call: without it slack_sdk opens a new
        # connection (a TLS handshake) per call.
        self._session = aiohttp.ClientSession()
        self.client = AsyncWebClient(
            token=token,
            base_url=settings.slack_api_url or AsyncWebClient.BASE_URL,
            session=self._session,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
        )
        self._after_ack = AfterAck()
        self._socket: SocketMode | None = None
        signing_secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
        with _bolt_token_warning_hidden():
            self.app = AsyncApp(
                client=self.client,
                signing_secret=signing_secret,
                request_verification_enabled=signing_secret is not None,
                ignoring_self_events_enabled=True,
                # The listeners only parse, validate and ack (their work goes to AfterAck), so
                # bolt may answer when a listener returns; otherwise it runs the listener in a
                # task of its own and polls every 10 ms for the ack.
                process_before_response=True,
            )
        self._delivery = SlackDelivery(self.client, service)
        Listeners(
            service, self.client, token=token, alert_channel=self._alert_channel, api_url=settings.slack_api_url
        ).register(self.app, self._after_ack)

    async def start(self, app_token: str | None) -> None:
        """Check the bot token, and with an app token start Socket Mode; TokenRejected (all
        closed again) when Slack refuses either. Never waits long on a Slack that is down."""
        if app_token is not None:
            self._socket = SocketMode(self.app, self.client, app_token)
        try:
            async with asyncio.TaskGroup() as checks:  # both at once: start-up waits for the slower only
                checks.create_task(check_bot_token(self.client))
                if self._socket is not None:
                    checks.create_task(self._socket.start())
        except* TokenRejected as group:
            await self._close_socket()
            await self._session.close()
            raise group.exceptions[0] from None

    async def _close_socket(self) -> None:
        if self._socket is not None:
            await self._socket.close()
            self._socket = None

    async def handle(self, request: web.Request) -> web.Response:
        """POST /slack/events: commands, events and interactivity on one URL. Work after the
        ack waits while any request is being answered here."""
        with self._after_ack.acking():
            return await to_aiohttp_response(await self.app.async_dispatch(await to_bolt_request(request)))

    async def close(self) -> None:
        """After the HTTP server stopped: close the websocket, let the work of acked requests
        finish, then drop the session."""
        await self._close_socket()
        await self._after_ack.drain(SHUTDOWN_GRACE)
        await self._session.close()

    # -- the notifier port ------------------------------------------------

    async def alert(self, text: str) -> None:
        """An operator alert from the outbox (error rate, latency); a failure here is retried."""
        if self._alert_channel:
            await self.client.chat_postMessage(
                channel=self._alert_channel, text=f":rotating_light: {render.escape(text)}"
            )

    async def notice(self, payload: dict) -> None:
        """A plain message from the outbox (kind notice) to a channel: a link code used, or a
        user's approval denied or lapsed (then payload names the user, and maybe a thread)."""
        user = payload.get("user")
        text = render.escape(payload["text"])
        await self.client.chat_postMessage(
            channel=payload["channel"], thread_ts=payload.get("thread_ts"), text=f"<@{user}> {text}" if user else text
        )

    async def deliver(self, delivery: Delivery, job: Job) -> None:
        await self._delivery.deliver(delivery, job)


class _DropMessage(logging.Filter):
    def __init__(self, message: str) -> None:
        super().__init__()
        self._message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self._message


@contextmanager
def _bolt_token_warning_hidden() -> Iterator[None]:
    """Bolt reads SLACK_BOT_TOKEN itself and warns that it goes unused when a client
    comes too. The token is in the client, so the warning only alarms an operator:
    drop that one message from bolt's logger while the app is built (construction
    does not await, so no other task logs through it meanwhile), and leave the
    environment alone."""
    bolt_log = logging.getLogger(f"slack_bolt.{AsyncApp.__name__}")
    quiet = _DropMessage(warning_client_prioritized_and_token_skipped())
    bolt_log.addFilter(quiet)
    try:
        yield
    finally:
        bolt_log.removeFilter(quiet)
