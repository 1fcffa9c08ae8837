"""A loopback fake of Discord: the REST API v10 and a minimal gateway websocket.

It answers with the JSON Discord sends, so the unmodified discord.py client runs against it
once pointed here (both are class attributes: restore them after the test):

    discord.http.Route.BASE = f"{fake.url}/api/v10"       # interaction webhooks use it too
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

Test code plays Discord's users: ``await fake.slash("imagine", {"prompt": "a cat"}, user_id=42)``,
``fake.click(custom_id, message, user_id=42)``, ``fake.user_message("hi", user_id=42)``. What the
bot did is in ``fake.calls`` (every REST call), ``fake.messages`` (per channel or thread, with
edits and deletes applied), ``fake.interaction_responses`` and ``fake.threads``.

Wire format, as discord.py 2.7 uses it:
* login: GET /users/@me, then GET /oauth2/applications/@me. Client.connect() never asks
  /gateway/bot (only AutoShardedClient does): it dials DEFAULT_GATEWAY with
  ``?v=10&encoding=json&compress=zlib-stream`` (``zstd-stream`` when the zstandard package or
  Python 3.14's compression.zstd is importable). zlib-stream means every frame we send is a
  binary chunk of ONE zlib stream per connection, each ending in a Z_SYNC_FLUSH
  (00 00 ff ff); the client always sends plain text frames.
* a REST body is parsed as JSON only when Content-Type is exactly "application/json";
  aiohttp's web.json_response appends "; charset=utf-8", which makes every answer a str.
* files: multipart/form-data with a "payload_json" part and "files[n]" parts (sent as
  application/octet-stream); payload "attachments": [{"id": n, "filename": ...}] points at
  files[n], and on edits existing attachments are listed by their snowflake to keep them.
* a 429 is honoured only with a "Via" header (without it discord.py assumes a Cloudflare ban
  and raises); 500/502/504 are retried after sleeping 1 s, 3 s, 5 s...
* interaction callbacks always carry ``?with_response=1`` and read the callback JSON back;
  interaction webhook routes (followups, @original) are sent without an Authorization header.
* a plain Client.close() reaches the gateway as close code 4000, not 1000 (aiohttp wakes the
  reader task, which closes first), so its session stays resumable here as on Discord.

Discord behaviour the fake keeps, because bots trip over it: a callback later than 3 s gets
10062 Unknown interaction, a second one 40060; the first followup after a deferred response
edits the "thinking" message instead of posting; without the MESSAGE_CONTENT intent other
people's messages arrive blank unless they mention the bot; the bot gets MESSAGE_CREATE for
its own messages; ephemeral messages are invisible to the bot-token channel routes.

Standalone: ``python -m tests.fakes.discord_server --port 8090``.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import json
import math
import mimetypes
import re
import secrets
import time
import zlib
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiohttp import WSMsgType, web

from tests.fakes.loopback import LoopbackServer

API = "/api/v10"
DISCORD_EPOCH = 1_420_070_400_000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE, ADD_REACTIONS, VIEW_CHANNEL, SEND_MESSAGES = 1 << 0, 1 << 6, 1 << 10, 1 << 11
MANAGE_GUILD, MANAGE_MESSAGES, EMBED_LINKS, ATTACH_FILES = 1 << 5, 1 << 13, 1 << 14, 1 << 15
READ_MESSAGE_HISTORY, USE_EXTERNAL_EMOJIS, CHANGE_NICKNAME = 1 << 16, 1 << 18, 1 << 26
USE_APPLICATION_COMMANDS, MANAGE_THREADS, CREATE_PUBLIC_THREADS = 1 << 31, 1 << 34, 1 << 35
CREATE_PRIVATE_THREADS, SEND_MESSAGES_IN_THREADS, SEND_POLLS = 1 << 36, 1 << 38, 1 << 49
EVERYONE_PERMISSIONS = (CREATE_INSTANT_INVITE | ADD_REACTIONS | VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS
                        | ATTACH_FILES | READ_MESSAGE_HISTORY | USE_EXTERNAL_EMOJIS | CHANGE_NICKNAME
                        | USE_APPLICATION_COMMANDS | CREATE_PUBLIC_THREADS | CREATE_PRIVATE_THREADS
                        | SEND_MESSAGES_IN_THREADS | SEND_POLLS)
BOT_ROLE_PERMISSIONS = EVERYONE_PERMISSIONS | MANAGE_MESSAGES | MANAGE_THREADS

# Gateway intents the fake honours (the rest are accepted and ignored).
GUILD_MESSAGES, GUILD_PRESENCES, MESSAGE_CONTENT = 1 << 9, 1 << 8, 1 << 15

# Message flags.
SUPPRESS_EMBEDS, HAS_THREAD, EPHEMERAL, LOADING = 1 << 2, 1 << 5, 1 << 6, 1 << 7
SUPPRESS_NOTIFICATIONS, IS_COMPONENTS_V2 = 1 << 12, 1 << 15
SENDABLE_FLAGS = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2
INTERACTION_FLAGS = SENDABLE_FLAGS | EPHEMERAL

# GATEWAY_GUILD_MEMBERS_LIMITED | GATEWAY_MESSAGE_CONTENT_LIMITED | APPLICATION_COMMAND_BADGE:
# what an unverified bot with the privileged intents switched on in the portal has.
APP_FLAGS = (1 << 15) | (1 << 19) | (1 << 23)
TRACE = ['["gateway-prd-fake-0",{"micros":1200,"calls":[]}]']

ERRORS = {  # status -> Discord's default (message, code) for injected failures
    400: ("400: Bad Request", 0), 401: ("401: Unauthorized", 0), 403: ("Missing Access", 50001),
    404: ("404: Not Found", 0), 405: ("405: Method Not Allowed", 0),
    413: ("Request entity too large", 40005), 500: ("500: Internal Server Error", 0),
    502: ("502: Bad Gateway", 0), 503: ("503: Service Unavailable", 0), 504: ("504: Gateway Timeout", 0),
}


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))  # Discord sends compact JSON


def _iso(snowflake: int) -> str:
    """The creation time a snowflake encodes, in Discord's timestamp format."""
    ms = (snowflake >> 22) + DISCORD_EPOCH
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="microseconds")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class DiscordError(Exception):
    """Raised inside a route handler; becomes Discord's JSON error body."""

    def __init__(self, status: int, message: str, code: int = 0, errors: dict | None = None):
        super().__init__(f"{status} {message} ({code})")
        self.status = status
        self.body = {"message": message, "code": code}
        if errors is not None:
            self.body["errors"] = errors


def _form_error(path: list, code: str, message: str) -> DiscordError:
    """400 Invalid Form Body with Discord's nested "errors" tree for one field."""
    tree: dict = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        tree = {str(key): tree}
    return DiscordError(400, "Invalid Form Body", 50035, tree)


def unknown(what: str) -> DiscordError:
    codes = {"Channel": 10003, "Guild": 10004, "Member": 10007, "Message": 10008, "User": 10013,
             "Webhook": 10015, "interaction": 10062}
    return DiscordError(404, f"Unknown {what}", codes[what])


@dataclass
class Call:
    method: str
    path: str  # below /api/v10, e.g. "/channels/3000/messages"
    json: dict | list | None  # the JSON body, or the multipart "payload_json"
    files: list[tuple[str, bytes]]  # multipart file parts: (filename, data)
    headers: dict[str, str]  # keys lower-cased
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Message:
    id: int
    channel_id: int
    author_id: int
    content: str
    embeds: list
    components: list
    attachments: list[dict]  # attachment objects as Discord sends them; bytes in fake.blobs
    reference_id: int | None
    deleted: bool = False
    flags: int = 0
    webhook_interaction: int | None = None  # the interaction whose webhook posted it
    type: int = 0  # 0 default, 19 reply, 20 slash command response, 23 context menu response
    edited_timestamp: str | None = None
    tts: bool = False
    nonce: str | None = None
    interaction_metadata: dict | None = field(default=None, repr=False)
    mention_ids: list[int] = field(default_factory=list, repr=False)  # users pinged (replies)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred response still showing "<bot> is thinking..."."""
        return bool(self.flags & LOADING)

    @property
    def timestamp(self) -> str:
        return _iso(self.id)


@dataclass
class Thread:
    id: int
    parent_id: int
    name: str
    starter_message_id: int | None
    type: int = 11  # 11 public, 12 private
    owner_id: int = 0
    auto_archive_duration: int = 1440
    archived: bool = False


@dataclass
class Interaction:
    id: int
    token: str
    type: int  # 2 application command, 3 message component, 5 modal submit
    channel_id: int
    user_id: int


@dataclass
class _Pending:
    """What the fake tracks about one interaction and its webhook token."""
    interaction: Interaction
    payload: dict  # the INTERACTION_CREATE body
    created: float  # monotonic
    metadata: dict  # interaction_metadata for the messages it creates
    message_type: int = 0  # type of the message a callback creates
    message_id: int | None = None  # the message a clicked component sits on
    callback: int | None = None  # the accepted callback type
    original_id: int | None = None
    message_ids: set[int] = field(default_factory=set)  # original + followups
    deferred_open: bool = False  # a type-5 "thinking" message the first followup fills in
    expired: bool = False


@dataclass
class _File:
    index: int
    filename: str
    data: bytes


@dataclass
class _Body:
    json: dict | list | None
    files: list[_File]


class _Conn:
    """One gateway websocket; frames go out through one compressor, in order."""

    def __init__(self, ws: web.WebSocketResponse, compress: str | None):
        self.ws = ws
        self.compress = compress
        self.session: _Session | None = None
        self._lock = asyncio.Lock()
        self._pack = _packer(compress)

    async def send(self, frame: dict) -> None:
        raw = _dumps(frame)
        async with self._lock:  # the compressor is a stream: pack and send atomically
            if self.ws.closed:
                return
            data = self._pack(raw)
            try:
                if isinstance(data, str):
                    await self.ws.send_str(data)
                else:
                    await self.ws.send_bytes(data)
            except (ConnectionError, RuntimeError):
                pass  # the client went away mid-send; its session stays resumable

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code=code, message=reason.encode())


