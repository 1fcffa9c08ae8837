"""The fake Discord's guild as JSON: ids, users, members, roles, channels and threads. The
messages and attachments in them are tests/fakes/discord_messages.py's part."""

from __future__ import annotations

import time

from tests.fakes.discord_messages import Messages
from tests.fakes.discord_model import (
    DISCORD_EPOCH,
    GUILD_PRESENCES,
    Thread,
    _iso,
    _now_iso,
    _Session,
    unknown,
    user_object,
)


class GuildState(Messages):
    """Part of FakeDiscord (tests/fakes/discord_server.py), which holds the state it uses."""

    # -- ids, users, members, channels -------------------------------------------------

    def _snowflake(self) -> int:
        # Real snowflakes: discord.py derives created_at (and an interaction's expiry) from them.
        ms = int(time.time() * 1000) - DISCORD_EPOCH
        value = max((ms << 22) | (1 << 17), self._last_id + 1)
        self._last_id = value
        return value

    def _bot_user(self) -> dict:
        return user_object(self.bot_user_id, self.bot_name, None, discriminator="4242", bot=True)

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
            out["guild_id"] = str(ch["guild"])
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
            "channels": [
                self._text_channel_json(c, guild_id=False)
                for c, ch in self.channels.items()
                if ch["guild"] == self.guild_id
            ],
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
        """An extra guild: only @everyone (its id is the guild's), the channels added to it, the bot alone."""
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
            "channels": [
                self._text_channel_json(c, guild_id=False) for c, ch in self.channels.items() if ch["guild"] == guild_id
            ],
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
