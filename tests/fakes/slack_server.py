"""A loopback fake of the Slack Web API (slack.com/api), its file hosts and response_urls.

It answers with the JSON the real service sends, so the unmodified slack_sdk
``AsyncWebClient(token=..., base_url=fake.url)`` (and slack_bolt on top of it) runs
against it. Every API call is recorded in ``fake.calls``; what the bot posted is kept
per channel in ``fake.messages``, finished uploads in ``fake.uploads``.

Wire format, as slack_sdk 3.48 sends it:
* chat.postMessage / update / postEphemeral: JSON body (``blocks`` is a real list).
* everything else (auth.test, chat.delete, users.info, usergroups.*, files.*): ``params=``, which for a
  POST ends up in the *query string* with an empty form body; values are strings.
* the token always travels as ``Authorization: Bearer``; Slack also takes a ``token`` arg.
* files_upload_v2 = files.getUploadURLExternal (filename, length) -> raw-bytes POST to
  upload_url (application/octet-stream, no auth header; the URL is the credential;
  a non-200 answer raises SlackRequestError) -> files.completeUploadExternal (``files``
  as a JSON string). No files.info call since 3.23.

Requests a bolt app receives, signed as Slack signs them: tests/fakes/slack_requests.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict, deque

from aiohttp import web

from tests.fakes.loopback import LoopbackServer
from tests.fakes.slack_methods import WebApiMethods
from tests.fakes.slack_model import (
    LOGIN_HTML,
    MAX_BLOCKS,
    MAX_TEXT,
    TS_START,
    Call,
    Message,
    SlackError,
    Upload,
)
from tests.fakes.slack_requests import block_action_body, event_body, signed_headers, slash_command_body
from tests.fakes.slack_usergroups import BOT_SCOPES, UsergroupMethods

# Tests import the fake and the request builders from here.
__all__ = [
    "FakeSlack",
    "Call",
    "Message",
    "Upload",
    "SlackError",
    "block_action_body",
    "event_body",
    "signed_headers",
    "slash_command_body",
]


class FakeSlack(WebApiMethods, UsergroupMethods, LoopbackServer):
    label = "Slack"

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        team_id: str = "T1",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_id: str = "A1",
    ):
        self.bot_token, self.team_id, self.app_id = bot_token, team_id, app_id
        self.bot_user_id, self.bot_id = bot_user_id, bot_id
        self.url = self.root = ""
        self.calls: list[Call] = []
        self.messages: dict[str, list[Message]] = defaultdict(list)
        self.uploads: list[Upload] = []
        self.users: dict[str, dict] = {}
        self.usergroups: dict[str, dict] = {}  # add_usergroup()
        self.scopes: set[str] = set(BOT_SCOPES)  # what the bot token was granted (discard one to test)
        self.files: dict[str, bytes] = {}
        self.responses: list[dict] = []  # JSON bodies POSTed to response_url()s
        self.downloads: list[Call] = []  # GETs of /files-pri/..., served or not
        # Downloads being served now, the most at once, and the most at once per file owner;
        # hold_downloads() keeps them open until release_downloads().
        self.downloads_in_flight: Counter[str] = Counter()
        self.download_high_water = 0
        self.user_download_high_water: Counter[str] = Counter()
        self._downloads_open = asyncio.Event()
        self._downloads_open.set()
        self._meta: dict[str, dict] = {}  # file id -> Slack file object (user and bot files)
        self._pending: dict[str, dict] = {}  # file id -> {filename, length, data} until completed
        self._failures: dict[str, deque] = defaultdict(deque)
        self._held: dict[str, asyncio.Event] = {}  # hold(): calls to these wait for release()
        # method -> (until, status, retry_after): refused until the monotonic deadline.
        self._outages: dict[str, tuple[float, int, int | None]] = {}
        # Seconds after a completed upload during which files.info shows no share (real Slack
        # shares asynchronously); completion times by file id.
        self.share_lag = 0.0
        self._shared_at: dict[str, float] = {}
        self._lost_answers: Counter[str] = Counter()  # method -> calls carried out, answer then lost
        self._ts = self._ids = self._respond = 0
        self._methods = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.delete": self._delete,
            "users.info": self._users_info,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "files.info": self._files_info,
            "files.delete": self._files_delete,
        }

    # -- lifecycle --------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)  # uploads are whole images
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{key}/{tail:.+}", self._download)
        app.router.add_post("/respond/{n}", self._respond_url)
        return app

    def _set_urls(self, root: str) -> None:
        self.root = root
        self.url = root + "/api/"  # the SDK urljoin()s the method onto it

    # -- test controls ----------------------------------------------------------------

    def add_user(
        self, user_id: str, *, is_admin: bool = False, is_owner: bool = False, name: str | None = None
    ) -> None:
        # Flags are taken as given; note that on real Slack owners are also is_admin: true.
        name = name or user_id.lower()
        self.users[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "color": "9f69e7",
            "real_name": name.title(),
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": {
                "real_name": name.title(),
                "display_name": name,
                "real_name_normalized": name.title(),
                "display_name_normalized": name,
                "team": self.team_id,
                "image_48": f"{self.root}/avatars/{user_id}_48.png",
            },
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": False,
            "is_app_user": False,
            "updated": 1_700_000_000,
            "is_email_confirmed": True,
            "who_can_share_contact_card": "EVERYONE",
        }

    def add_user_file(
        self, data: bytes, *, name: str = "photo.png", mimetype: str = "image/png", user: str = "U1"
    ) -> dict:
        """Register a file a user shared; returns it as it appears in a message event's "files"."""
        file_id = self._new_file_id()
        self.files[file_id] = data
        return dict(self._file_object(file_id, name, name, len(data), user, mimetype))

    def fail_next(
        self, method: str, error: str = "ratelimited", *, status: int = 200, retry_after: int | None = None
    ) -> None:
        """Queue one failure for ``method`` (an API method name, or "upload" for the upload POST)."""
        self._failures[method].append((error, status, retry_after))

    def hold(self, method: str) -> None:
        """Keep calls to ``method`` waiting (already in ``calls``) until release(method)."""
        self._held.setdefault(method, asyncio.Event()).clear()

    def release(self, method: str) -> None:
        self._held.pop(method, asyncio.Event()).set()

    def refuse_for(self, method: str, seconds: float, status: int = 503, *, retry_after: int | None = None) -> None:
        """Refuse every call to ``method`` (or "upload") with ``status`` for ``seconds`` (an outage
        window); a 429 names ``retry_after`` in its Retry-After header."""
        self._outages[method] = (time.monotonic() + seconds, status, retry_after)

    def refusing(self, method: str) -> bool:
        """Whether ``method`` is inside its refuse_for() window now."""
        return time.monotonic() < self._outages.get(method, (0.0, 0, None))[0]

    def lose_answers(self, method: str, times: int = 1) -> None:
        """Carry out the next ``times`` calls to ``method``, then answer each with a 500 (the
        call took effect but its answer was lost)."""
        self._lost_answers[method] += times

    def hold_downloads(self) -> None:
        """Keep every file download open (counted in downloads_in_flight) until release_downloads()."""
        self._downloads_open.clear()

    def release_downloads(self) -> None:
        self._downloads_open.set()

    def response_url(self) -> str:
        self._respond += 1
        return f"{self.root}/respond/{self._respond}"

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def posted(self, channel: str) -> list[Message]:
        """Live (not deleted) messages in a channel, ephemeral ones included."""
        return [m for m in self.messages.get(channel, []) if not m.deleted]

    def summary(self) -> str:
        def short(v):
            s = v if isinstance(v, str) else json.dumps(v)
            return repr(s if len(s) <= 60 else s[:57] + "...")

        return (
            "\n".join(f"  {c.method}({', '.join(f'{k}={short(v)}' for k, v in c.args.items())})" for c in self.calls)
            or "  (none)"
        )

    # -- plumbing ---------------------------------------------------------------------

    def _next_ts(self) -> str:
        self._ts += 1
        v = TS_START + (self._ts - 1) * 100
        return f"{v // 1_000_000}.{v % 1_000_000:06d}"

    def _new_file_id(self) -> str:
        self._ids += 1
        return f"F{self._ids:010d}"

    @staticmethod
    def _json(body: dict, status: int = 200, headers: dict | None = None) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    def _injected(self, method: str):
        if self.refusing(method):
            _, status, retry_after = self._outages[method]
            error = "ratelimited" if status == 429 else "service_unavailable"
            return error, status, {"Retry-After": str(retry_after)} if retry_after is not None else None
        if self._failures.get(method):
            error, status, retry_after = self._failures[method].popleft()
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            return error, status, headers
        return None

    @staticmethod
    async def _args(request: web.Request) -> dict:
        args = dict(request.query)
        ctype = request.content_type
        if ctype == "application/json":
            body = await request.json() if request.can_read_body else {}
            args.update(body if isinstance(body, dict) else {})
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            args.update((k, v) for k, v in (await request.post()).items() if isinstance(v, str))
        for key in ("blocks", "attachments", "files"):  # form/query clients send these as JSON text
            if isinstance(args.get(key), str):
                try:
                    args[key] = json.loads(args[key])
                except ValueError:
                    pass  # left as sent; the method answers invalid_* for it
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            args = await self._args(request)
        except ValueError:  # a body that says JSON but is not
            return self._json({"ok": False, "error": "invalid_json"})
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.calls.append(Call(method, args, headers))
        if (held := self._held.get(method)) is not None:
            await held.wait()
        if (failure := self._injected(method)) is not None:
            error, status, extra = failure
            return self._json({"ok": False, "error": error}, status, extra)
        auth = headers.get("authorization", "")
        from_header = auth.startswith("Bearer ")
        token = auth[7:] if from_header else args.get("token")
        handler = self._methods.get(method)
        try:
            if handler is None:  # Slack checks the method before the token
                raise SlackError("unknown_method", req_method=method)
            if not token:
                raise SlackError("not_authed")
            self._check_token(method, token, from_header)
            answer = {"ok": True, **handler(args)}
            if self._lost_answers[method] > 0:
                self._lost_answers[method] -= 1
                return self._json({"ok": False, "error": "internal_error"}, 500)
            return self._json(answer)
        except SlackError as e:
            return self._json(e.body)

    def _check_token(self, method: str, token: str, from_header: bool) -> None:
        """Raise SlackError unless `token` may call `method` (the Socket Mode fake adds app tokens)."""
        if token != self.bot_token:
            raise SlackError("invalid_auth")

    # -- message helpers --------------------------------------------------------------

    def _message_json(self, m: Message) -> dict:
        out = {
            "user": m.user,
            "type": "message",
            "ts": m.ts,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": m.text,
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "deleted": False,
                "name": "imagine",
                "updated": 1_700_000_000,
                "app_id": self.app_id,
                "team_id": self.team_id,
            },
        }
        if m.blocks is not None:
            out["blocks"] = m.blocks
        if m.files:
            out["files"] = [self._meta[f] for f in m.files]
            out["upload"] = False
        if m.thread_ts:
            out.update(thread_ts=m.thread_ts, parent_user_id=self._parent_user(m))
        return out

    def _parent_user(self, m: Message) -> str:
        for p in self.messages.get(m.channel, []):
            if p.ts == m.thread_ts:
                return p.user
        return "U1"  # a thread under a user's message (the usual case for a bot reply)

    @staticmethod
    def _check_content(args: dict, *, need: bool) -> None:
        text, blocks = args.get("text"), args.get("blocks")
        if need and not text and not blocks and not args.get("attachments"):
            raise SlackError("no_text")
        if text is not None and len(str(text)) > MAX_TEXT:
            raise SlackError("msg_too_long")
        if blocks is not None and (
            not isinstance(blocks, list)
            or len(blocks) > MAX_BLOCKS
            or not all(isinstance(b, dict) and "type" in b for b in blocks)
        ):
            raise SlackError("invalid_blocks")

    def _find(self, channel: str | None, ts: str | None) -> Message:
        for m in self.messages.get(channel or "", []):
            if m.ts == ts and not m.deleted and m.ephemeral_user is None:
                return m
        raise SlackError("message_not_found")

    @staticmethod
    def _channel(args: dict, key: str = "channel") -> str:
        if not args.get(key):
            raise SlackError("channel_not_found")
        return args[key]

    # -- non-API endpoints --------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if (failure := self._injected("upload")) is not None:
            error, status, extra = failure
            return web.Response(text=error, status=status, headers=extra, content_type="text/plain")
        pending = self._pending.get(file_id)
        if pending is None:
            return web.Response(text="Not Found", status=404, content_type="text/plain")
        if request.content_type == "multipart/form-data":  # Slack also takes a form with a file part
            form = await request.post()
            part = form.get("file") or next((v for v in form.values() if hasattr(v, "file")), None)
            data = part.file.read() if hasattr(part, "file") else b""
        else:  # what slack_sdk sends: the bytes as the body (application/octet-stream)
            data = await request.read()
        pending["data"] = data
        # The SDK reads text/plain bodies as text; any other type it tries to parse as JSON.
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _download(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        file_id = key.rsplit("-", 1)[-1]  # "T1-F123" -> "F123"; a bare "F123" works too
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.downloads.append(Call(request.path, {"file": file_id}, headers))
        data = self.files.get(file_id)
        if data is None:
            data = next((u.data for u in self.uploads if u.file_id == file_id), None)
        if headers.get("authorization") != f"Bearer {self.bot_token}" or data is None:
            return web.Response(text=LOGIN_HTML, content_type="text/html")
        meta = self._meta.get(file_id, {})
        owner = meta.get("user", "")
        self.downloads_in_flight[owner] += 1
        self.download_high_water = max(self.download_high_water, self.downloads_in_flight.total())
        self.user_download_high_water[owner] = max(
            self.user_download_high_water[owner], self.downloads_in_flight[owner]
        )
        try:
            await self._downloads_open.wait()
        finally:
            self.downloads_in_flight[owner] -= 1
        return web.Response(body=data, content_type=meta.get("mimetype", "application/octet-stream"))

    async def _respond_url(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.Response(text="invalid_payload", status=400, content_type="text/html")
        self.responses.append(body)
        return web.Response(text="ok", content_type="text/html")  # like incoming webhooks
