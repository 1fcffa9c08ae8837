"""The fake Discord's vocabulary: permission bits, flags, error codes, the records it keeps
(calls, messages, threads, interactions, gateway sessions) and small helpers for JSON,
snowflakes, components and attachments."""

from __future__ import annotations

import asyncio
import io
import json
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

API = "/api/v10"
DISCORD_EPOCH = 1_420_070_400_000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE, ADD_REACTIONS, VIEW_CHANNEL, SEND_MESSAGES = 1 << 0, 1 << 6, 1 << 10, 1 << 11
MANAGE_GUILD, MANAGE_MESSAGES, EMBED_LINKS, ATTACH_FILES = 1 << 5, 1 << 13, 1 << 14, 1 << 15
READ_MESSAGE_HISTORY, USE_EXTERNAL_EMOJIS, CHANGE_NICKNAME = 1 << 16, 1 << 18, 1 << 26
USE_APPLICATION_COMMANDS, MANAGE_THREADS, CREATE_PUBLIC_THREADS = 1 << 31, 1 << 34, 1 << 35
CREATE_PRIVATE_THREADS, SEND_MESSAGES_IN_THREADS, SEND_POLLS = 1 << 36, 1 << 38, 1 << 49
EVERYONE_PERMISSIONS = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | CREATE_PRIVATE_THREADS
    | SEND_MESSAGES_IN_THREADS
    | SEND_POLLS
)
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
    400: ("400: Bad Request", 0),
    401: ("401: Unauthorized", 0),
    403: ("Missing Access", 50001),
    404: ("404: Not Found", 0),
    405: ("405: Method Not Allowed", 0),
    413: ("Request entity too large", 40005),
    500: ("500: Internal Server Error", 0),
    502: ("502: Bad Gateway", 0),
    503: ("503: Service Unavailable", 0),
    504: ("504: Gateway Timeout", 0),
}


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))  # Discord sends compact JSON


def user_object(
    user_id: int, username: str, global_name: str | None, *, discriminator: str = "0", bot: bool = False
) -> dict:
    """A User object with every field Discord's API returns for one."""
    return {
        "id": str(user_id),
        "username": username,
        "global_name": global_name,
        "discriminator": discriminator,
        "avatar": None,
        **({"bot": True} if bot else {}),
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
        "collectibles": None,
        "primary_guild": None,
        "clan": None,
    }


def _iso(snowflake: int) -> str:
    """The creation time a snowflake encodes, in Discord's timestamp format."""
    ms = (snowflake >> 22) + DISCORD_EPOCH
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="microseconds")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


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
    codes = {
        "Channel": 10003,
        "Guild": 10004,
        "Member": 10007,
        "Message": 10008,
        "User": 10013,
        "Webhook": 10015,
        "interaction": 10062,
    }
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
