"""The soak bench's mixed load, sent as Slack sends it (signed requests on /slack/events):
renders (/imagine), edits (a reply in an image's thread), reruns ([Reroll]) and deletes
([Delete], by the person who asked). It remembers what it sent, and where each answer was to
go, so the tally can say what became of every request.
"""

from __future__ import annotations

import itertools
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.fakes.slack_requests import block_action_body, event_body, signed_headers, slash_command_body
from tests.fakes.slack_server import FakeSlack
from tests.support.slack_world import FORM

USERS = tuple(f"U{n}" for n in range(1, 7))
MIX = {"render": 40, "edit": 25, "rerun": 20, "delete": 15}  # relative weights
_OWNER = re.compile(r"<@(U\w+)>")


class SoakSlack(FakeSlack):
    """FakeSlack that also keeps each response_url answer by its URL's number, so an answer
    can be matched to the request it answers."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.answered: dict[str, list[str]] = defaultdict(list)  # /respond/<n> -> texts

    async def _respond_url(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()  # aiohttp keeps the body: super() reads it again
        except ValueError:
            body = {}
        self.answered[request.match_info["n"]].append(str(body.get("text", "")))
        return await super()._respond_url(request)

    def respond_url(self) -> tuple[str, str]:
        """A fresh response_url and its number."""
        url = self.response_url()
        return url, url.rsplit("/", 1)[1]

    def upload_counts(self) -> Counter[int]:
        """How many times each job's image was posted (the bot names it imagine-<job id>.png)."""
        return Counter(int(u.filename.removeprefix("imagine-").removesuffix(".png")) for u in self.uploads)


@dataclass
class Parent:
    """A render's status message in the channel: the thread its edits and reruns go to."""

    job_id: int
    ts: str
    owner: str


@dataclass
class Sent:
    """What the load sent, by kind, with the response_url numbers of each request."""

    renders: dict[str, str] = field(default_factory=dict)  # prompt -> response number
    edits: list[tuple[str, Parent, float]] = field(default_factory=list)  # (instruction, its thread, when sent)
    reruns: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))  # parent job -> responses
    deletes: dict[int, str] = field(default_factory=dict)  # job -> response number
    not_acked: Counter[str] = field(default_factory=Counter)  # kind -> requests not answered 200
    counts: Counter[str] = field(default_factory=Counter)


class Load:
    """One request at a time, of a kind drawn from MIX (a render when no image is there yet)."""

    def __init__(self, slack: SoakSlack, events_url: str, secret: str, seed: int = 16) -> None:
        self.slack, self.url, self.secret = slack, events_url, secret
        self.sent = Sent()
        self._random = random.Random(seed)
        self._n = itertools.count()
        self._deleted: set[int] = set()

    def parents(self) -> list[Parent]:
        """Renders whose image is posted and not deleted by this load: what edits, reruns and
        deletes act on."""
        posted = {u.thread_ts for u in self.slack.uploads}
        found = []
        for m in self.slack.posted("C1"):
            if m.thread_ts or not m.blocks or m.ts not in posted or m.ephemeral_user:
                continue
            buttons = m.blocks[-1].get("elements") or [{}]
            owner = _OWNER.search(str(m.blocks[0]))
            value = buttons[0].get("value")
            if value and owner and int(value) not in self._deleted:
                found.append(Parent(int(value), m.ts, owner[1]))
        return found

    async def step(self, session: aiohttp.ClientSession) -> str:
        kind = self._random.choices(list(MIX), weights=list(MIX.values()))[0]
        parents = self.parents() if kind != "render" else []
        if not parents:
            kind = "render"
        n = next(self._n)
        user = self._random.choice(USERS)
        if kind == "render":
            url, number = self.slack.respond_url()
            prompt = f"soak render #{n}: a lighthouse in a storm"
            self.sent.renders[prompt] = number
            body = slash_command_body("/imagine", prompt, user_id=user, response_url=url)
        else:
            parent = self._random.choice(parents[-50:])  # recent ones, as people act on new images
            if kind == "edit":
                text = f"soak edit #{n}: make it dusk"
                self.sent.edits.append((text, parent, time.monotonic()))
                body = self._reply(text, user, parent, n)
            else:
                url, number = self.slack.respond_url()
                if kind == "rerun":
                    self.sent.reruns[parent.job_id].append(number)
                    body = block_action_body(
                        "imagine_reroll", str(parent.job_id), user_id=user, message_ts=parent.ts, response_url=url
                    )
                else:  # delete, by the person who asked
                    self._deleted.add(parent.job_id)
                    self.sent.deletes[parent.job_id] = number
                    body = block_action_body(
                        "imagine_delete",
                        str(parent.job_id),
                        user_id=parent.owner,
                        message_ts=parent.ts,
                        response_url=url,
                    )
        content_type = "application/json" if kind == "edit" else FORM
        self.sent.counts[kind] += 1
        if not await self._post(session, body, content_type):
            self.sent.not_acked[kind] += 1
        return kind

    @staticmethod
    def _reply(text: str, user: str, parent: Parent, n: int) -> str:
        event = {
            "type": "message",
            "channel": "C1",
            "user": user,
            "text": text,
            "ts": f"1800000000.{n:06d}",
            "thread_ts": parent.ts,
            "channel_type": "channel",
        }
        return event_body(event, event_id=f"Ev-soak-{n}")

    async def _post(self, session: aiohttp.ClientSession, body: str, content_type: str) -> bool:
        headers = {"Content-Type": content_type, **signed_headers(body, self.secret)}
        try:
            async with session.post(self.url, data=body.encode(), headers=headers) as r:
                await r.read()
                return r.status == 200
        except aiohttp.ClientError:
            return False
