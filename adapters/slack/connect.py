"""Meeting Slack at start-up: the bot token checked once (auth.test), and Socket Mode's websocket
opened without holding up the rest of the bot.

A token Slack refuses will never work, so it stops start-up with one line naming the variable
(TokenRejected; bootstrap turns it into exit 4). Anything else (a 5xx, a refused connection, a
Slack that does not answer) may pass: the bot starts anyway and Socket Mode keeps trying in the
background, one warning line per attempt. slack_sdk's own loop would retry a rejected token for
ever, with a traceback every 10 s, and block start-up while it does; it only takes over once a
websocket URL has been issued.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

# How long start-up waits for Slack's first answer before going on without it: well inside the
# shutdown grace, so a SIGTERM during start-up is still honoured in time.
FIRST_ANSWER_SECONDS = 3.0
RETRY_FIRST, RETRY_MAX = 1.0, 60.0

# Errors that say the token itself is refused: retrying cannot help.
_REJECTED = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "not_allowed_token_type",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "no_permission",
    }
)
# What to do, by variable and Slack's error; "" is the variable's general advice.
_APP_TOKEN_PAGE = "the app's Basic Information page (App-Level Tokens)"
_HINTS = {
    ("SLACK_APP_TOKEN", "not_allowed_token_type"): (
        f"Socket Mode needs the app-level token (xapp-...) from {_APP_TOKEN_PAGE}, not the bot token (xoxb-...)"
    ),
    ("SLACK_APP_TOKEN", "missing_scope"): "give the app-level token the connections:write scope",
    ("SLACK_APP_TOKEN", ""): f"create an app-level token (xapp-...) with connections:write on {_APP_TOKEN_PAGE}",
    ("SLACK_BOT_TOKEN", ""): "use the Bot User OAuth Token (xoxb-...) from OAuth & Permissions, with the app installed",
}
# What may pass: Slack down or slow, the network in the way.
_TRANSIENT = (SlackApiError, aiohttp.ClientError, OSError, TimeoutError)


class TokenRejected(Exception):
    """Slack refused a token: the message names the variable, Slack's error and what to do."""

    def __init__(self, variable: str, method: str, error: str) -> None:
        hint = _HINTS.get((variable, error)) or _HINTS[(variable, "")]
        super().__init__(f"{variable} was rejected by Slack ({method}: {error}): {hint}.")


def _rejection(exc: SlackApiError) -> str | None:
    """Slack's error code when it refused the token itself; None for anything that may pass."""
    response = exc.response
    error = response.get("error") if isinstance(response.data, dict) else None
    return error if response.status_code == 200 and error in _REJECTED else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        return f"HTTP {exc.response.status_code}" + (f" {error}" if error else "")
    if isinstance(exc, TimeoutError):
        return f"no answer within {FIRST_ANSWER_SECONDS:.0f} s"
    return str(exc) or type(exc).__name__


async def check_bot_token(client: AsyncWebClient) -> None:
    """auth.test once: TokenRejected when Slack refuses SLACK_BOT_TOKEN; a warning if it cannot be asked."""
    try:
        async with asyncio.timeout(FIRST_ANSWER_SECONDS):
            await client.auth_test()
    except SlackApiError as exc:
        if error := _rejection(exc):
            raise TokenRejected("SLACK_BOT_TOKEN", "auth.test", error) from None
        log.warning("Slack: auth.test failed (%s); starting anyway", _describe(exc))
    except _TRANSIENT as exc:
        log.warning("Slack: auth.test failed (%s); starting anyway", _describe(exc))


class SocketMode:
    """Slack's events and commands over a websocket (SLACK_APP_TOKEN) instead of /slack/events."""

    def __init__(self, app: AsyncApp, client: AsyncWebClient, app_token: str) -> None:
        self._app, self._client, self._token = app, client, app_token
        self._task: asyncio.Task | None = None
        self._handler: AsyncSocketModeHandler | None = None

    async def start(self) -> None:
        """Ask for a websocket URL once: TokenRejected if Slack refuses the app token. Otherwise
        connect in the background, retrying while Slack cannot be reached; this never waits
        longer than FIRST_ANSWER_SECONDS."""
        url: str | None = None
        try:
            url = await self._open()
        except _TRANSIENT as exc:
            log.warning(
                "Slack Socket Mode: apps.connections.open failed (%s); retrying in the background", _describe(exc)
            )
        self._task = asyncio.create_task(self._connect(url), name="slack-socket-mode")

    async def _open(self) -> str:
        try:
            async with asyncio.timeout(FIRST_ANSWER_SECONDS):
                response = await self._client.apps_connections_open(app_token=self._token)
        except SlackApiError as exc:
            if error := _rejection(exc):
                raise TokenRejected("SLACK_APP_TOKEN", "apps.connections.open", error) from None
            raise
        return str(response["url"])

    async def _connect(self, url: str | None) -> None:
        delay = RETRY_FIRST
        while url is None:
            await asyncio.sleep(delay)
            try:
                url = await self._open()
            except TokenRejected as exc:  # revoked while we waited: say so once and stop trying
                log.error("Slack Socket Mode stopped: %s", exc)
                return
            except _TRANSIENT as exc:
                delay = min(delay * 2, RETRY_MAX)
                log.warning(
                    "Slack Socket Mode: apps.connections.open failed (%s); retrying in %.0f s", _describe(exc), delay
                )
        # The SDK takes over from here: it keeps the websocket alive and reconnects when Slack asks.
        self._handler = AsyncSocketModeHandler(self._app, self._token, web_client=self._client)
        self._handler.client.wss_uri = url
        await self._handler.client.connect()
        log.info("Slack Socket Mode connected")

    async def close(self) -> None:
        """Stop trying, and close the websocket: no new envelope is taken after this."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._handler is not None:
            await self._handler.close_async()
