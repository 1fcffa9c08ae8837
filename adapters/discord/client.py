"""Discord adapter on discord.py: the client (gateway, command sync, guild
checks), its HTTP client, and the notifier port the outbox drives.

What users do is handled in adapters/discord/commands.py, the buttons and
the edit form are in components.py, and what goes out for a job (status
edits, the image in its thread) in delivery.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any, cast

import aiohttp
import discord
import yarl
from discord.http import HTTPClient, Route
from discord.utils import MISSING
from pydantic import SecretStr

from adapters.discord import render
from adapters.discord.commands import Handlers
from adapters.discord.components import ApprovalButton, ConfirmButton, JobButton
from adapters.discord.delivery import PLATFORM, DiscordDelivery
from bot.notify import GiveUp
from bot.service import ImagineService
from bot.settings import Settings
from bot.types import Delivery, Job

log = logging.getLogger(__name__)
# Discord down or unreachable: worth trying again (1 s, 2 s, 4 s ... up to a minute apart).
TRANSIENT = (discord.DiscordServerError, discord.RateLimited, aiohttp.ClientError, OSError, TimeoutError)
FIRST_RETRY, MAX_RETRY = 1.0, 60.0
AUTHENTICATION_FAILED = 4004  # the gateway's close code for a token it does not take
REJECTED = (
    "DISCORD_TOKEN was rejected by Discord ({why}): copy the bot token from the Developer Portal "
    "(your application -> Bot -> Reset Token)"
)
NO_PINGS = discord.AllowedMentions(everyone=False, roles=False, users=True, replied_user=False)


class RebasedHTTPClient(HTTPClient):
    """discord.py's HTTP client, sending what it would send to discord.com to `api_base`
    instead, and dialling `gateway` instead of wss://gateway.discord.gg.

    Why here: discord.py keeps both bases in class attributes (`Route.BASE`,
    `DiscordWebSocket.DEFAULT_GATEWAY`), so setting them would repoint every client in
    the process, and any test or tool that imports discord.py. Every request a client
    makes (bot-token REST, interaction and webhook calls, the gateway websocket) goes
    through its HTTPClient's aiohttp session: discord.py itself reads that session from
    this name-mangled attribute. Wrapping the session when it is set keeps the change
    on this client's own objects."""

    def __init__(self, loop: Any, api_base: str, **options: Any) -> None:
        self.api_base = api_base.rstrip("/")
        self.gateway: yarl.URL | None = None  # from the API's /gateway/bot, once logged in
        super().__init__(loop, **options)

    @property
    def _HTTPClient__session(self) -> Any:
        return self._rebased_session

    @_HTTPClient__session.setter
    def _HTTPClient__session(self, session: Any) -> None:
        self._rebased_session = session if session is MISSING else _RebasedSession(session, self.rebase)

    def rebase(self, url: str | yarl.URL) -> str | yarl.URL:
        """`url` on this client's bases, or unchanged when it is not one of Discord's."""
        text, api = str(url), Route.BASE
        if text == api or text.startswith(api + "/"):
            return self.api_base + text[len(api) :]
        if self.gateway is not None and text.startswith(str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)):
            return str(self.gateway.with_query(yarl.URL(text).query))
        return url


class _RebasedSession:
    """An aiohttp session whose requests and websockets go through `rebase` first."""

    def __init__(self, session: aiohttp.ClientSession, rebase: Any) -> None:
        self._session, self._rebase = session, rebase

    def request(self, method: str, url: str | yarl.URL, **kwargs: Any) -> Any:
        return self._session.request(method, self._rebase(url), **kwargs)

    def ws_connect(self, url: str | yarl.URL, **kwargs: Any) -> Any:
        return self._session.ws_connect(self._rebase(url), **kwargs)

    def __getattr__(self, name: str) -> Any:  # closed, close(), get() for CDN files...
        return getattr(self._session, name)