def _packer(compress: str | None):
    if compress == "zlib-stream":
        z = zlib.compressobj()
        return lambda raw: z.compress(raw.encode()) + z.flush(zlib.Z_SYNC_FLUSH)
    if compress == "zstd-stream":
        try:  # discord.py prefers zstandard, then Python 3.14's compression.zstd
            import zstandard
            zc = zstandard.ZstdCompressor().compressobj()
            return lambda raw: zc.compress(raw.encode()) + zc.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        except ImportError:
            from compression import zstd  # type: ignore[import-not-found]
            zs = zstd.ZstdCompressor()
            return lambda raw: zs.compress(raw.encode(), mode=zstd.ZstdCompressor.FLUSH_BLOCK)
    return lambda raw: raw


@dataclass
class _Session:
    id: str
    intents: int
    shard: list | None
    seq: int = 0
    log: deque = field(default_factory=lambda: deque(maxlen=1000))  # for RESUME replays
    conn: _Conn | None = None


class FakeDiscord(LoopbackServer):
    """One guild (guild_id) with one text channel (channel_id), the bot as a member, and
    users added on demand. Test controls: add_member / add_channel / attachment, the user
    actions (slash, message_command, click, submit_modal, user_message), expire_token,
    fail_next, reconnect_clients; inspect calls, messages, threads, commands,
    interaction_responses, events. slash() checks options against the synced command
    (types, choices, ranges, required) as Discord's client does, and raises AssertionError
    for what no real user could send."""

    label = "Discord"

    heartbeat_interval = 41250  # ms, what Discord sends in HELLO
    callback_deadline: float | None = 3.0  # s to answer an interaction; None turns the check off
    ratelimit_limit = 50  # sent on every response; Remaining stays at limit-1 so nobody sleeps
    _runner_options = {"handler_cancellation": True, "shutdown_timeout": 0.1}

    def __init__(self, *, token: str = "bot-token", app_id: int = 1000, bot_user_id: int = 1000,
                 guild_id: int = 2000, channel_id: int = 3000, upload_limit: int = 10 * 1024 * 1024):
        self.token, self.app_id, self.bot_user_id = token, app_id, bot_user_id
        self.guild_id, self.channel_id, self.upload_limit = guild_id, channel_id, upload_limit
        self.bot_name = "imagine"
        self.url = self.gateway_url = ""
        self.calls: list[Call] = []
        self.messages: dict[int, list[Message]] = defaultdict(list)
        self.threads: dict[int, Thread] = {}
        self.commands: list[dict] = []  # the last synced list (global or guild)
        self.global_commands: list[dict] = []
        self.guild_commands: dict[int, list[dict]] = {}
        self.interaction_responses: dict[int, list[dict]] = defaultdict(list)
        self.interactions: dict[int, Interaction] = {}
        self.identified = asyncio.Event()
        self.blobs: dict[int, bytes] = {}  # attachment id -> bytes
        self.downloads: list[str] = []  # attachment paths fetched
        self.events: list[tuple[str, dict]] = []  # every gateway dispatch (event, data)
        self.gateway_connections: list[dict[str, str]] = []  # the query of each websocket
        self.gateway_received: list[dict] = []  # every frame a client sent (heartbeats too)
        self.channels: dict[int, dict] = {channel_id: {"name": "general", "position": 0, "topic": None}}
        # Every guild the bot is in: the main one, and bare extra ones (add_guild) that it may leave.
        self.guilds: dict[int, str] = {guild_id: "Imagine Test"}
        self.left_guilds: list[int] = []  # in the order the bot left them (DELETE /users/@me/guilds/{id})
        self._roles = {guild_id: ("@everyone", EVERYONE_PERMISSIONS, 0),
                       guild_id + 1: (self.bot_name, BOT_ROLE_PERMISSIONS, 2),
                       guild_id + 2: ("Moderators", MANAGE_GUILD | MANAGE_MESSAGES, 1)}
        self._members: dict[int, dict] = {}
        self._pending: dict[str, _Pending] = {}  # token -> interaction state
        self._modals: dict[tuple[int, str], tuple[dict, _Pending]] = {}  # (user, custom_id) -> shown modal
        self._failures: list[tuple[str, re.Pattern, int, dict | None, float | None]] = []
        self._sessions: dict[str, _Session] = {}
        self._conns: set[_Conn] = set()
        self._last_id = 0
        self._add_member_record(bot_user_id, self._bot_user(), roles=[guild_id + 1])
        self._routes = self._route_table()

    # -- lifecycle --------------------------------------------------------------------

    def _app(self) -> web.Application:
        # Uploads are streamed through request.multipart(), which client_max_size does not cap;
        # the cap only guards JSON bodies.
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", API + "/{tail:.*}", self._rest)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{channel}/{id}/{filename}", self._download)
        return app

    def _set_urls(self, root: str) -> None:
        self.url = root
        self.gateway_url = root.replace("http://", "ws://", 1) + "/gateway"

    async def _before_cleanup(self) -> None:
        # Websockets keep their handlers alive: close them first or cleanup waits on them.
        for conn in list(self._conns):
            await conn.close(1001, "Discord is going away")

    def _banner(self) -> str:
        return f"REST {self.url}{API}  gateway {self.gateway_url}"

    # -- test controls: the guild -----------------------------------------------------

    def add_member(self, user_id: int, *, manage_guild: bool = False, name: str | None = None) -> dict:
        """A guild member; with manage_guild they hold the Moderators role (MANAGE_GUILD)."""
        name = name or f"user{user_id}"
        user = {"id": str(user_id), "username": name, "global_name": name.title(), "discriminator": "0",
                "avatar": None, "public_flags": 0, "flags": 0, "banner": None, "accent_color": None,
                "avatar_decoration_data": None, "collectibles": None, "primary_guild": None, "clan": None}
        self._add_member_record(user_id, user, roles=[self.guild_id + 2] if manage_guild else [])
        return self._member_json(user_id, permissions=True)

    def add_channel(self, channel_id: int, *, name: str = "other", topic: str | None = None) -> None:
        """Another text channel; add it before the client connects (GUILD_CREATE carries it)."""
        self.channels[channel_id] = {"name": name, "position": len(self.channels), "topic": topic}

    async def add_guild(self, guild_id: int, *, name: str = "Another server") -> None:
        """A bare guild (no channels, only the bot) the bot is in: added before the client
        connects it arrives with READY; added later it is a join (GUILD_CREATE to every session)."""
        self.guilds[guild_id] = name
        for s in list(self._sessions.values()):
            if self._on_shard(s, guild_id):
                await self._dispatch("GUILD_CREATE", self._guild_create_json(s, guild_id), sessions=[s])

    def attachment(self, data: bytes, *, filename: str = "photo.png", content_type: str = "image/png") -> dict:
        """An attachment object as a user's upload appears in a message or interaction."""
        return self._store_attachment(self.channel_id, filename, data, content_type=content_type)

    def attachment_bytes(self, attachment: dict) -> bytes:
        return self.blobs[int(attachment["id"])]

    def expire_token(self, interaction: Interaction) -> None:
        """From now on the interaction's webhook answers 401 50027, as after 15 minutes."""
        self._pending[interaction.token].expired = True

    def fail_next(self, method: str, path_regex: str, status: int, body: dict | None = None,
                  retry_after: float | None = None) -> None:
        """Answer the next REST call matching METHOD (or "*") and re.search(path_regex, path)
        with an error. A 429 gets Discord's rate-limit headers and JSON (retry_after defaults
        to 0.05 s). discord.py retries 429s and 5xx (the latter after >= 1 s of sleep)."""
        self._failures.append((method.upper(), re.compile(path_regex), status, body, retry_after))

    def modal_open(self, user_id: int) -> bool:
        return any(uid == user_id for uid, _ in self._modals)

    def shown_modal(self, user_id: int) -> dict:
        """The last modal (callback type 9 "data") shown to a user and not yet submitted.
        discord.py gives a Modal a random custom_id unless the bot sets one: read it here."""
        shown = [data for (uid, _), (data, _) in self._modals.items() if uid == user_id]
        if not shown:
            raise AssertionError(f"no modal is open for user {user_id}")
        return shown[-1]

    def calls_to(self, method: str, path_regex: str) -> list[Call]:
        pattern = re.compile(path_regex)
        return [c for c in self.calls if (method == "*" or c.method == method.upper()) and pattern.search(c.path)]

    def posted(self, channel_id: int | None = None) -> list[Message]:
        """Live (not deleted) messages in a channel or thread, ephemeral ones included."""
        return [m for m in self.messages.get(channel_id or self.channel_id, []) if not m.deleted]

    def message(self, message_id: int) -> Message:
        for messages in self.messages.values():
            for m in messages:
                if m.id == message_id:
                    return m
        raise KeyError(message_id)

    def summary(self) -> str:
        def short(v):
            s = _dumps(v)
            return s if len(s) <= 100 else s[:97] + "..."
        lines = [f"  {c.method} {c.path}" + (f" {short(c.json)}" if c.json is not None else "")
                 + (f" files={[f for f, _ in c.files]}" if c.files else "") for c in self.calls]
        events = [e for e, _ in self.events]
        return "\n".join(lines or ["  (none)"]) + f"\n  gateway dispatches: {events}"

    # -- test controls: users act ----------------------------------------------------

    async def slash(self, name: str, options: dict | None = None, *, user_id: int, channel_id: int | None = None,
                    attachment: dict | None = None) -> Interaction:
        """A user runs a synced chat-input command; "group sub" names reach subcommands."""
        root, *subs = name.split()
        command, guild_id = self._find_command(root, 1)
        options = dict(options or {})
        defs, chain = command.get("options") or [], []
        for sub in subs:  # descend into subcommand groups / subcommands
            match = next((o for o in defs if o["name"] == sub and o["type"] in (1, 2)), None)
            if match is None:
                raise AssertionError(f"/{name}: {sub!r} is not a subcommand of /{root}")
            chain.append(match)
            defs = match.get("options") or []
        if attachment is not None:
            slot = next((o["name"] for o in defs if o["type"] == 11 and o["name"] not in options), None)
            if slot is None:
                raise AssertionError(f"/{name} has no free attachment option for attachment=")
            options[slot] = attachment
        resolved: dict = {}
        built = self._build_options(name, defs, options, resolved)
        for sub in reversed(chain):
            built = [{"name": sub["name"], "type": sub["type"], "options": built}]
        data = {"id": command["id"], "name": root, "type": 1}
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return await self._interact(2, user_id, channel_id or self.channel_id, data, message_type=20,
                                    metadata={"name": name, "command_type": 1})

    async def message_command(self, name: str, target: Message, *, user_id: int) -> Interaction:
        """A user picks Apps > <name> on a message (a MESSAGE context menu command)."""
        command, guild_id = self._find_command(name, 3)
        data = {"id": command["id"], "name": name, "type": 3, "target_id": str(target.id),
                "resolved": {"messages": {str(target.id): self._message_json(target)}}}
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return await self._interact(2, user_id, target.channel_id, data, message_type=23,
                                    metadata={"name": name, "command_type": 3, "target_message_id": str(target.id)})

    async def click(self, custom_id: str, message: Message, *, user_id: int) -> Interaction:
        """A user clicks a button on a message."""
        component = next((c for c in _walk(message.components) if c.get("custom_id") == custom_id), None)
        if component is None or component.get("type") != 2:
            ids = [c.get("custom_id") for c in _walk(message.components) if c.get("custom_id")]
            raise AssertionError(f"message {message.id} has no button {custom_id!r}; it has {ids}")
        if component.get("disabled"):
            raise AssertionError(f"button {custom_id!r} is disabled: Discord would not send the click")
        if message.deleted:
            raise AssertionError(f"message {message.id} is deleted")
        data = {"component_type": 2, "custom_id": custom_id}
        if "id" in component:
            data["id"] = component["id"]
        return await self._interact(3, user_id, message.channel_id, data, message=message,
                                    metadata={"interacted_message_id": str(message.id)})

    async def submit_modal(self, custom_id: str, values: dict[str, str], *, user_id: int,
                           channel_id: int | None = None) -> Interaction:
        """A user fills in and submits a modal the bot showed them (callback type 9)."""
        shown = self._modals.pop((user_id, custom_id), None)
        if shown is None:
            raise AssertionError(f"no modal {custom_id!r} was shown to user {user_id}; shown: "
                                 f"{[k for k in self._modals]}")
        modal, origin = shown
        components, seen = [], set()
        for top in modal.get("components", []):
            if top.get("type") == 1:
                inner = [self._submitted(c, values, seen) for c in top.get("components", [])]
                components.append({"type": 1, **_id_of(top), "components": [c for c in inner if c]})
            elif top.get("type") == 18:  # Label wrapping one input
                inner = self._submitted(top.get("component", {}), values, seen)
                if inner:
                    components.append({"type": 18, **_id_of(top), "component": inner})
        stray = set(values) - seen
        if stray:
            raise AssertionError(f"modal {custom_id!r} has no inputs {sorted(stray)}")
        message = None
        if origin.message_id is not None:  # a modal opened from a button carries that message
            try:
                message = self.message(origin.message_id)
            except KeyError:
                pass
        metadata = {"triggering_interaction_metadata": origin.metadata}
        if message is not None:
            metadata["interacted_message_id"] = str(message.id)
        return await self._interact(5, user_id, channel_id or origin.interaction.channel_id,
                                    {"custom_id": custom_id, "components": components},
                                    message=message, metadata=metadata)

    async def user_message(self, content: str, *, user_id: int, channel_id: int | None = None,
                           reply_to: Message | None = None, attachments: list[dict] = ()) -> Message:
        """A user posts in a channel or thread; MESSAGE_CREATE goes to the connected clients."""
        cid = channel_id or self.channel_id
        if cid not in self.channels and cid not in self.threads:
            raise AssertionError(f"unknown channel {cid}")
        self._check_bot_in_guild()
        self._ensure_member(user_id)
        # Discord's client pings the replied-to author by default: they land in "mentions".
        m = Message(self._snowflake(), cid, user_id, content, [], [], [dict(a) for a in attachments],
                    reply_to.id if reply_to else None, type=19 if reply_to else 0,
                    nonce=str(self._snowflake()), mention_ids=[reply_to.author_id] if reply_to else [])
        self.messages[cid].append(m)
        await self._dispatch("MESSAGE_CREATE", self._message_json(m, gateway=True))
        return m

    async def reconnect_clients(self) -> None:
        """Send op 7 RECONNECT, as Discord does before moving a session; clients RESUME."""
        for conn in list(self._conns):
            await conn.send({"t": None, "s": None, "op": 7, "d": None})

    # -- ids, users, members, channels -------------------------------------------------

    def _snowflake(self) -> int:
        # Real snowflakes: discord.py derives created_at (and an interaction's expiry) from them.
        ms = int(time.time() * 1000) - DISCORD_EPOCH
        value = max((ms << 22) | (1 << 17), self._last_id + 1)
        self._last_id = value
        return value

    def _bot_user(self) -> dict:
        return {"id": str(self.bot_user_id), "username": self.bot_name, "global_name": None,
                "discriminator": "4242", "avatar": None, "bot": True, "public_flags": 0, "flags": 0,
                "banner": None, "accent_color": None, "avatar_decoration_data": None, "collectibles": None,
                "primary_guild": None, "clan": None}

    def _add_member_record(self, user_id: int, user: dict, *, roles: list[int]) -> None:
        self._members[user_id] = {"user": user, "roles": roles, "joined_at": _now_iso(), "nick": None}

    def _ensure_member(self, user_id: int) -> None:
        if user_id not in self._members:
            self.add_member(user_id)

    def _user_json(self, user_id: int) -> dict:
        self._ensure_member(user_id)
        return dict(self._members[user_id]["user"])

    def _permissions_of(self, user_id: int) -> int:
        self._ensure_member(user_id)
        perms = self._roles[self.guild_id][1]
        for role in self._members[user_id]["roles"]:
            perms |= self._roles[role][1]
        return perms

    def _member_json(self, user_id: int, *, user: bool = True, permissions: bool = False) -> dict:
        self._ensure_member(user_id)
        rec = self._members[user_id]
        out = {"avatar": None, "banner": None, "communication_disabled_until": None, "deaf": False, "flags": 0,
               "joined_at": rec["joined_at"], "mute": False, "nick": rec["nick"], "pending": False,
               "premium_since": None, "roles": [str(r) for r in rec["roles"]], "unusual_dm_activity_until": None}
        if user:
            out["user"] = dict(rec["user"])
        if permissions:
            out["permissions"] = str(self._permissions_of(user_id))
        return out

    def _role_json(self, role_id: int) -> dict:
        name, perms, position = self._roles[role_id]
        out = {"id": str(role_id), "name": name, "permissions": str(perms), "position": position, "color": 0,
               "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
               "hoist": False, "managed": role_id == self.guild_id + 1, "mentionable": False, "icon": None,
               "unicode_emoji": None, "flags": 0}
        if role_id == self.guild_id + 1:
            out["tags"] = {"bot_id": str(self.bot_user_id)}
        return out

    def _last_message_id(self, channel_id: int) -> str | None:
        live = self.messages.get(channel_id)
        return str(live[-1].id) if live else None

    def _text_channel_json(self, channel_id: int, *, guild_id: bool = True) -> dict:
        ch = self.channels[channel_id]
        out = {"id": str(channel_id), "type": 0, "last_message_id": self._last_message_id(channel_id), "flags": 0,
               "name": ch["name"], "parent_id": None, "position": ch["position"], "permission_overwrites": [],
               "rate_limit_per_user": 0, "topic": ch["topic"], "nsfw": False,
               "default_thread_rate_limit_per_user": 0}
        if guild_id:  # REST answers carry it; channels inside GUILD_CREATE do not
            out["guild_id"] = str(self.guild_id)
        return out

    def _thread_json(self, t: Thread) -> dict:
        count = len(self.messages.get(t.id, []))
        created = _iso(t.id)
        meta = {"archived": t.archived, "auto_archive_duration": t.auto_archive_duration,
                "archive_timestamp": created, "locked": False, "create_timestamp": created}
        if t.type == 12:
            meta["invitable"] = True
        return {"id": str(t.id), "type": t.type, "last_message_id": self._last_message_id(t.id), "flags": 0,
                "guild_id": str(self.guild_id), "name": t.name, "parent_id": str(t.parent_id),
                "rate_limit_per_user": 0, "owner_id": str(t.owner_id), "thread_metadata": meta,
                "message_count": count, "member_count": 1, "total_message_sent": count,
                "member": {"id": str(t.id), "user_id": str(self.bot_user_id), "join_timestamp": created,
                           "flags": 1}}

    def _channel_json(self, channel_id: int) -> dict:
        if channel_id in self.channels:
            return self._text_channel_json(channel_id)
        if channel_id in self.threads:
            return self._thread_json(self.threads[channel_id])
        raise unknown("Channel")

    def _check_bot_in_guild(self) -> None:
        if self.guild_id not in self.guilds:
            raise AssertionError(f"the bot left guild {self.guild_id}: Discord would deliver nothing from it")

    def _on_shard(self, s: _Session, guild_id: int) -> bool:
        shard_id, shard_count = s.shard or (0, 1)
        return (guild_id >> 22) % shard_count == shard_id

    def _guild_json(self) -> dict:
        tier = 3 if self.upload_limit >= 100 * 1024 * 1024 else 2 if self.upload_limit >= 50 * 1024 * 1024 else 0
        return {"id": str(self.guild_id), "name": "Imagine Test", "icon": None, "splash": None,
                "discovery_splash": None, "owner_id": str(self.guild_id + 9), "afk_channel_id": None,
                "afk_timeout": 300, "verification_level": 1, "default_message_notifications": 1,
                "explicit_content_filter": 2, "roles": [self._role_json(r) for r in self._roles], "emojis": [],
                "stickers": [], "features": [], "mfa_level": 0, "application_id": None,
                "system_channel_id": str(self.channel_id), "system_channel_flags": 0, "rules_channel_id": None,
                "max_presences": None, "max_members": 500000, "vanity_url_code": None, "description": None,
                "banner": None, "premium_tier": tier, "premium_subscription_count": 0,
                "preferred_locale": "en-US", "public_updates_channel_id": None, "max_video_channel_users": 25,
                "max_stage_video_channel_users": 50, "nsfw_level": 0, "premium_progress_bar_enabled": False,
                "safety_alerts_channel_id": None, "incidents_data": None}

    def _guild_create_json(self, session: _Session, guild_id: int | None = None) -> dict:
        if guild_id not in (None, self.guild_id):
            return self._bare_guild_create_json(guild_id)
        # Without GUILD_PRESENCES Discord sends only the bot's own member here.
        ids = list(self._members) if session.intents & GUILD_PRESENCES else [self.bot_user_id]
        return {**self._guild_json(), "joined_at": self._members[self.bot_user_id]["joined_at"], "large": False,
                "unavailable": False, "member_count": len(self._members), "lazy": True,
                "voice_states": [], "members": [self._member_json(i) for i in ids],
                "channels": [self._text_channel_json(c, guild_id=False) for c in self.channels],
                "threads": [self._thread_json(t) for t in self.threads.values() if not t.archived],
                "presences": [], "stage_instances": [], "guild_scheduled_events": [], "soundboard_sounds": [],
                "embedded_activities": [], "application_command_counts": {}, "hub_type": None,
                "latest_onboarding_question_id": None}

    def _bare_guild_create_json(self, guild_id: int) -> dict:
        """An extra guild: only @everyone (its id is the guild's), no channels, the bot alone."""
        everyone = {**self._role_json(self.guild_id), "id": str(guild_id)}
        bot = {**self._member_json(self.bot_user_id), "roles": []}
        return {**self._guild_json(), "id": str(guild_id), "name": self.guilds[guild_id], "roles": [everyone],
                "system_channel_id": None, "owner_id": str(guild_id + 9), "premium_tier": 0,
                "joined_at": _now_iso(), "large": False, "unavailable": False, "member_count": 1, "lazy": True,
                "voice_states": [], "members": [bot], "channels": [], "threads": [], "presences": [],
                "stage_instances": [], "guild_scheduled_events": [], "soundboard_sounds": [],
                "embedded_activities": [], "application_command_counts": {}, "hub_type": None,
                "latest_onboarding_question_id": None}

    # -- attachments, messages ---------------------------------------------------------

    def _store_attachment(self, channel_id: int, filename: str, data: bytes, *, content_type: str | None = None,
                          description: str | None = None, ephemeral: bool = False) -> dict:
        # Discord keeps [A-Za-z0-9._-] and turns the rest (spaces included) into underscores.
        clean = re.sub(r"[^A-Za-z0-9._-]", "_", filename.strip()) or "unknown"
        att_id = self._snowflake()
        self.blobs[att_id] = bytes(data)
        # Signed CDN URLs carry ex/is/hm query params; bots must not take them as part of the name.
        now = int(time.time())
        sig = hashlib.sha256(f"{att_id}:{now}".encode()).hexdigest()
        url = f"{self.url}/attachments/{channel_id}/{att_id}/{clean}?ex={now + 86400:x}&is={now:x}&hm={sig}&"
        out = {"id": str(att_id), "filename": clean, "size": len(data), "url": url, "proxy_url": url}
        kind = content_type or _sniff(data) or mimetypes.guess_type(clean)[0]
        if kind:
            out["content_type"] = kind
        if kind and kind.startswith("image/") and (size := _image_size(data)):
            out["width"], out["height"] = size
            out["placeholder_version"] = 1
        if description is not None:
            out["description"] = description
        if ephemeral:
            out["ephemeral"] = True
        out["flags"] = 0
        return out

    def _attachments(self, payload: dict, files: list[_File], channel_id: int, *, ephemeral: bool,
                     existing: list[dict]) -> list[dict]:
        by_index = {f.index: f for f in files}
        used: set[int] = set()
        out: list[dict] = []
        listed = payload.get("attachments")
        if listed is not None:  # an explicit list: keep those named, add the new files
            old = {a["id"]: a for a in existing}
            for n, item in enumerate(listed):
                ref = str(item.get("id"))
                if ref in old:
                    out.append(old[ref])
                elif ref.isdigit() and int(ref) in by_index:
                    f = by_index[int(ref)]
                    used.add(f.index)
                    out.append(self._store_attachment(channel_id, item.get("filename") or f.filename, f.data,
                                                      description=item.get("description"), ephemeral=ephemeral))
                else:
                    raise _form_error(["attachments", n, "id"], "ATTACHMENT_NOT_FOUND", "Unknown attachment")
        else:
            out = list(existing)
        for f in files:  # file parts the payload did not mention are attached all the same
            if f.index not in used:
                out.append(self._store_attachment(channel_id, f.filename, f.data, ephemeral=ephemeral))
        if len(out) > 10:
            raise _form_error(["attachments"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        return out

    def _embeds(self, embeds: list, attachments: list[dict]) -> list:
        out = []
        for e in embeds or []:
            e = {"type": "rich", **e, "content_scan_version": 0}
            for key in ("image", "thumbnail"):
                url = (e.get(key) or {}).get("url", "")
                if url.startswith("attachment://"):  # resolved to the uploaded file's CDN URL
                    att = next((a for a in attachments if a["filename"] == url[13:]), None)
                    if att is not None:
                        e[key] = {"url": att["url"], "proxy_url": att["proxy_url"], "flags": 0,
                                  **{k: att[k] for k in ("width", "height", "content_type") if k in att}}
            out.append(e)
        return out

    def _validate(self, payload: dict) -> None:
        content = payload.get("content")
        if content is not None and len(str(content)) > 2000:
            raise _form_error(["content"], "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        embeds = payload.get("embeds") or []
        if len(embeds) > 10:
            raise _form_error(["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        total = 0
        for n, e in enumerate(embeds):
            for key, limit in (("title", 256), ("description", 4096)):
                if len(e.get(key) or "") > limit:
                    raise _form_error(["embeds", n, key], "BASE_TYPE_MAX_LENGTH",
                                      f"Must be {limit} or fewer in length.")
            if len(e.get("fields") or []) > 25:
                raise _form_error(["embeds", n, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            total += len(e.get("title") or "") + len(e.get("description") or "") + sum(
                len(f.get("name") or "") + len(f.get("value") or "") for f in e.get("fields") or [])
            total += len((e.get("footer") or {}).get("text") or "") + len((e.get("author") or {}).get("name") or "")
        if total > 6000:
            raise _form_error(["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
        components = payload.get("components") or []
        v2 = bool((payload.get("flags") or 0) & IS_COMPONENTS_V2)
        if not v2 and len(components) > 5:
            raise _form_error(["components"], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        seen: set[str] = set()
        for n, row in enumerate(components):
            if not v2 and (row.get("type") != 1 or len(row.get("components") or []) > 5):
                raise _form_error(["components", n], "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                                  "The specified component exceeds the maximum width")
            for m, c in enumerate(row.get("components") or []):
                where = ["components", n, "components", m]
                cid = c.get("custom_id")
                if c.get("type") == 2 and c.get("style") != 5 and c.get("style") != 6 and not cid:
                    raise _form_error(where + ["custom_id"], "BASE_TYPE_REQUIRED", "This field is required")
                if cid is not None and len(cid) > 100:
                    raise _form_error(where + ["custom_id"], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
                if cid is not None and cid in seen:
                    raise _form_error(where + ["custom_id"], "COMPONENT_CUSTOM_ID_DUPLICATED",
                                      "Component custom id cannot be duplicated")
                if len(c.get("label") or "") > 80:
                    raise _form_error(where + ["label"], "BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length.")
                if cid is not None:
                    seen.add(cid)

    def _new_message(self, channel_id: int, payload: dict | None, files: list[_File], *, flags: int = 0,
                     type: int = 0, reference_id: int | None = None, pending: _Pending | None = None,
                     metadata: dict | None = None) -> Message:
        payload = payload or {}
        self._validate(payload)
        atts = self._attachments(payload, files, channel_id, ephemeral=bool(flags & EPHEMERAL), existing=[])
        content = str(payload.get("content") or "")
        components = _number_components(payload.get("components") or [])
        if not (content or payload.get("embeds") or atts or components or payload.get("sticker_ids")
                or payload.get("poll")):
            raise DiscordError(400, "Cannot send an empty message", 50006)
        m = Message(self._snowflake(), channel_id, self.bot_user_id, content,
                    self._embeds(payload.get("embeds") or [], atts), components, atts, reference_id,
                    flags=flags, type=type, tts=bool(payload.get("tts")),
                    nonce=str(payload["nonce"]) if payload.get("nonce") is not None else None,
                    webhook_interaction=pending.interaction.id if pending else None,
                    interaction_metadata=metadata)
        self.messages[channel_id].append(m)
        return m

    def _edit(self, m: Message, payload: dict | None, files: list[_File], *, stamp: bool = True) -> None:
        payload = payload or {}
        self._validate(payload)
        if "attachments" in payload or files:
            m.attachments = self._attachments(payload, files, m.channel_id, ephemeral=m.ephemeral,
                                              existing=m.attachments)
        if "content" in payload:
            m.content = str(payload["content"] or "")
        if "embeds" in payload:
            m.embeds = self._embeds(payload["embeds"] or [], m.attachments)
        if "components" in payload:
            m.components = _number_components(payload["components"] or [])
        if "flags" in payload and payload["flags"] is not None:  # only these can be toggled on edit
            m.flags = (m.flags & ~SENDABLE_FLAGS) | (int(payload["flags"]) & SENDABLE_FLAGS)
        if not (m.content or m.embeds or m.attachments or m.components):
            raise DiscordError(400, "Cannot send an empty message", 50006)
        if stamp:
            m.edited_timestamp = _now_iso()

    def _message_json(self, m: Message, *, gateway: bool = False, nested: bool = False) -> dict:
        mentioned = [int(i) for i in re.findall(r"<@!?(\d+)>", m.content)] + m.mention_ids
        out = {"type": m.type, "content": m.content,
               "mentions": [self._user_json(i) for i in dict.fromkeys(mentioned) if i in self._members],
               "mention_roles": [], "attachments": [dict(a) for a in m.attachments], "embeds": m.embeds,
               "timestamp": m.timestamp, "edited_timestamp": m.edited_timestamp, "flags": m.flags,
               "components": m.components, "id": str(m.id), "channel_id": str(m.channel_id),
               "author": self._user_json(m.author_id), "pinned": False, "mention_everyone": False, "tts": m.tts}
        if m.nonce is not None:
            out["nonce"] = m.nonce
        if m.webhook_interaction is not None:
            out["webhook_id"] = str(self.app_id)
            out["application_id"] = str(self.app_id)
            if m.interaction_metadata:
                out["interaction_metadata"] = m.interaction_metadata
        if m.reference_id is not None:
            ref = self._find(m.reference_id)
            out["message_reference"] = {"type": 0, "channel_id": str(ref.channel_id if ref else m.channel_id),
                                        "message_id": str(m.reference_id), "guild_id": str(self.guild_id)}
            if not nested:
                out["referenced_message"] = (self._message_json(ref, nested=True)
                                             if ref is not None and not ref.deleted else None)
        if m.id in self.threads:
            out["thread"] = self._thread_json(self.threads[m.id])
        if gateway:
            out["guild_id"] = str(self.guild_id)
            out["member"] = self._member_json(m.author_id, user=False)
        return out

    def _find(self, message_id: int) -> Message | None:
        try:
            return self.message(message_id)
        except KeyError:
            return None

    def _live(self, channel_id: int, message_id: int) -> Message:
        """A message the bot token can see: not deleted, not ephemeral, in that channel."""
        for m in self.messages.get(channel_id, []):
            if m.id == message_id and not m.deleted and not m.ephemeral:
                return m
        raise unknown("Message")

    # -- gateway ----------------------------------------------------------------------

    async def _dispatch(self, event: str, data: dict, *, sessions: list[_Session] | None = None) -> None:
        if sessions is None:
            self.events.append((event, data))
        for s in list(sessions if sessions is not None else self._sessions.values()):
            d = self._for_session(s, event, data)
            if d is None:
                continue
            s.seq += 1
            frame = {"t": event, "s": s.seq, "op": 0, "d": d}
            s.log.append(frame)
            if s.conn is not None:
                await s.conn.send(frame)

    def _for_session(self, s: _Session, event: str, data: dict) -> dict | None:
        if event.startswith("MESSAGE_"):
            if not s.intents & GUILD_MESSAGES:
                return None
            # Without the MESSAGE_CONTENT intent Discord blanks what others write, unless the
            # bot is mentioned (a pinging reply to the bot counts) or it is the bot's own message.
            author = int((data.get("author") or {}).get("id", self.bot_user_id))
            mentioned = any(int(u["id"]) == self.bot_user_id for u in data.get("mentions", []))
            if event != "MESSAGE_DELETE" and not s.intents & MESSAGE_CONTENT and author != self.bot_user_id \
                    and not mentioned:
                data = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
                data.pop("poll", None)
        return data

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        query = dict(request.query)
        self.gateway_connections.append(query)
        conn = _Conn(ws, query.get("compress"))
        self._conns.add(conn)
        try:
            if query.get("v") != "10":
                await conn.close(4012, "Invalid API version")
                return ws
            if query.get("encoding", "json") != "json":  # etf is not spoken here
                await conn.close(4002, "Error while decoding payload.")
                return ws
            await conn.send({"t": None, "s": None, "op": 10,
                             "d": {"heartbeat_interval": self.heartbeat_interval, "_trace": TRACE}})
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                try:
                    frame = json.loads(msg.data)
                    op, d = frame["op"], frame.get("d")
                except (ValueError, KeyError, TypeError):
                    await conn.close(4002, "Error while decoding payload.")
                    break
                self.gateway_received.append(frame)
                if op == 1:  # heartbeat; answered before IDENTIFY too
                    await conn.send({"t": None, "s": None, "op": 11, "d": None})
                elif op == 2:
                    await self._identify(conn, d or {})
                elif op == 6:
                    await self._resume(conn, d or {})
                elif conn.session is None:
                    await conn.close(4003, "Not authenticated.")
                elif op == 8:
                    await self._request_members(conn.session, d or {})
                elif op in (3, 4):  # presence / voice state updates: accepted, ignored
                    pass
                else:
                    await conn.close(4001, "Unknown opcode.")
        finally:
            self._conns.discard(conn)
            s = conn.session
            if s is not None and s.conn is conn:
                s.conn = None
                if ws.close_code in (1000, 1001):  # a clean close ends the session, as on Discord
                    self._sessions.pop(s.id, None)
        return ws

    def _token_ok(self, token) -> bool:
        return isinstance(token, str) and token.removeprefix("Bot ") == self.token

    async def _identify(self, conn: _Conn, d: dict) -> None:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return
        if not self._token_ok(d.get("token")):
            await conn.close(4004, "Authentication failed.")
            return
        if not isinstance(d.get("intents"), int):  # required since v8
            await conn.close(4013, "Invalid intent(s).")
            return
        s = _Session(secrets.token_hex(16), d["intents"], d.get("shard"))
        self._sessions[s.id] = s
        s.conn, conn.session = conn, s
        ready = {"v": 10, "user_settings": {}, "user": {**self._bot_user(), "verified": True, "mfa_enabled": False,
                                                        "email": None, "locale": "en-US", "premium_type": 0},
                 "session_type": "normal", "session_id": s.id, "resume_gateway_url": self.gateway_url,
                 "relationships": [], "private_channels": [], "presences": [], "guild_join_requests": [],
                 "geo_ordered_rtc_regions": ["rotterdam", "london", "madrid"], "auth": {},
                 "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
                 "application": {"id": str(self.app_id), "flags": APP_FLAGS}, "_trace": TRACE}
        if s.shard is not None:  # only sharded identifies get "shard" back (AutoShardedClient needs it)
            ready["shard"] = s.shard
        await self._dispatch("READY", ready, sessions=[s])
        for guild_id in list(self.guilds):
            if self._on_shard(s, guild_id):
                await self._dispatch("GUILD_CREATE", self._guild_create_json(s, guild_id), sessions=[s])
        self.identified.set()

    async def _resume(self, conn: _Conn, d: dict) -> None:
        s = self._sessions.get(d.get("session_id"))
        if s is None or not self._token_ok(d.get("token")):
            await conn.send({"t": None, "s": None, "op": 9, "d": False})  # not resumable: identify anew
            return
        if s.conn is not None and s.conn is not conn:
            await s.conn.close(4000, "Session resumed elsewhere")
        s.conn, conn.session = conn, s
        since = d.get("seq") or 0
        for frame in list(s.log):  # replay what the client missed
            if frame["s"] > since:
                await conn.send(frame)
        await self._dispatch("RESUMED", {"_trace": TRACE}, sessions=[s])

    async def _request_members(self, s: _Session, d: dict) -> None:
        query, ids = (d.get("query") or "").lower(), {int(i) for i in (d.get("user_ids") or [])}
        found = [uid for uid, rec in self._members.items()
                 if (uid in ids if ids else rec["user"]["username"].lower().startswith(query))]
        limit = d.get("limit") or 0
        if limit:
            found = found[:limit]
        chunk = {"guild_id": str(self.guild_id), "members": [self._member_json(u) for u in found],
                 "chunk_index": 0, "chunk_count": 1, "not_found": [str(i) for i in ids - set(found)]}
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        await self._dispatch("GUILD_MEMBERS_CHUNK", chunk, sessions=[s])

    # -- interactions: building ---------------------------------------------------------

    def _find_command(self, name: str, kind: int) -> tuple[dict, int | None]:
        for guild_id, commands in [(self.guild_id, self.guild_commands.get(self.guild_id, [])),
                                   (None, self.global_commands)]:
            for c in commands:
                if c["name"] == name and c.get("type", 1) == kind:
                    return c, guild_id
        synced = [c["name"] for c in self.global_commands + self.guild_commands.get(self.guild_id, [])]
        raise AssertionError(f"command {name!r} (type {kind}) was never synced; synced: {synced}")

    def _build_options(self, path: str, defs: list[dict], given: dict, resolved: dict) -> list[dict]:
        by_name = {o["name"]: o for o in defs}
        stray = set(given) - set(by_name)
        if stray:
            raise AssertionError(f"/{path} has no options {sorted(stray)}; it has {list(by_name)}")
        out = []
        for o in defs:
            name = o["name"]
            if name not in given or given[name] is None:
                if o.get("required"):
                    raise AssertionError(f"/{path}: required option {name!r} missing")
                continue
            out.append({"name": name, "type": o["type"], "value": self._option_value(path, o, given[name], resolved)})
        return out

    def _option_value(self, path: str, o: dict, value, resolved: dict):
        # Discord's client enforces types, choices and ranges before anything is sent.
        kind, where = o["type"], f"/{path} option {o['name']!r}"
        if kind == 3:
            if not isinstance(value, str):
                raise AssertionError(f"{where} takes a string, got {value!r}")
            if not o.get("min_length", 0) <= len(value) <= o.get("max_length", 6000):
                raise AssertionError(f"{where}: length {len(value)} outside "
                                     f"[{o.get('min_length', 0)}, {o.get('max_length', 6000)}]")
        elif kind in (4, 10):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == 4 and not isinstance(value, int)):
                raise AssertionError(f"{where} takes {'an integer' if kind == 4 else 'a number'}, got {value!r}")
            if ("min_value" in o and value < o["min_value"]) or ("max_value" in o and value > o["max_value"]):
                raise AssertionError(f"{where}: {value} outside [{o.get('min_value')}, {o.get('max_value')}]")
        elif kind == 5:
            if not isinstance(value, bool):
                raise AssertionError(f"{where} takes a bool, got {value!r}")
        elif kind == 11:
            if not isinstance(value, dict) or "id" not in value:
                raise AssertionError(f"{where} takes fake.attachment(...), got {value!r}")
            resolved.setdefault("attachments", {})[value["id"]] = value
            return value["id"]
        elif kind in (6, 7, 8, 9):
            value = int(value.id if isinstance(value, Message) else value)
            if kind in (6, 9) and (kind == 6 or value not in self._roles):
                resolved.setdefault("users", {})[str(value)] = self._user_json(value)
                resolved.setdefault("members", {})[str(value)] = self._member_json(value, user=False, permissions=True)
            elif kind in (8, 9):
                resolved.setdefault("roles", {})[str(value)] = self._role_json(value)
            else:
                resolved.setdefault("channels", {})[str(value)] = {
                    **self._channel_json(value), "permissions": str(EVERYONE_PERMISSIONS)}
            return str(value)
        if o.get("choices") and value not in [c["value"] for c in o["choices"]]:
            raise AssertionError(f"{where}: {value!r} is not one of {[c['value'] for c in o['choices']]}")
        return value

    def _submitted(self, component: dict, values: dict, seen: set) -> dict | None:
        cid = component.get("custom_id")
        if cid is None:
            return None
        seen.add(cid)
        kind = component.get("type")
        if kind == 4:  # text input
            value = values.get(cid, component.get("value") or "")
            if component.get("required", True) and not value:
                raise AssertionError(f"modal input {cid!r} is required")
            if value and not component.get("min_length", 0) <= len(value) <= component.get("max_length", 4000):
                raise AssertionError(f"modal input {cid!r}: length {len(value)} outside "
                                     f"[{component.get('min_length', 0)}, {component.get('max_length', 4000)}]")
            return {"type": 4, **_id_of(component), "custom_id": cid, "value": value}
        chosen = values.get(cid, [])
        return {"type": kind, **_id_of(component), "custom_id": cid,
                "values": list(chosen) if isinstance(chosen, (list, tuple)) else [chosen]}

    async def _interact(self, kind: int, user_id: int, channel_id: int, data: dict, *, message_type: int = 0,
                        message: Message | None = None, metadata: dict | None = None) -> Interaction:
        if channel_id not in self.channels and channel_id not in self.threads:
            raise AssertionError(f"unknown channel {channel_id}")
        self._check_bot_in_guild()
        iid = self._snowflake()
        # Real tokens are long opaque strings that begin with base64("interaction:").
        token = "aW50ZXJhY3Rpb246" + base64.urlsafe_b64encode(
            f"{iid}:{secrets.token_urlsafe(96)}".encode()).decode().rstrip("=")
        perms = self._permissions_of(user_id)
        payload = {"app_permissions": str(self._permissions_of(self.bot_user_id)),
                   "application_id": str(self.app_id), "attachment_size_limit": self.upload_limit,
                   "authorizing_integration_owners": {"0": str(self.guild_id)},
                   "channel": {**self._channel_json(channel_id), "permissions": str(perms)},
                   "channel_id": str(channel_id), "context": 0, "data": data, "entitlement_sku_ids": [],
                   "entitlements": [], "guild": {"features": [], "id": str(self.guild_id), "locale": "en-US"},
                   "guild_id": str(self.guild_id), "guild_locale": "en-US", "id": str(iid), "locale": "en-US",
                   "member": self._member_json(user_id, permissions=True), "token": token, "type": kind,
                   "version": 1}
        if message is not None:
            payload["message"] = self._message_json(message)
        interaction = Interaction(iid, token, kind, channel_id, user_id)
        meta = {"id": str(iid), "type": kind, "user": self._user_json(user_id),
                "authorizing_integration_owners": {"0": str(self.guild_id)}, **(metadata or {})}
        self._pending[token] = _Pending(interaction, payload, time.monotonic(), meta, message_type=message_type,
                                        message_id=message.id if message is not None else None)
        self.interactions[iid] = interaction
        await self._dispatch("INTERACTION_CREATE", payload)
        return interaction

    # -- REST plumbing ----------------------------------------------------------------

    def _route_table(self) -> list[tuple[re.Pattern, bool, dict]]:
        d, w = r"(?P<%s>\d+)", r"(?P<token>[^/]+)"
        table = [
            (r"/users/@me", True, {"GET": self._get_me}),
            (r"/users/@me/guilds/" + d % "gid", True, {"DELETE": self._leave_guild}),
            (r"/users/" + d % "user_id", True, {"GET": self._get_user}),
            (r"/oauth2/applications/@me", True, {"GET": self._get_application}),
            (r"/gateway", False, {"GET": self._get_gateway}),
            (r"/gateway/bot", True, {"GET": self._get_gateway_bot}),
            (r"/applications/" + d % "app_id" + "/commands", True,
             {"GET": self._get_commands, "PUT": self._put_commands}),
            (r"/applications/" + d % "app_id" + "/guilds/" + d % "guild_id" + "/commands", True,
             {"GET": self._get_commands, "PUT": self._put_commands}),
            (r"/interactions/" + d % "iid" + "/" + w + "/callback", False, {"POST": self._callback}),
            (r"/webhooks/" + d % "app_id" + "/" + w, False, {"POST": self._followup}),
            (r"/webhooks/" + d % "app_id" + "/" + w + r"/messages/(?P<mid>@original|\d+)", False,
             {"GET": self._hook_get, "PATCH": self._hook_edit, "DELETE": self._hook_delete}),
            (r"/channels/" + d % "cid", True, {"GET": self._get_channel, "PATCH": self._edit_channel}),
            (r"/channels/" + d % "cid" + "/messages", True, {"GET": self._history, "POST": self._post_message}),
            (r"/channels/" + d % "cid" + "/messages/" + d % "mid", True,
             {"GET": self._get_message, "PATCH": self._edit_message, "DELETE": self._delete_message}),
            (r"/channels/" + d % "cid" + "/messages/" + d % "mid" + "/threads", True,
             {"POST": self._thread_from_message}),
            (r"/channels/" + d % "cid" + "/threads", True, {"POST": self._thread_without_message}),
            (r"/channels/" + d % "cid" + "/typing", True, {"POST": self._typing}),
            (r"/channels/" + d % "cid" + "/messages/" + d % "mid" + r"/reactions/(?P<emoji>[^/]+)/@me", True,
             {"PUT": self._reaction, "DELETE": self._reaction}),
            (r"/guilds/" + d % "gid", True, {"GET": self._get_guild}),
            (r"/guilds/" + d % "gid" + "/channels", True, {"GET": self._get_guild_channels}),
            (r"/guilds/" + d % "gid" + "/members/" + d % "user_id", True, {"GET": self._get_member}),
        ]
        return [(re.compile(pattern + "$"), auth, methods) for pattern, auth, methods in table]

    def _ratelimit_headers(self, method: str, path: str) -> dict[str, str]:
        # One bucket per route template, as Discord hashes them.
        template = re.sub(r"\d+", "_", re.sub(r"(/(?:interactions|webhooks)/\d+/)[^/]+", r"\1_", path))
        bucket = hashlib.md5(f"{method} {template}".encode()).hexdigest()
        return {"X-RateLimit-Limit": str(self.ratelimit_limit),
                "X-RateLimit-Remaining": str(self.ratelimit_limit - 1),
                "X-RateLimit-Reset": f"{time.time() + 1:.3f}", "X-RateLimit-Reset-After": "1.000",
                "X-RateLimit-Bucket": bucket, "Via": "1.1 google"}

    def _json(self, body, status: int = 200, headers: dict | None = None) -> web.Response:
        # body= with content_type= keeps the header exactly "application/json" (see module doc).
        return web.Response(body=_dumps(body).encode(), status=status, content_type="application/json",
                            headers=headers)

    async def _read_body(self, request: web.Request) -> _Body:
        if request.content_type == "multipart/form-data":
            payload, files = None, []
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                data = bytes(await part.read())
                name = part.name or ""
                if name == "payload_json":
                    payload = json.loads(data.decode())
                elif part.filename is not None:
                    m = re.fullmatch(r"files\[(\d+)\]|file(\d*)", name)
                    index = int(m[1] or m[2] or 0) if m else len(files)
                    files.append(_File(index, part.filename, data))
                else:  # plain form fields (content=...) are accepted too
                    payload = payload if isinstance(payload, dict) else {}
                    payload.setdefault(name, data.decode())
            return _Body(payload, files)
        raw = await request.read()
        if not raw or request.content_type != "application/json":
            return _Body(None, [])
        return _Body(json.loads(raw), [])

    def _injected(self, method: str, path: str) -> web.Response | None:
        for n, (m, pattern, status, body, retry_after) in enumerate(self._failures):
            if m in ("*", method) and pattern.search(path):
                del self._failures[n]
                headers = self._ratelimit_headers(method, path)
                if status == 429:
                    retry_after = 0.05 if retry_after is None else retry_after
                    body = body or {"message": "You are being rate limited.", "retry_after": retry_after,
                                    "global": False}
                    headers.update({"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Remaining": "0",
                                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                                    "X-RateLimit-Scope": "global" if body.get("global") else "user"})
                    if body.get("global"):
                        headers["X-RateLimit-Global"] = "true"
                elif body is None:
                    message, code = ERRORS.get(status, (f"{status}: Error", 0))
                    body = {"message": message, "code": code}
                if retry_after is not None and status != 429:
                    headers["Retry-After"] = str(math.ceil(retry_after))
                return self._json(body, status, headers)
        return None

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path, method = "/" + request.match_info["tail"], request.method
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = await self._read_body(request)
        except (ValueError, UnicodeDecodeError):
            self.calls.append(Call(method, path, None, [], headers, dict(request.query)))
            return self._json({"message": "The request body contains invalid JSON.", "code": 50109}, 400)
        self.calls.append(Call(method, path, body.json, [(f.filename, f.data) for f in body.files], headers,
                               dict(request.query)))
        rl = self._ratelimit_headers(method, path)
        if (failure := self._injected(method, path)) is not None:
            return failure
        for pattern, auth, methods in self._routes:
            if (match := pattern.match(path)) is None:
                continue
            if auth and headers.get("authorization") != f"Bot {self.token}":
                return self._json({"message": "401: Unauthorized", "code": 0}, 401, rl)
            handler = methods.get(method)
            if handler is None:
                return self._json({"message": "405: Method Not Allowed", "code": 0}, 405, rl)
            if any(len(f.data) > self.upload_limit for f in body.files):
                return self._json({"message": "Request entity too large", "code": 40005}, 413, rl)
            try:
                result = await handler(request, body, **match.groupdict())
            except DiscordError as e:
                return self._json(e.body, e.status, rl)
            if result is None:
                return web.Response(status=204, headers=rl)
            return self._json(result, 200, rl)
        return self._json({"message": "404: Not Found", "code": 0}, 404, rl)

    async def _download(self, request: web.Request) -> web.Response:
        # The CDN needs no token: the signed URL is the credential.
        self.downloads.append(request.path)
        att_id = int(request.match_info["id"]) if request.match_info["id"].isdigit() else 0
        data = self.blobs.get(att_id)
        if data is None:
            return web.Response(text="This content is no longer available.", status=404, content_type="text/plain")
        kind = _sniff(data) or mimetypes.guess_type(request.match_info["filename"])[0] or "application/octet-stream"
        return web.Response(body=data, content_type=kind)

    # -- REST: users, application, gateway, commands ------------------------------------

    async def _get_me(self, request, body) -> dict:
        return {**self._bot_user(), "verified": True, "mfa_enabled": False, "email": None, "locale": "en-US",
                "bio": "", "premium_type": 0}

    async def _get_user(self, request, body, user_id) -> dict:
        if int(user_id) not in self._members:
            raise unknown("User")
        return self._user_json(int(user_id))

    async def _get_application(self, request, body) -> dict:
        owner = {"id": str(self.guild_id + 9), "username": "owner", "global_name": "Owner", "discriminator": "0",
                 "avatar": None, "public_flags": 0, "flags": 0, "banner": None, "accent_color": None,
                 "avatar_decoration_data": None, "collectibles": None, "primary_guild": None, "clan": None}
        return {"id": str(self.app_id), "name": self.bot_name, "icon": None, "description": "",
                "summary": "", "type": None, "hook": True, "bot_public": True, "bot_require_code_grant": False,
                "verify_key": "0" * 64, "owner": owner, "flags": APP_FLAGS, "team": None,
                "bot": self._bot_user(), "guild_id": None, "interactions_endpoint_url": None,
                "role_connections_verification_url": None, "redirect_uris": [], "tags": [],
                "approximate_guild_count": 1, "approximate_user_install_count": 0,
                "integration_types_config": {"0": {}}, "install_params": {"scopes": ["bot", "applications.commands"],
                                                                          "permissions": "0"}}

    async def _get_gateway(self, request, body) -> dict:
        return {"url": self.gateway_url}

    async def _get_gateway_bot(self, request, body) -> dict:
        return {"url": self.gateway_url, "shards": 1,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14_400_000,
                                        "max_concurrency": 1}}

    def _check_app(self, app_id: str, guild_id: str | None) -> None:
        if int(app_id) != self.app_id:
            raise DiscordError(403, "Missing Access", 50001)
        if guild_id is not None and int(guild_id) != self.guild_id:
            raise DiscordError(403, "Missing Access", 50001)

    async def _get_commands(self, request, body, app_id, guild_id=None) -> list:
        self._check_app(app_id, guild_id)
        return self.guild_commands.get(int(guild_id), []) if guild_id else self.global_commands

    async def _put_commands(self, request, body, app_id, guild_id=None) -> list:
        self._check_app(app_id, guild_id)
        if not isinstance(body.json, list):
            raise _form_error([], "BASE_TYPE_ARRAY", "Must be an array.") if body.json is not None else \
                DiscordError(400, "400: Bad Request", 0)
        old = self.guild_commands.get(int(guild_id), []) if guild_id else self.global_commands
        out = []
        for n, c in enumerate(body.json):
            kind = c.get("type", 1)
            name = c.get("name") or ""
            # Chat-input names are lower-case; menu names may have spaces and capitals.
            ok = re.fullmatch(r"[-_\w]{1,32}", name) and name == name.lower() if kind == 1 else 1 <= len(name) <= 32
            if not ok:
                raise _form_error([n, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            description = c.get("description") or ""
            if kind == 1 and not 1 <= len(description) <= 100:
                raise _form_error([n, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
            if len(c.get("options") or []) > 25:
                raise _form_error([n, "options"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            previous = next((p for p in old if p["name"] == name and p["type"] == kind), None)
            cmd = {"id": previous["id"] if previous else str(self._snowflake()), "application_id": str(self.app_id),
                   "version": str(self._snowflake()), "default_member_permissions": c.get("default_member_permissions"),
                   "type": kind, "name": name, "name_localizations": c.get("name_localizations"),
                   "description": description if kind == 1 else "",
                   "description_localizations": c.get("description_localizations"),
                   "contexts": c.get("contexts"), "integration_types": c.get("integration_types") or [0],
                   "nsfw": bool(c.get("nsfw", False))}
            if c.get("options"):
                cmd["options"] = c["options"]
            if guild_id:
                cmd["guild_id"] = str(guild_id)
            out.append(cmd)
        if guild_id:
            self.guild_commands[int(guild_id)] = out
        else:
            self.global_commands = out
        self.commands = out
        return out

    # -- REST: interaction callback and webhooks ---------------------------------------

    async def _callback(self, request, body, iid, token) -> dict | None:
        p = self._pending.get(token)
        if p is None or p.interaction.id != int(iid) or p.expired:
            raise unknown("interaction")
        if self.callback_deadline is not None and time.monotonic() - p.created > self.callback_deadline:
            raise unknown("interaction")  # Discord gives up on an interaction after 3 s
        if p.callback is not None:
            raise DiscordError(400, "Interaction has already been acknowledged.", 40060)
        payload = body.json if isinstance(body.json, dict) else {}
        kind, data = payload.get("type"), payload.get("data") or {}
        ix = p.interaction.type
        allowed = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 5: {4, 5, 6, 7} if p.message_id else {4, 5}, 4: {8}}[ix]
        if kind not in allowed:
            raise _form_error(["type"], "BASE_TYPE_CHOICES", f"Value must be one of {sorted(allowed)}.")
        msg: Message | None = None
        if kind == 4:
            flags = int(data.get("flags") or 0) & INTERACTION_FLAGS
            msg = self._new_message(p.interaction.channel_id, data, body.files, flags=flags, type=p.message_type,
                                    pending=p, metadata=p.metadata)
        elif kind == 5:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            msg = Message(self._snowflake(), p.interaction.channel_id, self.bot_user_id, "", [], [], [], None,
                          flags=flags, type=p.message_type, webhook_interaction=p.interaction.id,
                          interaction_metadata=p.metadata)
            self.messages[msg.channel_id].append(msg)
            p.deferred_open = True
        elif kind in (6, 7):
            msg = self._find(p.message_id)
            if msg is None or msg.deleted:
                raise unknown("Message")
            if kind == 7:
                self._edit(msg, data, body.files)
        elif kind == 9:
            if not data.get("custom_id") or not data.get("title") or not data.get("components"):
                raise _form_error(["data"], "BASE_TYPE_REQUIRED", "custom_id, title and components are required")
            self._modals[(p.interaction.user_id, data["custom_id"])] = (data, p)
        p.callback = kind
        if msg is not None:
            p.original_id = msg.id
            p.message_ids.add(msg.id)
        self.interaction_responses[p.interaction.id].append(payload)
        if msg is not None and not msg.ephemeral:
            event = "MESSAGE_CREATE" if kind in (4, 5) else "MESSAGE_UPDATE"
            if kind != 6:
                await self._dispatch(event, self._message_json(msg, gateway=True))
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return None
        interaction = {"id": str(p.interaction.id), "type": ix}
        if msg is not None:
            interaction.update(response_message_id=str(msg.id), response_message_loading=msg.loading,
                               response_message_ephemeral=msg.ephemeral)
        resource: dict = {"type": kind}
        if kind in (4, 7):  # the docs: a message only for CHANNEL_MESSAGE_WITH_SOURCE and UPDATE_MESSAGE
            resource["message"] = self._message_json(msg)
        return {"interaction": interaction, "resource": resource}

    def _hook(self, app_id: str, token: str) -> _Pending:
        if int(app_id) != self.app_id:
            raise unknown("Webhook")
        p = self._pending.get(token)
        if p is None or p.expired:
            raise DiscordError(401, "Invalid Webhook Token", 50027)
        if p.callback is None:  # nothing to follow up until the interaction is acknowledged
            raise unknown("Webhook")
        return p

    def _hook_message(self, p: _Pending, mid: str) -> Message:
        message_id = p.original_id if mid == "@original" else int(mid)
        if message_id is None or message_id not in p.message_ids:
            raise unknown("Message")
        m = self._find(message_id)
        if m is None or m.deleted:
            raise unknown("Message")
        return m

    async def _followup(self, request, body, app_id, token) -> dict | None:
        p = self._hook(app_id, token)
        payload = body.json if isinstance(body.json, dict) else {}
        original = self._find(p.original_id) if p.original_id else None
        if p.deferred_open and original is not None and not original.deleted:
            # The docs: right after a deferred response the first followup edits the "thinking"
            # message instead of posting; the ephemeral flag of the defer is kept.
            self._edit(original, payload, body.files, stamp=False)
            original.flags &= ~LOADING
            p.deferred_open = False
            m, event = original, "MESSAGE_UPDATE"
        else:
            flags = int(payload.get("flags") or 0) & INTERACTION_FLAGS
            meta = {**p.metadata, **({"original_response_message_id": str(p.original_id)} if p.original_id else {})}
            m = self._new_message(p.interaction.channel_id, payload, body.files, flags=flags, pending=p, metadata=meta)
            p.message_ids.add(m.id)
            event = "MESSAGE_CREATE"
        if not m.ephemeral:
            await self._dispatch(event, self._message_json(m, gateway=True))
        wait = request.query.get("wait", "").lower() in ("1", "true")
        return self._message_json(m) if wait else None

    async def _hook_get(self, request, body, app_id, token, mid) -> dict:
        return self._message_json(self._hook_message(self._hook(app_id, token), mid))

    async def _hook_edit(self, request, body, app_id, token, mid) -> dict:
        p = self._hook(app_id, token)
        m = self._hook_message(p, mid)
        finishing = m.loading  # completing a deferred response is not an "edit"
        self._edit(m, body.json if isinstance(body.json, dict) else {}, body.files, stamp=not finishing)
        if finishing:
            m.flags &= ~LOADING
            if m.id == p.original_id:
                p.deferred_open = False
        if not m.ephemeral:
            await self._dispatch("MESSAGE_UPDATE", self._message_json(m, gateway=True))
        return self._message_json(m)

    async def _hook_delete(self, request, body, app_id, token, mid) -> None:
        m = self._hook_message(self._hook(app_id, token), mid)
        await self._delete(m)

    async def _delete(self, m: Message) -> None:
        m.deleted = True
        if not m.ephemeral:
            await self._dispatch("MESSAGE_DELETE", {"id": str(m.id), "channel_id": str(m.channel_id),
                                                    "guild_id": str(self.guild_id)})

    # -- REST: channels, messages, threads ---------------------------------------------

    async def _get_channel(self, request, body, cid) -> dict:
        return self._channel_json(int(cid))

    async def _edit_channel(self, request, body, cid) -> dict:
        channel_id = int(cid)
        payload = body.json if isinstance(body.json, dict) else {}
        if channel_id in self.threads:
            t = self.threads[channel_id]
            if "name" in payload:
                t.name = self._thread_name(payload)
            t.archived = bool(payload.get("archived", t.archived))
            t.auto_archive_duration = int(payload.get("auto_archive_duration") or t.auto_archive_duration)
            await self._dispatch("THREAD_UPDATE", self._thread_json(t))
        elif channel_id in self.channels:
            ch = self.channels[channel_id]
            ch.update({k: payload[k] for k in ("name", "topic") if k in payload})
            await self._dispatch("CHANNEL_UPDATE", {**self._text_channel_json(channel_id)})
        return self._channel_json(channel_id)

    async def _history(self, request, body, cid) -> list:
        self._channel_json(int(cid))
        limit = max(1, min(100, int(request.query.get("limit", 50))))
        live = [m for m in self.messages.get(int(cid), []) if not m.deleted and not m.ephemeral]
        if "before" in request.query:
            live = [m for m in live if m.id < int(request.query["before"])]
        if "after" in request.query:
            live = [m for m in live if m.id > int(request.query["after"])][:limit]
        return [self._message_json(m) for m in reversed(live[-limit:])]

    async def _post_message(self, request, body, cid) -> dict:
        channel_id = int(cid)
        self._channel_json(channel_id)
        payload = body.json if isinstance(body.json, dict) else {}
        reference_id, kind = None, 0
        ref = payload.get("message_reference")
        if ref and ref.get("type", 0) == 0 and ref.get("message_id"):
            target = self._find(int(ref["message_id"]))
            if target is None or target.deleted or target.ephemeral:
                if ref.get("fail_if_not_exists", True):
                    raise _form_error(["message_reference"], "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
            else:
                reference_id, kind = target.id, 19
        flags = int(payload.get("flags") or 0) & SENDABLE_FLAGS
        m = self._new_message(channel_id, payload, body.files, flags=flags, type=kind, reference_id=reference_id)
        allowed = payload.get("allowed_mentions")
        if reference_id is not None and (allowed is None or allowed.get("replied_user")):
            m.mention_ids.append(self._find(reference_id).author_id)
        await self._dispatch("MESSAGE_CREATE", self._message_json(m, gateway=True))
        return self._message_json(m)

    async def _get_message(self, request, body, cid, mid) -> dict:
        self._channel_json(int(cid))
        return self._message_json(self._live(int(cid), int(mid)))

    async def _edit_message(self, request, body, cid, mid) -> dict:
        self._channel_json(int(cid))
        m = self._live(int(cid), int(mid))
        payload = body.json if isinstance(body.json, dict) else {}
        if m.author_id != self.bot_user_id and set(payload) - {"flags"}:
            raise DiscordError(403, "Cannot edit a message authored by another user", 50005)
        self._edit(m, payload, body.files)
        await self._dispatch("MESSAGE_UPDATE", self._message_json(m, gateway=True))
        return self._message_json(m)

    async def _delete_message(self, request, body, cid, mid) -> None:
        self._channel_json(int(cid))
        await self._delete(self._live(int(cid), int(mid)))

    async def _typing(self, request, body, cid) -> None:
        self._channel_json(int(cid))

    async def _reaction(self, request, body, cid, mid, emoji) -> None:
        self._live(int(cid), int(mid))

    def _thread_name(self, payload: dict) -> str:
        name = str(payload.get("name") or "").strip()
        if not 1 <= len(name) <= 100:
            raise _form_error(["name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        return name

    async def _new_thread(self, thread: Thread) -> dict:
        self.threads[thread.id] = thread
        # THREAD_CREATE (newly_created) lets the client cache it: get_channel(thread.id) works.
        await self._dispatch("THREAD_CREATE", {**self._thread_json(thread), "newly_created": True})
        return self._thread_json(thread)

    async def _thread_from_message(self, request, body, cid, mid) -> dict:
        channel_id = int(cid)
        if channel_id in self.threads:
            raise DiscordError(400, "Cannot execute action on this channel type", 50024)
        self._channel_json(channel_id)
        m = self._live(channel_id, int(mid))
        payload = body.json if isinstance(body.json, dict) else {}
        name = self._thread_name(payload)
        if m.id in self.threads:
            raise DiscordError(400, "A thread has already been created for this message", 160004)
        m.flags |= HAS_THREAD
        # A thread started from a message shares that message's id.
        return await self._new_thread(Thread(m.id, channel_id, name, m.id, 11, self.bot_user_id,
                                             int(payload.get("auto_archive_duration") or 1440)))

    async def _thread_without_message(self, request, body, cid) -> dict:
        channel_id = int(cid)
        if channel_id in self.threads:
            raise DiscordError(400, "Cannot execute action on this channel type", 50024)
        self._channel_json(channel_id)
        payload = body.json if isinstance(body.json, dict) else {}
        kind = int(payload.get("type") or 12)  # the API defaults to a private thread
        return await self._new_thread(Thread(self._snowflake(), channel_id, self._thread_name(payload), None, kind,
                                             self.bot_user_id, int(payload.get("auto_archive_duration") or 1440)))

    # -- REST: guild ----------------------------------------------------------------------

    def _check_guild(self, gid: str) -> None:
        if int(gid) != self.guild_id:
            raise unknown("Guild")

    async def _leave_guild(self, request, body, gid) -> None:
        """Leave Guild: 204, then GUILD_DELETE without "unavailable" (the bot was removed).
        GUILD_MEMBER_REMOVE would follow only with the privileged GUILD_MEMBERS intent."""
        if self.guilds.pop(int(gid), None) is None:
            raise unknown("Guild")
        self.left_guilds.append(int(gid))
        await self._dispatch("GUILD_DELETE", {"id": gid})
        return None

    async def _get_guild(self, request, body, gid) -> dict:
        self._check_guild(gid)
        return self._guild_json()

    async def _get_guild_channels(self, request, body, gid) -> list:
        self._check_guild(gid)
        return [self._text_channel_json(c) for c in self.channels]

    async def _get_member(self, request, body, gid, user_id) -> dict:
        self._check_guild(gid)
        if int(user_id) not in self._members:
            raise unknown("Member")
        return self._member_json(int(user_id))


# -- helpers ------------------------------------------------------------------------------


def _walk(components: list):
    for c in components or []:
        yield c
        yield from _walk(c.get("components") or [])
        if isinstance(c.get("component"), dict):
            yield from _walk([c["component"]])
        if isinstance(c.get("accessory"), dict):
            yield from _walk([c["accessory"]])


def _number_components(components: list) -> list:
    """Discord numbers every component (depth first, from 1) that has no "id"."""
    components = json.loads(_dumps(components))  # a private copy
    taken = {c["id"] for c in _walk(components) if isinstance(c.get("id"), int)}
    n = 0
    for c in _walk(components):
        if "id" not in c or c["id"] is None:
            n += 1
            while n in taken:
                n += 1
            c["id"] = n
    return components


def _id_of(component: dict) -> dict:
    return {"id": component["id"]} if "id" in component else {}


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _image_size(data: bytes) -> tuple[int, int] | None:
    try:
        from PIL import Image  # deferred: importing the module stays cheap
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # not an image PIL can read: Discord leaves width/height out too
        return None


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeDiscord(token=args.token)
    await fake.serve_forever(args.port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve a fake Discord (REST v10 + gateway) on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--token", default="bot-token")
    try:
        asyncio.run(_serve(parser.parse_args()))
    except KeyboardInterrupt:
        pass
