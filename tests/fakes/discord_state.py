"""The fake Discord's guild as JSON: ids, users, members, roles, channels and threads, and
the messages and attachments in them (created, edited, validated as Discord does)."""

from __future__ import annotations

import hashlib
import mimetypes
import re
import time

from tests.fakes.discord_model import (
    DISCORD_EPOCH,
    EPHEMERAL,
    GUILD_PRESENCES,
    IS_COMPONENTS_V2,
    SENDABLE_FLAGS,
    DiscordError,
    Message,
    Thread,
    _File,
    _form_error,
    _image_size,
    _iso,
    _now_iso,
    _number_components,
    _Pending,
    _Session,
    _sniff,
    unknown,
)


class GuildState:
    """Part of FakeDiscord (tests/fakes/discord_server.py), which holds the state it uses."""

    # -- ids, users, members, channels -------------------------------------------------

    def _snowflake(self) -> int:
        # Real snowflakes: discord.py derives created_at (and an interaction's expiry) from them.
        ms = int(time.time() * 1000) - DISCORD_EPOCH
        value = max((ms << 22) | (1 << 17), self._last_id + 1)
        self._last_id = value
        return value

    def _bot_user(self) -> dict:
        return {
            "id": str(self.bot_user_id),
            "username": self.bot_name,
            "global_name": None,
            "discriminator": "4242",
            "avatar": None,
            "bot": True,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
            "clan": None,
        }

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
        out = {
            "avatar": None,
            "banner": None,
            "communication_disabled_until": None,
            "deaf": False,
            "flags": 0,
            "joined_at": rec["joined_at"],
            "mute": False,
            "nick": rec["nick"],
            "pending": False,
            "premium_since": None,
            "roles": [str(r) for r in rec["roles"]],
            "unusual_dm_activity_until": None,
        }
        if user:
            out["user"] = dict(rec["user"])
        if permissions:
            out["permissions"] = str(self._permissions_of(user_id))
        return out

    def _role_json(self, role_id: int) -> dict:
        name, perms, position = self._roles[role_id]
        out = {
            "id": str(role_id),
            "name": name,
            "permissions": str(perms),
            "position": position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": role_id == self.guild_id + 1,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if role_id == self.guild_id + 1:
            out["tags"] = {"bot_id": str(self.bot_user_id)}
        return out

    def _last_message_id(self, channel_id: int) -> str | None:
        live = self.messages.get(channel_id)
        return str(live[-1].id) if live else None

    def _text_channel_json(self, channel_id: int, *, guild_id: bool = True) -> dict:
        ch = self.channels[channel_id]
        out = {
            "id": str(channel_id),
            "type": 0,
            "last_message_id": self._last_message_id(channel_id),
            "flags": 0,
            "name": ch["name"],
            "parent_id": None,
            "position": ch["position"],
            "permission_overwrites": [],
            "rate_limit_per_user": 0,
            "topic": ch["topic"],
            "nsfw": False,
            "default_thread_rate_limit_per_user": 0,
        }
        if guild_id:  # REST answers carry it; channels inside GUILD_CREATE do not
            out["guild_id"] = str(self.guild_id)
        return out

    def _thread_json(self, t: Thread) -> dict:
        count = len(self.messages.get(t.id, []))
        created = _iso(t.id)
        meta = {
            "archived": t.archived,
            "auto_archive_duration": t.auto_archive_duration,
            "archive_timestamp": created,
            "locked": False,
            "create_timestamp": created,
        }
        if t.type == 12:
            meta["invitable"] = True
        return {
            "id": str(t.id),
            "type": t.type,
            "last_message_id": self._last_message_id(t.id),
            "flags": 0,
            "guild_id": str(self.guild_id),
            "name": t.name,
            "parent_id": str(t.parent_id),
            "rate_limit_per_user": 0,
            "owner_id": str(t.owner_id),
            "thread_metadata": meta,
            "message_count": count,
            "member_count": 1,
            "total_message_sent": count,
            "member": {"id": str(t.id), "user_id": str(self.bot_user_id), "join_timestamp": created, "flags": 1},
        }

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
        return {
            "id": str(self.guild_id),
            "name": "Imagine Test",
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.guild_id + 9),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 1,
            "default_message_notifications": 1,
            "explicit_content_filter": 2,
            "roles": [self._role_json(r) for r in self._roles],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": str(self.channel_id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "max_presences": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": tier,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "safety_alerts_channel_id": None,
            "incidents_data": None,
        }

    def _guild_create_json(self, session: _Session, guild_id: int | None = None) -> dict:
        if guild_id not in (None, self.guild_id):
            return self._bare_guild_create_json(guild_id)
        # Without GUILD_PRESENCES Discord sends only the bot's own member here.
        ids = list(self._members) if session.intents & GUILD_PRESENCES else [self.bot_user_id]
        return {
            **self._guild_json(),
            "joined_at": self._members[self.bot_user_id]["joined_at"],
            "large": False,
            "unavailable": False,
            "member_count": len(self._members),
            "lazy": True,
            "voice_states": [],
            "members": [self._member_json(i) for i in ids],
            "channels": [self._text_channel_json(c, guild_id=False) for c in self.channels],
            "threads": [self._thread_json(t) for t in self.threads.values() if not t.archived],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "embedded_activities": [],
            "application_command_counts": {},
            "hub_type": None,
            "latest_onboarding_question_id": None,
        }

    def _bare_guild_create_json(self, guild_id: int) -> dict:
        """An extra guild: only @everyone (its id is the guild's), no channels, the bot alone."""
        everyone = {**self._role_json(self.guild_id), "id": str(guild_id)}
        bot = {**self._member_json(self.bot_user_id), "roles": []}
        return {
            **self._guild_json(),
            "id": str(guild_id),
            "name": self.guilds[guild_id],
            "roles": [everyone],
            "system_channel_id": None,
            "owner_id": str(guild_id + 9),
            "premium_tier": 0,
            "joined_at": _now_iso(),
            "large": False,
            "unavailable": False,
            "member_count": 1,
            "lazy": True,
            "voice_states": [],
            "members": [bot],
            "channels": [],
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "embedded_activities": [],
            "application_command_counts": {},
            "hub_type": None,
            "latest_onboarding_question_id": None,
        }

    # -- attachments, messages ---------------------------------------------------------

    def _store_attachment(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        *,
        content_type: str | None = None,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> dict:
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

    def _attachments(
        self, payload: dict, files: list[_File], channel_id: int, *, ephemeral: bool, existing: list[dict]
    ) -> list[dict]:
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
                    out.append(
                        self._store_attachment(
                            channel_id,
                            item.get("filename") or f.filename,
                            f.data,
                            description=item.get("description"),
                            ephemeral=ephemeral,
                        )
                    )
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
                        e[key] = {
                            "url": att["url"],
                            "proxy_url": att["proxy_url"],
                            "flags": 0,
                            **{k: att[k] for k in ("width", "height", "content_type") if k in att},
                        }
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
                    raise _form_error(
                        ["embeds", n, key], "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
                    )
            if len(e.get("fields") or []) > 25:
                raise _form_error(["embeds", n, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            total += (
                len(e.get("title") or "")
                + len(e.get("description") or "")
                + sum(len(f.get("name") or "") + len(f.get("value") or "") for f in e.get("fields") or [])
            )
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
                raise _form_error(
                    ["components", n],
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
            for m, c in enumerate(row.get("components") or []):
                where = ["components", n, "components", m]
                cid = c.get("custom_id")
                if c.get("type") == 2 and c.get("style") != 5 and c.get("style") != 6 and not cid:
                    raise _form_error(where + ["custom_id"], "BASE_TYPE_REQUIRED", "This field is required")
                if cid is not None and len(cid) > 100:
                    raise _form_error(where + ["custom_id"], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
                if cid is not None and cid in seen:
                    raise _form_error(
                        where + ["custom_id"],
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    )
                if len(c.get("label") or "") > 80:
                    raise _form_error(where + ["label"], "BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length.")
                if cid is not None:
                    seen.add(cid)

    def _new_message(
        self,
        channel_id: int,
        payload: dict | None,
        files: list[_File],
        *,
        flags: int = 0,
        type: int = 0,
        reference_id: int | None = None,
        pending: _Pending | None = None,
        metadata: dict | None = None,
    ) -> Message:
        payload = payload or {}
        self._validate(payload)
        atts = self._attachments(payload, files, channel_id, ephemeral=bool(flags & EPHEMERAL), existing=[])
        content = str(payload.get("content") or "")
        components = _number_components(payload.get("components") or [])
        if not (
            content or payload.get("embeds") or atts or components or payload.get("sticker_ids") or payload.get("poll")
        ):
            raise DiscordError(400, "Cannot send an empty message", 50006)
        m = Message(
            self._snowflake(),
            channel_id,
            self.bot_user_id,
            content,
            self._embeds(payload.get("embeds") or [], atts),
            components,
            atts,
            reference_id,
            flags=flags,
            type=type,
            tts=bool(payload.get("tts")),
            nonce=str(payload["nonce"]) if payload.get("nonce") is not None else None,
            webhook_interaction=pending.interaction.id if pending else None,
            interaction_metadata=metadata,
        )
        self.messages[channel_id].append(m)
        return m

    def _edit(self, m: Message, payload: dict | None, files: list[_File], *, stamp: bool = True) -> None:
        payload = payload or {}
        self._validate(payload)
        if "attachments" in payload or files:
            m.attachments = self._attachments(
                payload, files, m.channel_id, ephemeral=m.ephemeral, existing=m.attachments
            )
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
        out = {
            "type": m.type,
            "content": m.content,
            "mentions": [self._user_json(i) for i in dict.fromkeys(mentioned) if i in self._members],
            "mention_roles": [],
            "attachments": [dict(a) for a in m.attachments],
            "embeds": m.embeds,
            "timestamp": m.timestamp,
            "edited_timestamp": m.edited_timestamp,
            "flags": m.flags,
            "components": m.components,
            "id": str(m.id),
            "channel_id": str(m.channel_id),
            "author": self._user_json(m.author_id),
            "pinned": False,
            "mention_everyone": False,
            "tts": m.tts,
        }
        if m.nonce is not None:
            out["nonce"] = m.nonce
        if m.webhook_interaction is not None:
            out["webhook_id"] = str(self.app_id)
            out["application_id"] = str(self.app_id)
            if m.interaction_metadata:
                out["interaction_metadata"] = m.interaction_metadata
        if m.reference_id is not None:
            ref = self._find(m.reference_id)
            out["message_reference"] = {
                "type": 0,
                "channel_id": str(ref.channel_id if ref else m.channel_id),
                "message_id": str(m.reference_id),
                "guild_id": str(self.guild_id),
            }
            if not nested:
                out["referenced_message"] = (
                    self._message_json(ref, nested=True) if ref is not None and not ref.deleted else None
                )
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
