"""The fake Discord's messages and attachments: created, edited and validated as Discord does
(its limits and error codes), stored with signed CDN URLs, and rendered as REST or gateway JSON."""

from __future__ import annotations

import hashlib
import mimetypes
import re
import time

from tests.fakes.discord_model import (
    EPHEMERAL,
    IS_COMPONENTS_V2,
    SENDABLE_FLAGS,
    DiscordError,
    Message,
    _File,
    _form_error,
    _image_size,
    _now_iso,
    _number_components,
    _Pending,
    _sniff,
    unknown,
)


class Messages:
    """Part of FakeDiscord (tests/fakes/discord_server.py), through GuildState, which holds the
    state it uses and the ids, users and channels (_snowflake, _user_json, _thread_json) it calls."""

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
