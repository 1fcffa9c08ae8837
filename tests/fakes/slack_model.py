"""The fake Slack's records (calls, messages, uploads), its limits, and SlackError, the
`"ok": false` answer an API method raises."""

from __future__ import annotations

from dataclasses import dataclass, field

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
