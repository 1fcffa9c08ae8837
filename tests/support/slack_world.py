"""The Slack end-to-end world: the bot process (`python -m bot run`) between the fake Slack Web API
and the fake Gemini, driven by signed HTTP requests like the ones Slack sends (tests/e2e/slack)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.fakes.gemini_server import FakeGemini
from tests.fakes.slack_server import (
    FakeSlack,
    block_action_body,
    event_body,
    signed_headers,
    slash_command_body,
)
from tests.support.bot_process import bot_env, wait_healthy

SECRET = "test-signing-secret"


FORM = "application/x-www-form-urlencoded"


def slack_bot_env(slack: FakeSlack, gemini: FakeGemini, database_url: str, config: Path, **more: str) -> dict[str, str]:
    """The environment of a bot process between the fake Slack and the fake Gemini."""
    return bot_env(
        SLACK_BOT_TOKEN=slack.bot_token,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack.url,
        GEMINI_API_KEY="k",
        GEMINI_BASE_URL=gemini.url,
        DATABASE_URL=database_url,
        IMAGINE_CONFIG=str(config),
        **more,
    )


@dataclass
class World:
    gemini: FakeGemini
    slack: FakeSlack
    base: str
    proc: asyncio.subprocess.Process
    db: Path

    async def post(
        self,
        body: str,
        content_type: str = FORM,
        *,
        secret: str = SECRET,
        timestamp: int | None = None,
        extra: dict | None = None,
    ) -> tuple[int, str, float]:
        headers = {"Content-Type": content_type, **signed_headers(body, secret, timestamp=timestamp), **(extra or {})}
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.base}/slack/events", data=body.encode(), headers=headers) as r:
                return r.status, await r.text(), time.monotonic() - started

    async def command(self, command: str, text: str, user: str = "U1", **kw) -> tuple[int, str, float]:
        return await self.post(slash_command_body(command, text, user_id=user, **kw))

    async def event(self, event: dict, event_id: str, **kw) -> tuple[int, str, float]:
        return await self.post(event_body(event, event_id=event_id), "application/json", **kw)

    async def click(self, action_id: str, value: str, user: str, message_ts: str, **kw):
        return await self.post(block_action_body(action_id, value, user_id=user, message_ts=message_ts, **kw))

    async def asked(self, text: str) -> str:
        """/imagine something that needs a confirmation (the first answer); the question's token."""
        await self.command("/imagine", text, response_url=self.slack.response_url())
        await self.slack.wait_for(lambda: self.slack.responses)
        return self.slack.responses[0]["blocks"][-1]["elements"][0]["value"]

    async def answer(self, action_id: str, token: str, user: str = "U1"):
        """Press [Run] or [Use Flash] on the (ephemeral) question."""
        question = {"type": "message", "message_ts": "1700000000.000900", "channel_id": "C1", "is_ephemeral": True}
        return await self.click(
            action_id, token, user, question["message_ts"], container=question, response_url=self.slack.response_url()
        )

    def answers(self) -> list[str]:
        """The texts the bot sent to response_urls, oldest first."""
        return [r.get("text", "") for r in self.slack.responses]

    async def settled(self) -> None:
        """Wait until the bot has nothing left to do, by its /healthz: no job queued or
        running, and no delivery left to post."""

        async def idle() -> bool:
            health = await wait_healthy(self.proc, self.base)
            return health["queued"] == health["running"] == health["outbox_pending"] == 0

        await self.slack.wait_for(idle)

    def statuses(self) -> list:
        """The bot's status messages in C1 (those with our context block)."""
        return [m for m in self.slack.posted("C1") if m.blocks and m.ephemeral_user is None]


def only_job(db: Path) -> tuple[str, str, str | None, set[str]]:
    """The one job's lane, state and result, and the lanes its ledger rows name."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        [(lane, state, result)] = conn.execute("SELECT lane, state, result FROM jobs").fetchall()
        ledger = {row[0] for row in conn.execute("SELECT lane FROM ledger")}
    return lane, state, result, ledger
