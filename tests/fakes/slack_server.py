"""A loopback fake of the Slack Web API (slack.com/api), its file hosts and response_urls.

It answers with the JSON the real service sends, so the unmodified slack_sdk
``AsyncWebClient(token=..., base_url=fake.url)`` (and slack_bolt on top of it) runs
against it. Every API call is recorded in ``fake.calls``; what the bot posted is kept
per channel in ``fake.messages``, finished uploads in ``fake.uploads``.

Wire format, as slack_sdk 3.48 sends it:
* chat.postMessage / update / postEphemeral: JSON body (``blocks`` is a real list).
* everything else (auth.test, chat.delete, users.info, files.*): ``params=``, which for a
  POST ends up in the *query string* with an empty form body; values are strings.
* the token always travels as ``Authorization: Bearer``; Slack also takes a ``token`` arg.
* files_upload_v2 = files.getUploadURLExternal (filename, length) -> raw-bytes POST to
  upload_url (application/octet-stream, no auth header; the URL is the credential;
  a non-200 answer raises SlackRequestError) -> files.completeUploadExternal (``files``
  as a JSON string). No files.info call since 3.23.

Also here: helpers that build signed requests to a bolt app as Slack sends them.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import mimetypes
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.loopback import LoopbackServer

TS_START = 1_700_000_000_000_100  # microseconds; ts strings look like "1700000000.000100"
MAX_TEXT = 40_000  # chat.* reject longer text with msg_too_long
MAX_BLOCKS = 50
# What files.slack.com answers a request for url_private without a valid token: a 200
# sign-in page, not a 401; bots that skip the header "download" this HTML as the image.
LOGIN_HTML = """<!DOCTYPE html>
<html lang="en-US" class="">
<head><meta charset="utf-8"><title>Slack</title>
<meta name="referrer" content="no-referrer"></head>
<body class="full_height"><div id="page"><div id="page_contents">
<h1>Sign in to your workspace</h1>
<form id="signin_form" action="/" method="post"><input type="hidden" name="signin" value="1">
<input type="email" name="email" placeholder="name@work-email.com">
<button id="signin_btn" type="submit">Sign In</button></form>
</div></div></body>
</html>
"""
# A target nobody listens on: a helper's default response_url must not reach the internet.
DEAD_URL = "http://127.0.0.1:9"


@dataclass
class Call:
    method: str
    args: dict  # query + form + JSON args merged; JSON-string args (files, blocks) parsed
    headers: dict[str, str]  # keys lower-cased


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list | None
    thread_ts: str | None
    user: str  # the bot user id
    deleted: bool = False
    ephemeral_user: str | None = None
    files: list[str] = field(default_factory=list)


@dataclass
class Upload:
    file_id: str
    filename: str
    data: bytes
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None
    title: str | None
    deleted: bool = False


class SlackError(Exception):
    """Raised inside a method handler; becomes {"ok": false, "error": ...}."""

    def __init__(self, error: str, **extra):
        super().__init__(error)
        self.body = {"ok": False, "error": error, **extra}


class FakeSlack(LoopbackServer):
    label = "Slack"

    def __init__(self, *, bot_token: str = "xoxb-test", team_id: str = "T1",
                 bot_user_id: str = "UBOT", bot_id: str = "BBOT", app_id: str = "A1"):
        self.bot_token, self.team_id, self.app_id = bot_token, team_id, app_id
        self.bot_user_id, self.bot_id = bot_user_id, bot_id
        self.url = self.root = ""
        self.calls: list[Call] = []
        self.messages: dict[str, list[Message]] = defaultdict(list)
        self.uploads: list[Upload] = []
        self.users: dict[str, dict] = {}
        self.files: dict[str, bytes] = {}
        self.responses: list[dict] = []  # JSON bodies POSTed to response_url()s
        self.downloads: list[Call] = []  # GETs of /files-pri/..., served or not
        self._meta: dict[str, dict] = {}  # file id -> Slack file object (user and bot files)
        self._pending: dict[str, dict] = {}  # file id -> {filename, length, data} until completed
        self._failures: dict[str, deque] = defaultdict(deque)
        self._ts = self._ids = self._respond = 0
        self._methods = {
            "auth.test": self._auth_test, "chat.postMessage": self._post_message,
            "chat.update": self._update, "chat.postEphemeral": self._post_ephemeral,
            "chat.delete": self._delete, "users.info": self._users_info,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload, "files.info": self._files_info,
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

    def add_user(self, user_id: str, *, is_admin: bool = False, is_owner: bool = False,
                 name: str | None = None) -> None:
        # Flags are taken as given; note that on real Slack owners are also is_admin: true.
        name = name or user_id.lower()
        self.users[user_id] = {
            "id": user_id, "team_id": self.team_id, "name": name, "deleted": False,
            "color": "9f69e7", "real_name": name.title(), "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time", "tz_offset": 0,
            "profile": {"real_name": name.title(), "display_name": name,
                        "real_name_normalized": name.title(), "display_name_normalized": name,
                        "team": self.team_id, "image_48": f"{self.root}/avatars/{user_id}_48.png"},
            "is_admin": is_admin, "is_owner": is_owner, "is_primary_owner": False,
            "is_restricted": False, "is_ultra_restricted": False, "is_bot": False,
            "is_app_user": False, "updated": 1_700_000_000, "is_email_confirmed": True,
            "who_can_share_contact_card": "EVERYONE"}

    def add_user_file(self, data: bytes, *, name: str = "photo.png", mimetype: str = "image/png",
                      user: str = "U1") -> dict:
        """Register a file a user shared; returns it as it appears in a message event's "files"."""
        file_id = self._new_file_id()
        self.files[file_id] = data
        return dict(self._file_object(file_id, name, name, len(data), user, mimetype))

    def fail_next(self, method: str, error: str = "ratelimited", *, status: int = 200,
                  retry_after: int | None = None) -> None:
        """Queue one failure for ``method`` (an API method name, or "upload" for the upload POST)."""
        self._failures[method].append((error, status, retry_after))

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
        return "\n".join(f"  {c.method}({', '.join(f'{k}={short(v)}' for k, v in c.args.items())})"
                         for c in self.calls) or "  (none)"

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
        if (failure := self._injected(method)) is not None:
            error, status, extra = failure
            return self._json({"ok": False, "error": error}, status, extra)
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else args.get("token")
        handler = self._methods.get(method)
        try:
            if handler is None:  # Slack checks the method before the token
                raise SlackError("unknown_method", req_method=method)
            if not token:
                raise SlackError("not_authed")
            if token != self.bot_token:
                raise SlackError("invalid_auth")
            return self._json({"ok": True, **handler(args)})
        except SlackError as e:
            return self._json(e.body)

    # -- message helpers --------------------------------------------------------------

    def _message_json(self, m: Message) -> dict:
        out = {"user": m.user, "type": "message", "ts": m.ts, "bot_id": self.bot_id,
               "app_id": self.app_id, "text": m.text, "team": self.team_id,
               "bot_profile": {"id": self.bot_id, "deleted": False, "name": "imagine",
                               "updated": 1_700_000_000, "app_id": self.app_id,
                               "team_id": self.team_id}}
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
        if blocks is not None and (not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS
                                   or not all(isinstance(b, dict) and "type" in b for b in blocks)):
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

    # -- API methods: each returns the body after "ok": true, or raises SlackError --------

    def _auth_test(self, args: dict) -> dict:
        return {"url": "https://imagine-test.slack.com/", "team": "Imagine Test",
                "user": "imagine", "team_id": self.team_id, "user_id": self.bot_user_id,
                "bot_id": self.bot_id, "is_enterprise_install": False}

    def _post_message(self, args: dict) -> dict:
        channel = self._channel(args)
        self._check_content(args, need=True)
        m = Message(channel, self._next_ts(), args.get("text") or "", args.get("blocks"),
                    args.get("thread_ts") or None, self.bot_user_id)
        self.messages[channel].append(m)
        return {"channel": channel, "ts": m.ts, "message": self._message_json(m)}

    def _update(self, args: dict) -> dict:
        channel = self._channel(args)
        m = self._find(channel, args.get("ts"))
        self._check_content(args, need=False)
        if "text" in args:
            m.text = args["text"] or ""
        if "blocks" in args:  # Slack keeps old blocks when omitted; [] removes them
            m.blocks = args["blocks"]
        return {"channel": channel, "ts": m.ts, "text": m.text, "message": self._message_json(m)}

    def _post_ephemeral(self, args: dict) -> dict:
        channel = self._channel(args)
        if not args.get("user"):
            raise SlackError("user_not_found")
        self._check_content(args, need=True)
        m = Message(channel, self._next_ts(), args.get("text") or "", args.get("blocks"),
                    args.get("thread_ts") or None, self.bot_user_id, ephemeral_user=args["user"])
        self.messages[channel].append(m)
        return {"message_ts": m.ts}

    def _delete(self, args: dict) -> dict:
        channel = self._channel(args)
        m = self._find(channel, args.get("ts"))
        m.deleted = True
        return {"channel": channel, "ts": m.ts}

    def _files_delete(self, args: dict) -> dict:
        # Deleting a file also removes the messages it was shared in, as on Slack.
        uploads = [u for u in self.uploads if u.file_id == args.get("file") and not u.deleted]
        if not uploads:
            raise SlackError("file_not_found")
        uploads[0].deleted = True
        for messages in self.messages.values():
            for m in messages:
                if args["file"] in m.files:
                    m.deleted = True
        return {}

    def _users_info(self, args: dict) -> dict:
        uid = args.get("user")
        if uid == self.bot_user_id:
            return {"user": {"id": uid, "team_id": self.team_id, "name": "imagine", "deleted": False,
                             "real_name": "Imagine", "is_admin": False, "is_owner": False,
                             "is_bot": True, "is_app_user": False, "updated": 1_700_000_000,
                             "profile": {"bot_id": self.bot_id, "api_app_id": self.app_id,
                                         "real_name": "Imagine", "team": self.team_id}}}
        if uid not in self.users:
            raise SlackError("user_not_found")
        return {"user": self.users[uid]}

    def _get_upload_url(self, args: dict) -> dict:
        try:
            filename, length = args["filename"], int(args["length"])
        except (KeyError, TypeError, ValueError):
            raise SlackError("invalid_arguments") from None
        file_id = self._new_file_id()
        self._pending[file_id] = {"filename": filename, "length": length, "data": None}
        return {"upload_url": f"{self.root}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, args: dict) -> dict:
        items = args.get("files")
        if not isinstance(items, list) or not items or not all(isinstance(f, dict) for f in items):
            raise SlackError("invalid_arguments")
        if any(self._pending.get(f.get("id"), {}).get("data") is None for f in items):
            raise SlackError("file_not_found")  # unknown id, or its bytes never arrived
        channels = [args["channel_id"]] if args.get("channel_id") else \
            [c for c in str(args.get("channels") or "").split(",") if c]
        thread_ts, comment = args.get("thread_ts") or None, args.get("initial_comment")
        out = []
        for item in items:
            pending = self._pending.pop(item["id"])
            title = item.get("title") or pending["filename"]
            self.uploads.append(Upload(item["id"], pending["filename"], pending["data"],
                                       channels[0] if channels else None, thread_ts, comment,
                                       item.get("title")))
            out.append(self._file_object(item["id"], pending["filename"], title,
                                         len(pending["data"]), self.bot_user_id))
        for channel in channels:  # one message carries all the files and the comment
            m = Message(channel, self._next_ts(), comment or "", None, thread_ts,
                        self.bot_user_id, files=[f["id"] for f in out])
            self.messages[channel].append(m)
            for f in out:
                entry = {"ts": m.ts, "channel_name": channel, "team_id": self.team_id,
                         "share_user_id": self.bot_user_id, "source": "UNKNOWN"}
                if thread_ts:
                    entry.update(thread_ts=thread_ts, reply_count=0, reply_users=[])
                self._meta[f["id"]]["shares"].setdefault("public", {}).setdefault(channel, []).append(entry)
                self._meta[f["id"]]["channels"].append(channel)
        # Sharing is asynchronous on real Slack: this answer carries no shares/channels and
        # so no message ts. Snapshots taken above, before the share, keep them empty.
        return {"files": out}

    def _files_info(self, args: dict) -> dict:
        if args.get("file") not in self._meta:
            raise SlackError("file_not_found")
        return {"file": self._meta[args["file"]], "comments": [],
                "response_metadata": {"next_cursor": ""}}

    def _file_object(self, file_id: str, name: str, title: str, size: int, user: str,
                     mimetype: str | None = None) -> dict:
        mimetype = mimetype or mimetypes.guess_type(name)[0] or "application/octet-stream"
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
        key = f"{self.team_id}-{file_id}"  # Slack's url_private paths are /files-pri/T-F/name
        now = int(time.time())
        obj = {"id": file_id, "created": now, "timestamp": now, "name": name, "title": title,
               "mimetype": mimetype, "filetype": ext, "pretty_type": ext.upper(), "user": user,
               "user_team": self.team_id, "editable": False, "size": size, "mode": "hosted",
               "is_external": False, "external_type": "", "is_public": True,
               "public_url_shared": False, "display_as_bot": False, "username": "",
               "url_private": f"{self.root}/files-pri/{key}/{name}",
               "url_private_download": f"{self.root}/files-pri/{key}/download/{name}",
               "media_display_type": "unknown",
               "permalink": f"https://imagine-test.slack.com/files/{user}/{file_id}/{name}",
               "permalink_public": f"https://slack-files.com/{key}-0123456789",
               "comments_count": 0, "has_rich_preview": False, "file_access": "visible"}
        self._meta[file_id] = {**obj, "shares": {}, "channels": [], "groups": [], "ims": [],
                               "has_more_shares": False}
        return {**obj, "shares": {}, "channels": [], "groups": [], "ims": [], "has_more_shares": False}

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
        return web.Response(body=data, content_type=meta.get("mimetype", "application/octet-stream"))

    async def _respond_url(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.Response(text="invalid_payload", status=400, content_type="text/html")
        self.responses.append(body)
        return web.Response(text="ok", content_type="text/html")  # like incoming webhooks


# -- requests from Slack to a bolt app ---------------------------------------------------


def signed_headers(body: str, signing_secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(signing_secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def _trigger_id() -> str:
    # Unique per invocation, like Slack's: the bot uses it to spot retries.
    return f"{int(time.time())}.1234567890.{secrets.token_hex(16)}"


def slash_command_body(command: str, text: str, *, user_id: str = "U1", channel_id: str = "C1",
                       team_id: str = "T1", trigger_id: str | None = None,
                       response_url: str | None = None, api_app_id: str = "A1") -> str:
    """application/x-www-form-urlencoded, fields in the order Slack sends them."""
    return urlencode({
        "token": "verification-token-unused", "team_id": team_id, "team_domain": "imagine-test",
        "channel_id": channel_id, "channel_name": "general", "user_id": user_id,
        "user_name": user_id.lower(), "command": command, "text": text, "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url or f"{DEAD_URL}/commands/{team_id}/1/unused",
        "trigger_id": trigger_id or _trigger_id()})


def event_body(event: dict, *, event_id: str, team_id: str = "T1", api_app_id: str = "A1",
               bot_user_id: str = "UBOT") -> str:
    return json.dumps({
        "token": "verification-token-unused", "team_id": team_id, "context_team_id": team_id,
        "context_enterprise_id": None, "api_app_id": api_app_id, "event": event,
        "type": "event_callback", "event_id": event_id, "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": bot_user_id,
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False, "event_context": f"4-eyJldCI6Im1lc3NhZ2UifQ-{event_id}"})


def block_action_body(action_id: str, value: str, *, user_id: str = "U1", channel_id: str = "C1",
                      team_id: str = "T1", message_ts: str | None = None,
                      container: dict | None = None, response_url: str | None = None,
                      block_id: str = "b1", api_app_id: str = "A1", message: dict | None = None) -> str:
    """Form body ``payload=<JSON>`` of a button click; ``container`` overrides the message one
    (pass {"type": "message", "is_ephemeral": True, ...} for a button in an ephemeral)."""
    ts = message_ts or "1700000000.000100"
    container = container or {"type": "message", "message_ts": ts, "channel_id": channel_id,
                              "is_ephemeral": False}
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id},
        "api_app_id": api_app_id, "token": "verification-token-unused", "container": container,
        "trigger_id": _trigger_id(), "team": {"id": team_id, "domain": "imagine-test"},
        "enterprise": None, "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "general"},
        "state": {"values": {}},
        "response_url": response_url or f"{DEAD_URL}/actions/{team_id}/1/unused",
        "actions": [{"action_id": action_id, "block_id": block_id,
                     "text": {"type": "plain_text", "text": action_id, "emoji": True},
                     "value": value, "type": "button", "action_ts": f"{time.time():.6f}"}]}
    if container.get("type") == "message" and not container.get("is_ephemeral"):
        # Slack includes the clicked message only when it is not ephemeral.
        payload["message"] = message or {"type": "message", "ts": container.get("message_ts", ts),
                                         "user": "UBOT", "bot_id": "BBOT", "text": "", "blocks": []}
    return urlencode({"payload": json.dumps(payload)})
