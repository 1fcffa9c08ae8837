"""The fake Discord's REST routes for channels, messages, threads and the guild."""

from __future__ import annotations

from tests.fakes.discord_model import (
    HAS_THREAD,
    SENDABLE_FLAGS,
    DiscordError,
    Thread,
    _form_error,
    unknown,
)


class ChannelRoutes:
    """Part of FakeDiscord (tests/fakes/discord_server.py), which holds the state it uses."""

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
        if payload.get("enforce_nonce") and payload.get("nonce") is not None:
            # Discord returns the message this author already created with the nonce (within
            # a few minutes) instead of creating a second one.
            nonce = str(payload["nonce"])
            for earlier in self.messages[channel_id]:
                if earlier.nonce == nonce and earlier.author_id == self.bot_user_id and not earlier.deleted:
                    return self._message_json(earlier)
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
        return await self._new_thread(
            Thread(
                m.id, channel_id, name, m.id, 11, self.bot_user_id, int(payload.get("auto_archive_duration") or 1440)
            )
        )

    async def _thread_without_message(self, request, body, cid) -> dict:
        channel_id = int(cid)
        if channel_id in self.threads:
            raise DiscordError(400, "Cannot execute action on this channel type", 50024)
        self._channel_json(channel_id)
        payload = body.json if isinstance(body.json, dict) else {}
        kind = int(payload.get("type") or 12)  # the API defaults to a private thread
        return await self._new_thread(
            Thread(
                self._snowflake(),
                channel_id,
                self._thread_name(payload),
                None,
                kind,
                self.bot_user_id,
                int(payload.get("auto_archive_duration") or 1440),
            )
        )

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
        return [self._text_channel_json(c) for c, ch in self.channels.items() if ch["guild"] == self.guild_id]

    async def _get_member(self, request, body, gid, user_id) -> dict:
        self._check_guild(gid)
        if int(user_id) not in self._members:
            raise unknown("Member")
        return self._member_json(int(user_id))
