"""The fake Discord's gateway websocket: HELLO, IDENTIFY, RESUME, heartbeats, member
requests, and dispatching events to each session (zlib-stream compressed, as discord.py asks)."""

from __future__ import annotations

import json
import secrets

from aiohttp import WSMsgType, web

from tests.fakes.discord_model import (
    APP_FLAGS,
    GUILD_MESSAGES,
    MESSAGE_CONTENT,
    TRACE,
    _Conn,
    _Session,
)


class Gateway:
    """Part of FakeDiscord (tests/fakes/discord_server.py), which holds the state it uses."""

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
            if (
                event != "MESSAGE_DELETE"
                and not s.intents & MESSAGE_CONTENT
                and author != self.bot_user_id
                and not mentioned
            ):
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
            await conn.send(
                {"t": None, "s": None, "op": 10, "d": {"heartbeat_interval": self.heartbeat_interval, "_trace": TRACE}}
            )
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
        ready = {
            "v": 10,
            "user_settings": {},
            "user": {
                **self._bot_user(),
                "verified": True,
                "mfa_enabled": False,
                "email": None,
                "locale": "en-US",
                "premium_type": 0,
            },
            "session_type": "normal",
            "session_id": s.id,
            "resume_gateway_url": self.gateway_url,
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["rotterdam", "london", "madrid"],
            "auth": {},
            "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
            "application": {"id": str(self.app_id), "flags": APP_FLAGS},
            "_trace": TRACE,
        }
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
        found = [
            uid
            for uid, rec in self._members.items()
            if (uid in ids if ids else rec["user"]["username"].lower().startswith(query))
        ]
        limit = d.get("limit") or 0
        if limit:
            found = found[:limit]
        chunk = {
            "guild_id": str(self.guild_id),
            "members": [self._member_json(u) for u in found],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(i) for i in ids - set(found)],
        }
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        await self._dispatch("GUILD_MEMBERS_CHUNK", chunk, sessions=[s])
