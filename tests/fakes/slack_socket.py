"""A loopback fake of Slack's Socket Mode: apps.connections.open and the websocket it points at.

``FakeSlackSocket`` is the fake Web API (tests/fakes/slack_server.py) plus Socket Mode, so one
``SLACK_API_URL`` serves both, as slack.com does. What it follows of the real service
(docs.slack.dev "Using Socket Mode", "apps.connections.open"):

* ``POST /api/apps.connections.open`` takes only an app-level token (``xapp-...``) and only in
  the ``Authorization: Bearer`` header; a bot or user token gets ``not_allowed_token_type``, an
  unknown app token (or one sent as a POST parameter) ``invalid_auth``. It answers
  ``{"ok": true, "url": "ws://127.0.0.1:PORT/link/?ticket=...&app_id=..."}``; each ticket is
  good for one connection. An app token is refused by every other method.
* On the websocket Slack first sends ``{"type": "hello", ...}``, then envelopes:
  ``{"envelope_id", "type": "slash_commands" | "interactive" | "events_api", "payload",
  "accepts_response_payload", ...}``; the app acks each with ``{"envelope_id": ...}``, plus
  ``"payload"`` when it answers (a slash command's ephemeral reply). A slash command's payload
  is its form fields as a JSON object of strings; an interactive one is the block_actions object;
  an events_api one is the event_callback body.
* ``fake.disconnect(reason)`` sends ``{"type": "disconnect", "reason": ...}`` (``refresh_requested``,
  ``warning``), after which the app opens a new connection; ``fake.drop()`` just closes it.

Test controls: ``stalled`` (API methods that never answer), ``send_command/send_action/
send_event`` (each returns the envelope id), ``wait_connected()``, ``wait_ack(envelope_id)``;
records in ``fake.acks`` (envelope id -> the ack message) and ``fake.connections`` (one per
websocket, open or closed).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.fakes.slack_model import Call, SlackError
from tests.fakes.slack_requests import block_action_body, event_body, slash_command_body
from tests.fakes.slack_server import FakeSlack

__all__ = ["FakeSlackSocket", "Connection"]


@dataclass
class Connection:
    ticket: str
    ws: web.WebSocketResponse
    received: list[dict] = field(default_factory=list)  # every JSON message the app sent on it

    @property
    def open(self) -> bool:
        return not self.ws.closed


class FakeSlackSocket(FakeSlack):
    label = "Slack (Socket Mode)"

    def __init__(self, *, app_token: str = "xapp-1-A1-1-test", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app_token = app_token
        self.connections: list[Connection] = []
        self.acks: dict[str, dict] = {}
        self.sent: list[dict] = []  # envelopes sent, oldest first
        self._tickets: set[str] = set()
        self.stalled: set[str] = set()  # API methods that never answer (a Slack that hangs)
        self._methods["apps.connections.open"] = self._connections_open
        self._ws_root = ""
        self._numbers = itertools.count(1)

    # -- lifecycle --------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = super()._app()
        app.router.add_get("/link/", self._link)
        return app

    def _set_urls(self, root: str) -> None:
        super()._set_urls(root)
        self._ws_root = "ws" + root.removeprefix("http")

    async def _before_cleanup(self) -> None:
        await super()._before_cleanup()
        for connection in self.connections:
            if connection.open:
                await connection.ws.close()

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if method in self.stalled:
            self.calls.append(Call(method, {}, {k.lower(): v for k, v in request.headers.items()}))
            await asyncio.Event().wait()  # until the client gives up or the fake stops
        return await super()._api(request)

    # -- apps.connections.open ---------------------------------------------------------

    def _check_token(self, method: str, token: str, from_header: bool) -> None:
        if method != "apps.connections.open":
            if token.startswith("xapp-"):
                raise SlackError("not_allowed_token_type")
            super()._check_token(method, token, from_header)
            return
        if not token.startswith("xapp-"):
            raise SlackError("not_allowed_token_type")
        # "passing it as a POST parameter will result in an error"
        if token != self.app_token or not from_header:
            raise SlackError("invalid_auth")

    def _connections_open(self, args: dict) -> dict:
        ticket = secrets.token_hex(8)
        self._tickets.add(ticket)
        return {"url": f"{self._ws_root}/link/?ticket={ticket}&app_id={self.app_id}"}

    # -- the websocket ----------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:  # unknown or already used: refused before the upgrade
            return web.Response(status=401, text="invalid ticket", content_type="text/plain")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse()  # autoping: answers the SDK's pings with pongs
        await ws.prepare(request)
        connection = Connection(ticket, ws)
        self.connections.append(connection)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": sum(c.open for c in self.connections),
                "debug_info": {"host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
        )
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                body = json.loads(message.data)
            except ValueError:
                continue  # Slack ignores what it cannot read; the envelope then goes unacked
            connection.received.append(body)
            if isinstance(body, dict) and body.get("envelope_id") in self._sent_ids():
                self.acks.setdefault(body["envelope_id"], body)
        return ws

    def _sent_ids(self) -> set[str]:
        return {e["envelope_id"] for e in self.sent}

    # -- test controls ----------------------------------------------------------------

    def live(self) -> Connection:
        """The newest open connection; fails when the app is not connected."""
        for connection in reversed(self.connections):
            if connection.open:
                return connection
        raise AssertionError("no Socket Mode connection is open\n" + self.summary())

    async def wait_connected(self, count: int = 1, timeout: float = 10.0) -> Connection:
        """Until `count` connections were made and one is open: the open one."""
        await self.wait_for(lambda: len(self.connections) >= count and any(c.open for c in self.connections), timeout)
        return self.live()

    async def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict:
        """The app's ack of an envelope (with its "payload", if it answered)."""
        await self.wait_for(lambda: envelope_id in self.acks, timeout)
        return self.acks[envelope_id]

    async def send(self, kind: str, payload: dict, *, accepts_response_payload: bool) -> str:
        """Send one envelope on the live connection; its id."""
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "payload": payload,
            "type": kind,
            "accepts_response_payload": accepts_response_payload,
        }
        if kind == "events_api":
            envelope.update(retry_attempt=0, retry_reason="")
        self.sent.append(envelope)
        await self.live().ws.send_json(envelope)
        return envelope["envelope_id"]

    async def send_command(self, command: str, text: str, **kwargs: Any) -> str:
        """A slash command (slash_command_body's keyword arguments)."""
        payload = dict(parse_qsl(slash_command_body(command, text, api_app_id=self.app_id, **kwargs)))
        return await self.send("slash_commands", payload, accepts_response_payload=True)

    async def send_action(self, action_id: str, value: str, **kwargs: Any) -> str:
        """A button click (block_action_body's keyword arguments)."""
        [(_, raw)] = parse_qsl(block_action_body(action_id, value, api_app_id=self.app_id, **kwargs))
        return await self.send("interactive", json.loads(raw), accepts_response_payload=False)

    async def send_event(self, event: dict, *, event_id: str | None = None) -> str:
        body = event_body(event, event_id=event_id or f"Ev{next(self._numbers):08d}", api_app_id=self.app_id)
        return await self.send("events_api", json.loads(body), accepts_response_payload=False)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the app to reconnect, as Slack does every few hours. Like Slack, the old socket stays
        open meanwhile (the app closes it once its new one is up), so no envelope is lost."""
        await self.live().ws.send_json(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake-1"}}
        )

    async def drop(self) -> None:
        """Close the live socket without a word, as a network failure would."""
        await self.live().ws.close()

    def summary(self) -> str:
        sockets = ", ".join(f"{'open' if c.open else 'closed'}" for c in self.connections) or "none"
        return f"{super().summary()}\n  websockets: {sockets}; envelopes sent {len(self.sent)}, acked {len(self.acks)}"