class ImagineClient(discord.Client):
    def __init__(self, handlers: Handlers, *, api_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if api_url:
            # Tests and proxies: this client's own HTTP client (see RebasedHTTPClient);
            # the connection state hands the same one to interactions and webhooks.
            self.http = self._connection.http = RebasedHTTPClient(self.loop, api_url, connector=kwargs.get("connector"))
        self.handlers = handlers
        handlers.client = self
        self.tree = discord.app_commands.CommandTree(self)
        # Here, not in setup_hook: a login that failed (Discord down) is tried again, and
        # setup_hook with it; the commands must be added once.
        self.add_dynamic_items(JobButton, ConfirmButton, ApprovalButton)
        self.tree.error(self.handlers.on_tree_error)
        self.handlers.add_commands(self.tree)

    async def setup_hook(self) -> None:
        await self.point_gateway()
        await self.tree.sync()

    async def point_gateway(self) -> None:
        """With DISCORD_API_URL, take the gateway URL from that API, as Discord intends;
        discord.py otherwise always connects to its built-in wss://gateway.discord.gg."""
        if isinstance(self.http, RebasedHTTPClient):
            _, url, _ = await self.http.get_bot_gateway()
            self.http.gateway = yarl.URL(url)

    def channel(self, channel_id: int):
        """The cached channel, or one to send to by id when the cache does not have it."""
        channel = self.get_channel(channel_id)
        return channel if channel is not None else self.get_partial_messageable(channel_id)

    async def on_message(self, message: discord.Message) -> None:
        try:
            await self.handlers.on_message(message)
        except Exception:
            log.exception("discord: handling a message failed")

    # At start-up every guild the bot is in arrives as available; a new one as a join.
    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self.handlers.check_guild(guild)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.handlers.check_guild(guild)


class DiscordAdapter:
    platform = PLATFORM

    def __init__(
        self, settings: Settings, service: ImagineService, *, on_rejected: Callable[[str], None] | None = None
    ) -> None:
        # Built only when DISCORD_TOKEN is set (bootstrap checks discord_configured).
        self._token = cast(SecretStr, settings.discord_token).get_secret_value()
        self._alert_channel = int(settings.discord_alert_channel) if settings.discord_alert_channel else None
        # Told, in one line naming DISCORD_TOKEN, when Discord rejects the token (bootstrap ends `run` with exit 4).
        self._on_rejected = on_rejected or (lambda problem: log.critical("discord: %s", problem))
        intents = discord.Intents.default()
        intents.message_content = True  # reply-to-edit reads the reply's text and attachments
        self.client = ImagineClient(
            Handlers(service, self._alert_channel),
            api_url=settings.discord_api_url,
            intents=intents,
            allowed_mentions=NO_PINGS,
        )
        self._delivery = DiscordDelivery(self.client, service)
        self._gateway: asyncio.Task | None = None

    async def start(self) -> None:
        """Log in and connect in the background: Discord being down must not hold up the
        HTTP server, the workers or another platform, nor SIGTERM."""
        self._gateway = asyncio.create_task(self._log_in_and_connect(), name="discord-gateway")
        self._gateway.add_done_callback(_report_gateway_end)

    async def _log_in_and_connect(self) -> None:
        if not await self._log_in():
            return
        try:
            # connect() runs for the bot's lifetime, reconnecting on its own; it only
            # returns on a fatal error (bad token, Message Content intent not enabled).
            await self.client.connect(reconnect=True)
        except discord.ConnectionClosed as exc:
            if exc.code != AUTHENTICATION_FAILED:
                raise
            self._on_rejected(REJECTED.format(why=f"gateway close code {exc.code}, authentication failed"))

    async def _log_in(self) -> bool:
        """GET /users/@me, the application, the command sync: tried until Discord answers.
        False when the token was rejected (reported) or Discord refused us for good (logged)."""
        delay = FIRST_RETRY
        while True:
            try:
                await self.client.login(self._token)
                return True
            except discord.LoginFailure:
                self._on_rejected(REJECTED.format(why="401 Unauthorized on GET /users/@me"))
                return False
            except TRANSIENT as exc:
                log.warning("discord: Discord cannot be reached (%s); trying again in %.0f s", _why(exc), delay)
            except discord.HTTPException as exc:  # 403 Missing Access on the command sync, and such
                log.critical("discord: Discord refused the start-up: %s; Discord is off until a restart", _why(exc))
                return False
            # The failed attempt's HTTP session goes; the next login opens its own.
            await self.client.http.close()
            self.client.http.connector = MISSING
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, MAX_RETRY)

    async def close(self) -> None:
        await self.client.close()
        if self._gateway is not None:
            self._gateway.cancel()  # still waiting to log in again; a closed client's connect() has returned
            await asyncio.gather(self._gateway, return_exceptions=True)

    # -- the notifier port ------------------------------------------------

    async def alert(self, text: str) -> None:
        """An operator alert from the outbox (error rate, latency); a failure here is retried."""
        if self._alert_channel is None:
            return
        try:
            await self.client.channel(self._alert_channel).send(f"🚨 {render.clip(text)}")
        except (discord.Forbidden, discord.NotFound) as exc:
            raise GiveUp(f"alert channel: {exc.status} {exc.text}") from exc

    async def notice(self, payload: dict) -> None:
        """A plain message from the outbox (kind notice) to a channel: a link code used, or a
        user's approval denied or lapsed (then payload names the user, the only one pinged)."""
        user = payload.get("user")
        text = f"<@{user}> {payload['text']}" if user else payload["text"]
        try:
            await self.client.channel(int(payload["channel"])).send(
                render.clip(text),
                # Only the requester is pinged, whatever the prompt quoted in the text says.
                allowed_mentions=discord.AllowedMentions(
                    everyone=False, roles=False, users=[discord.Object(int(user))] if user else False
                ),
            )
        except (discord.Forbidden, discord.NotFound) as exc:
            raise GiveUp(f"notice channel: {exc.status} {exc.text}") from exc

    async def deliver(self, delivery: Delivery, job: Job) -> None:
        await self._delivery.deliver(delivery, job)


def _why(exc: BaseException) -> str:
    if isinstance(exc, discord.HTTPException):
        return f"HTTP {exc.status} {exc.response.reason}"  # the body may be a whole HTML error page
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _report_gateway_end(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        error = task.exception()
        hint = (
            " Turn on the Message Content intent in the Developer Portal (Bot -> Privileged Gateway Intents)."
            if isinstance(error, discord.PrivilegedIntentsRequired)
            else ""
        )
        log.critical("discord: the gateway connection ended for good: %s.%s", error, hint, exc_info=error)
