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
import re
from collections import defaultdict

from aiohttp import web

from tests.fakes.discord_channels import ChannelRoutes
from tests.fakes.discord_gateway import Gateway
from tests.fakes.discord_interactions import Interactions
from tests.fakes.discord_model import (
    API,
    BOT_ROLE_PERMISSIONS,
    EVERYONE_PERMISSIONS,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    Call,
    Interaction,
    Message,
    Thread,
    _Conn,
    _dumps,
    _id_of,
    _Pending,
    _Session,
    _walk,
    user_object,
)
from tests.fakes.discord_rest import RestPlumbing
from tests.fakes.discord_state import GuildState
from tests.fakes.loopback import LoopbackServer


class FakeDiscord(GuildState, Gateway, Interactions, RestPlumbing, ChannelRoutes, LoopbackServer):
    """One guild (guild_id) with one text channel (channel_id), the bot as a member, and
    users added on demand. Test controls: add_member / add_channel / attachment, the user
    actions (slash, message_command, click, submit_modal, user_message), expire_token,
    fail_next, refuse_for, lose_answers, outage, reconnect_clients; inspect calls, messages, threads, commands,
    interaction_responses, events. slash() checks options against the synced command
    (types, choices, ranges, required) as Discord's client does, and raises AssertionError
    for what no real user could send."""

    label = "Discord"

    heartbeat_interval = 41250  # ms, what Discord sends in HELLO
    callback_deadline: float | None = 3.0  # s to answer an interaction; None turns the check off
    ratelimit_limit = 50  # sent on every response; Remaining stays at limit-1 so nobody sleeps
    _runner_options = {"handler_cancellation": True, "shutdown_timeout": 0.1}

    def __init__(
        self,
        *,
        token: str = "bot-token",
        app_id: int = 1000,
        bot_user_id: int = 1000,
        guild_id: int = 2000,
        channel_id: int = 3000,
        upload_limit: int = 10 * 1024 * 1024,
    ):
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
        self.channels: dict[int, dict] = {
            channel_id: {"name": "general", "position": 0, "topic": None, "guild": guild_id}
        }
        # Every guild the bot is in: the main one, and bare extra ones (add_guild) that it may leave.
        self.guilds: dict[int, str] = {guild_id: "Imagine Test"}
        self.left_guilds: list[int] = []  # in the order the bot left them (DELETE /users/@me/guilds/{id})
        self._roles = {
            guild_id: ("@everyone", EVERYONE_PERMISSIONS, 0),
            guild_id + 1: (self.bot_name, BOT_ROLE_PERMISSIONS, 2),
            guild_id + 2: ("Moderators", MANAGE_GUILD | MANAGE_MESSAGES, 1),
        }
        self._members: dict[int, dict] = {}
        self._pending: dict[str, _Pending] = {}  # token -> interaction state
        self._modals: dict[tuple[int, str], tuple[dict, _Pending]] = {}  # (user, custom_id) -> shown modal
        self._failures: list[tuple[str, re.Pattern, int, dict | None, float | None]] = []
        self.outage: int | None = None  # while set, every REST call gets this status (a 5xx: Discord is down)
        # Calls carried out whose answer is then lost: (METHOD, path pattern, status, how many more).
        self._lost_answers: list[list] = []
        # Outage windows: (METHOD, path pattern, monotonic deadline, status, retry_after).
        self._windows: list[tuple[str, re.Pattern, float, int, float | None]] = []
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

    def add_member(
        self, user_id: int, *, manage_guild: bool = False, name: str | None = None, roles: list[int] = ()
    ) -> dict:
        """A guild member; with manage_guild they hold the Moderators role (MANAGE_GUILD), and
        `roles` (add_role ids) besides. Interactions and messages carry their role ids."""
        name = name or f"user{user_id}"
        user = user_object(user_id, name, name.title())
        self._add_member_record(user_id, user, roles=([self.guild_id + 2] if manage_guild else []) + list(roles))
        return self._member_json(user_id, permissions=True)

    def add_role(self, name: str, *, permissions: int = 0) -> int:
        """A role of the guild (no permissions of its own unless given): its id. Add it before
        the client connects, as channels are (GUILD_CREATE carries every role)."""
        role_id = self.guild_id + 100 + len(self._roles)
        self._roles[role_id] = (name, permissions, len(self._roles))
        return role_id

    def add_channel(
        self, channel_id: int, *, name: str = "other", topic: str | None = None, guild_id: int | None = None
    ) -> None:
        """Another text channel, of the main guild or of one add_guild() added (`guild_id`); add
        it before the client connects (its guild's GUILD_CREATE carries it)."""
        self.channels[channel_id] = {
            "name": name,
            "position": len(self.channels),
            "topic": topic,
            "guild": guild_id or self.guild_id,
        }

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

    def fail_next(
        self, method: str, path_regex: str, status: int, body: dict | None = None, retry_after: float | None = None
    ) -> None:
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

        lines = [
            f"  {c.method} {c.path}"
            + (f" {short(c.json)}" if c.json is not None else "")
            + (f" files={[f for f, _ in c.files]}" if c.files else "")
            for c in self.calls
        ]
        events = [e for e, _ in self.events]
        return "\n".join(lines or ["  (none)"]) + f"\n  gateway dispatches: {events}"

    # -- test controls: users act ----------------------------------------------------

    async def slash(
        self,
        name: str,
        options: dict | None = None,
        *,
        user_id: int,
        channel_id: int | None = None,
        attachment: dict | None = None,
    ) -> Interaction:
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
        if any(o["type"] in (1, 2) for o in defs):
            # Discord: a command with subcommands (or a group) cannot itself be run; the client offers only its leaves.
            raise AssertionError(f"/{name}: pick a subcommand of it: {[o['name'] for o in defs]}")
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
        return await self._interact(
            2, user_id, channel_id or self.channel_id, data, message_type=20, metadata={"name": name, "command_type": 1}
        )

    async def message_command(self, name: str, target: Message, *, user_id: int) -> Interaction:
        """A user picks Apps > <name> on a message (a MESSAGE context menu command)."""
        command, guild_id = self._find_command(name, 3)
        data = {
            "id": command["id"],
            "name": name,
            "type": 3,
            "target_id": str(target.id),
            "resolved": {"messages": {str(target.id): self._message_json(target)}},
        }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return await self._interact(
            2,
            user_id,
            target.channel_id,
            data,
            message_type=23,
            metadata={"name": name, "command_type": 3, "target_message_id": str(target.id)},
        )

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
        return await self._interact(
            3, user_id, message.channel_id, data, message=message, metadata={"interacted_message_id": str(message.id)}
        )

    async def submit_modal(
        self, custom_id: str, values: dict[str, str], *, user_id: int, channel_id: int | None = None
    ) -> Interaction:
        """A user fills in and submits a modal the bot showed them (callback type 9)."""
        shown = self._modals.pop((user_id, custom_id), None)
        if shown is None:
            raise AssertionError(
                f"no modal {custom_id!r} was shown to user {user_id}; shown: {[k for k in self._modals]}"
            )
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
        return await self._interact(
            5,
            user_id,
            channel_id or origin.interaction.channel_id,
            {"custom_id": custom_id, "components": components},
            message=message,
            metadata=metadata,
        )

    async def user_message(
        self,
        content: str,
        *,
        user_id: int,
        channel_id: int | None = None,
        reply_to: Message | None = None,
        attachments: list[dict] = (),
    ) -> Message:
        """A user posts in a channel or thread; MESSAGE_CREATE goes to the connected clients."""
        cid = channel_id or self.channel_id
        if cid not in self.channels and cid not in self.threads:
            raise AssertionError(f"unknown channel {cid}")
        self._check_bot_in_guild()
        self._ensure_member(user_id)
        # Discord's client pings the replied-to author by default: they land in "mentions".
        m = Message(
            self._snowflake(),
            cid,
            user_id,
            content,
            [],
            [],
            [dict(a) for a in attachments],
            reply_to.id if reply_to else None,
            type=19 if reply_to else 0,
            nonce=str(self._snowflake()),
            mention_ids=[reply_to.author_id] if reply_to else [],
        )
        self.messages[cid].append(m)
        await self._dispatch("MESSAGE_CREATE", self._message_json(m, gateway=True))
        return m

    async def reconnect_clients(self) -> None:
        """Send op 7 RECONNECT, as Discord does before moving a session; clients RESUME."""
        for conn in list(self._conns):
            await conn.send({"t": None, "s": None, "op": 7, "d": None})


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
