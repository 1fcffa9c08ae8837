"""The fake Discord's REST plumbing: the route table, bodies (JSON and multipart), rate-limit
headers, injected failures, downloads, and the users, application and command routes."""

from __future__ import annotations

import hashlib
import json
import math
import mimetypes
import re
import time

from aiohttp import web

from tests.fakes.discord_command_shape import check_options
from tests.fakes.discord_model import (
    APP_FLAGS,
    ERRORS,
    Call,
    DiscordError,
    _Body,
    _dumps,
    _File,
    _form_error,
    _sniff,
    unknown,
    user_object,
)


class RestPlumbing:
    """Part of FakeDiscord (tests/fakes/discord_server.py), which holds the state it uses."""

    # -- outage controls (tests call these) ---------------------------------------------

    def refuse_for(
        self, method: str, path_regex: str, seconds: float, status: int = 503, *, retry_after: float | None = None
    ) -> None:
        """Refuse every REST call matching METHOD and path with `status` for `seconds` (an outage
        window), as fail_next() answers one."""
        self._windows.append((method.upper(), re.compile(path_regex), time.monotonic() + seconds, status, retry_after))

    def lose_answers(self, method: str, path_regex: str, status: int = 503, *, times: int = 1) -> None:
        """Carry out the next `times` REST calls matching METHOD and path, then answer each with
        `status` (a proxy in front of Discord failing after the message was created)."""
        self._lost_answers.append([method.upper(), re.compile(path_regex), status, times])

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
            (
                r"/applications/" + d % "app_id" + "/commands",
                True,
                {"GET": self._get_commands, "PUT": self._put_commands},
            ),
            (
                r"/applications/" + d % "app_id" + "/guilds/" + d % "guild_id" + "/commands",
                True,
                {"GET": self._get_commands, "PUT": self._put_commands},
            ),
            (r"/interactions/" + d % "iid" + "/" + w + "/callback", False, {"POST": self._callback}),
            (r"/webhooks/" + d % "app_id" + "/" + w, False, {"POST": self._followup}),
            (
                r"/webhooks/" + d % "app_id" + "/" + w + r"/messages/(?P<mid>@original|\d+)",
                False,
                {"GET": self._hook_get, "PATCH": self._hook_edit, "DELETE": self._hook_delete},
            ),
            (r"/channels/" + d % "cid", True, {"GET": self._get_channel, "PATCH": self._edit_channel}),
            (r"/channels/" + d % "cid" + "/messages", True, {"GET": self._history, "POST": self._post_message}),
            (
                r"/channels/" + d % "cid" + "/messages/" + d % "mid",
                True,
                {"GET": self._get_message, "PATCH": self._edit_message, "DELETE": self._delete_message},
            ),
            (
                r"/channels/" + d % "cid" + "/messages/" + d % "mid" + "/threads",
                True,
                {"POST": self._thread_from_message},
            ),
            (r"/channels/" + d % "cid" + "/threads", True, {"POST": self._thread_without_message}),
            (r"/channels/" + d % "cid" + "/typing", True, {"POST": self._typing}),
            (
                r"/channels/" + d % "cid" + "/messages/" + d % "mid" + r"/reactions/(?P<emoji>[^/]+)/@me",
                True,
                {"PUT": self._reaction, "DELETE": self._reaction},
            ),
            (r"/guilds/" + d % "gid", True, {"GET": self._get_guild}),
            (r"/guilds/" + d % "gid" + "/channels", True, {"GET": self._get_guild_channels}),
            (r"/guilds/" + d % "gid" + "/members/" + d % "user_id", True, {"GET": self._get_member}),
        ]
        return [(re.compile(pattern + "$"), auth, methods) for pattern, auth, methods in table]

    def _ratelimit_headers(self, method: str, path: str) -> dict[str, str]:
        # One bucket per route template, as Discord hashes them.
        template = re.sub(r"\d+", "_", re.sub(r"(/(?:interactions|webhooks)/\d+/)[^/]+", r"\1_", path))
        bucket = hashlib.md5(f"{method} {template}".encode()).hexdigest()
        return {
            "X-RateLimit-Limit": str(self.ratelimit_limit),
            "X-RateLimit-Remaining": str(self.ratelimit_limit - 1),
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": bucket,
            "Via": "1.1 google",
        }

    def _json(self, body, status: int = 200, headers: dict | None = None) -> web.Response:
        # body= with content_type= keeps the header exactly "application/json" (see module doc).
        return web.Response(body=_dumps(body).encode(), status=status, content_type="application/json", headers=headers)

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
        now = time.monotonic()
        for m, pattern, until, status, retry_after in self._windows:
            if now < until and m in ("*", method) and pattern.search(path):
                return self._refusal(method, path, status, None, retry_after)
        for n, (m, pattern, status, body, retry_after) in enumerate(self._failures):
            if m in ("*", method) and pattern.search(path):
                del self._failures[n]
                return self._refusal(method, path, status, body, retry_after)
        return None

    def _refusal(
        self, method: str, path: str, status: int, body: dict | None, retry_after: float | None
    ) -> web.Response:
        headers = self._ratelimit_headers(method, path)
        if status == 429:
            retry_after = 0.05 if retry_after is None else retry_after
            body = body or {
                "message": "You are being rate limited.",
                "retry_after": retry_after,
                "global": False,
            }
            headers.update(
                {
                    "Retry-After": str(math.ceil(retry_after)),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                    "X-RateLimit-Scope": "global" if body.get("global") else "user",
                }
            )
            if body.get("global"):
                headers["X-RateLimit-Global"] = "true"
        elif body is None:
            message, code = ERRORS.get(status, (f"{status}: Error", 0))
            body = {"message": message, "code": code}
        if retry_after is not None and status != 429:
            headers["Retry-After"] = str(math.ceil(retry_after))
        return self._json(body, status, headers)

    def _answer_lost(self, method: str, path: str) -> int | None:
        for entry in self._lost_answers:
            m, pattern, status, times = entry
            if times > 0 and m in ("*", method) and pattern.search(path):
                entry[3] -= 1
                return status
        return None

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path, method = "/" + request.match_info["tail"], request.method
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = await self._read_body(request)
        except (ValueError, UnicodeDecodeError):
            self.calls.append(Call(method, path, None, [], headers, dict(request.query)))
            return self._json({"message": "The request body contains invalid JSON.", "code": 50109}, 400)
        self.calls.append(
            Call(method, path, body.json, [(f.filename, f.data) for f in body.files], headers, dict(request.query))
        )
        rl = self._ratelimit_headers(method, path)
        if self.outage is not None:
            return self._json({"message": f"{self.outage}: Service Unavailable", "code": 0}, self.outage)
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
            if (lost := self._answer_lost(method, path)) is not None:
                return self._json({"message": f"{lost}: Service Unavailable", "code": 0}, lost)
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
        return {
            **self._bot_user(),
            "verified": True,
            "mfa_enabled": False,
            "email": None,
            "locale": "en-US",
            "bio": "",
            "premium_type": 0,
        }

    async def _get_user(self, request, body, user_id) -> dict:
        if int(user_id) not in self._members:
            raise unknown("User")
        return self._user_json(int(user_id))

    async def _get_application(self, request, body) -> dict:
        owner = user_object(self.guild_id + 9, "owner", "Owner")
        return {
            "id": str(self.app_id),
            "name": self.bot_name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": owner,
            "flags": APP_FLAGS,
            "team": None,
            "bot": self._bot_user(),
            "guild_id": None,
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "redirect_uris": [],
            "tags": [],
            "approximate_guild_count": 1,
            "approximate_user_install_count": 0,
            "integration_types_config": {"0": {}},
            "install_params": {"scopes": ["bot", "applications.commands"], "permissions": "0"},
        }

    async def _get_gateway(self, request, body) -> dict:
        return {"url": self.gateway_url}

    async def _get_gateway_bot(self, request, body) -> dict:
        return {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1},
        }

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
            raise (
                _form_error([], "BASE_TYPE_ARRAY", "Must be an array.")
                if body.json is not None
                else DiscordError(400, "400: Bad Request", 0)
            )
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
            check_options([n, "options"], c.get("options") or [])
            previous = next((p for p in old if p["name"] == name and p["type"] == kind), None)
            cmd = {
                "id": previous["id"] if previous else str(self._snowflake()),
                "application_id": str(self.app_id),
                "version": str(self._snowflake()),
                "default_member_permissions": c.get("default_member_permissions"),
                "type": kind,
                "name": name,
                "name_localizations": c.get("name_localizations"),
                "description": description if kind == 1 else "",
                "description_localizations": c.get("description_localizations"),
                "contexts": c.get("contexts"),
                "integration_types": c.get("integration_types") or [0],
                "nsfw": bool(c.get("nsfw", False)),
            }
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
