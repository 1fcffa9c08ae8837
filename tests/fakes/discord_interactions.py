"""The fake Discord's interactions: building what a user's slash command, click or modal
sends, and the REST routes a bot answers on (callback, followups, @original webhooks)."""

from __future__ import annotations

import base64
import secrets
import time

from tests.fakes.discord_model import (
    EPHEMERAL,
    EVERYONE_PERMISSIONS,
    INTERACTION_FLAGS,
    LOADING,
    DiscordError,
    Interaction,
    Message,
    _form_error,
    _id_of,
    _Pending,
    unknown,
)


class Interactions:
    """Part of FakeDiscord (tests/fakes/discord_server.py), which holds the state it uses."""

    # -- interactions: building ---------------------------------------------------------

    def _find_command(self, name: str, kind: int) -> tuple[dict, int | None]:
        for guild_id, commands in [
            (self.guild_id, self.guild_commands.get(self.guild_id, [])),
            (None, self.global_commands),
        ]:
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
                raise AssertionError(
                    f"{where}: length {len(value)} outside [{o.get('min_length', 0)}, {o.get('max_length', 6000)}]"
                )
        elif kind in (4, 10):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or (kind == 4 and not isinstance(value, int))
            ):
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
                    **self._channel_json(value),
                    "permissions": str(EVERYONE_PERMISSIONS),
                }
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
                raise AssertionError(
                    f"modal input {cid!r}: length {len(value)} outside "
                    f"[{component.get('min_length', 0)}, {component.get('max_length', 4000)}]"
                )
            return {"type": 4, **_id_of(component), "custom_id": cid, "value": value}
        chosen = values.get(cid, [])
        return {
            "type": kind,
            **_id_of(component),
            "custom_id": cid,
            "values": list(chosen) if isinstance(chosen, (list, tuple)) else [chosen],
        }

    async def _interact(
        self,
        kind: int,
        user_id: int,
        channel_id: int,
        data: dict,
        *,
        message_type: int = 0,
        message: Message | None = None,
        metadata: dict | None = None,
    ) -> Interaction:
        if channel_id not in self.channels and channel_id not in self.threads:
            raise AssertionError(f"unknown channel {channel_id}")
        self._check_bot_in_guild()
        iid = self._snowflake()
        # Real tokens are long opaque strings that begin with base64("interaction:").
        token = "aW50ZXJhY3Rpb246" + base64.urlsafe_b64encode(
            f"{iid}:{secrets.token_urlsafe(96)}".encode()
        ).decode().rstrip("=")
        perms = self._permissions_of(user_id)
        payload = {
            "app_permissions": str(self._permissions_of(self.bot_user_id)),
            "application_id": str(self.app_id),
            "attachment_size_limit": self.upload_limit,
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "channel": {**self._channel_json(channel_id), "permissions": str(perms)},
            "channel_id": str(channel_id),
            "context": 0,
            "data": data,
            "entitlement_sku_ids": [],
            "entitlements": [],
            "guild": {"features": [], "id": str(self.guild_id), "locale": "en-US"},
            "guild_id": str(self.guild_id),
            "guild_locale": "en-US",
            "id": str(iid),
            "locale": "en-US",
            "member": self._member_json(user_id, permissions=True),
            "token": token,
            "type": kind,
            "version": 1,
        }
        if message is not None:
            payload["message"] = self._message_json(message)
        interaction = Interaction(iid, token, kind, channel_id, user_id)
        meta = {
            "id": str(iid),
            "type": kind,
            "user": self._user_json(user_id),
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            **(metadata or {}),
        }
        self._pending[token] = _Pending(
            interaction,
            payload,
            time.monotonic(),
            meta,
            message_type=message_type,
            message_id=message.id if message is not None else None,
        )
        self.interactions[iid] = interaction
        await self._dispatch("INTERACTION_CREATE", payload)
        return interaction

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
            msg = self._new_message(
                p.interaction.channel_id,
                data,
                body.files,
                flags=flags,
                type=p.message_type,
                pending=p,
                metadata=p.metadata,
            )
        elif kind == 5:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            msg = Message(
                self._snowflake(),
                p.interaction.channel_id,
                self.bot_user_id,
                "",
                [],
                [],
                [],
                None,
                flags=flags,
                type=p.message_type,
                webhook_interaction=p.interaction.id,
                interaction_metadata=p.metadata,
            )
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
            interaction.update(
                response_message_id=str(msg.id),
                response_message_loading=msg.loading,
                response_message_ephemeral=msg.ephemeral,
            )
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
            await self._dispatch(
                "MESSAGE_DELETE", {"id": str(m.id), "channel_id": str(m.channel_id), "guild_id": str(self.guild_id)}
            )
