"""Slack end to end: `python -m bot run` against the fake Slack Web API and the
fake Gemini, driven by signed HTTP requests like the ones Slack sends."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.gemini_server import FakeGemini, error
from tests.fakes.slack_server import (
    FakeSlack,
    block_action_body,
    event_body,
    signed_headers,
    slash_command_body,
)
from tests.support.bot_process import bot_env, read_jobs, start_bot, stop_cleanly, wait_healthy

SECRET = "test-signing-secret"
DEFAULT_NOTE = "on the default budget"
ALREADY = "Already on it"
# Pro at its default size is about $0.135: under $0.16 it fits but passes the 80% alert line;
# Pro 4K (about $0.24) cannot fit at all.
TIGHT_BUDGET = "0.16"
FORM = "application/x-www-form-urlencoded"


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
        """Wait until the bot has nothing left to do: no job queued or running (its /healthz),
        and no delivery pending in its outbox (read from the database: /healthz does not say)."""

        async def idle() -> bool:
            health = await wait_healthy(self.proc, self.base)
            with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
                [(pending,)] = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchall()
            return health["queued"] == health["running"] == pending == 0

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


@pytest.fixture
async def world(tmp_path: Path, request):
    config = tmp_path / "imagine.toml"
    config.write_text(getattr(request, "param", "") or "[policy]\nconfirm_above_usd = 10\n")
    async with FakeGemini(image_scale=0.125) as gemini, FakeSlack() as slack:
        for user in ("U1", "U2"):
            slack.add_user(user)
        slack.add_user("UADMIN", is_admin=True)
        env = bot_env(
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.url,
            GEMINI_API_KEY="k",
            GEMINI_BASE_URL=gemini.url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
            IMAGINE_CONFIG=str(config),
            SLACK_ALERT_CHANNEL="CMODS",
        )
        # PORT=0: the bot binds a free port itself and names it in its log (no bind-and-release race).
        proc, base = await start_bot("run", env, tmp_path)
        world = World(gemini, slack, base, proc, tmp_path / "bot.db")
        try:
            yield world
        finally:
            await stop_cleanly(proc)


async def test_imagine_posts_status_then_image_in_thread_and_a_reply_edits_it(world):
    slack, gemini = world.slack, world.gemini
    # Real models take 15-60 s; a little latency makes "generating" observable.
    gemini.latency = 0.5
    status, body, elapsed = await world.command(
        "/imagine", "a koi pond at dawn --ar 16:9", response_url=slack.response_url()
    )
    assert status == 200 and elapsed < 3.0, (status, body, elapsed)
    await slack.wait_for(lambda: len(slack.uploads) == 1 and "Done" in world.statuses()[0].text)
    [parent] = world.statuses()
    assert "<@U1>" in parent.blocks[0]["text"]["text"] and "a koi pond at dawn" in parent.blocks[0]["text"]["text"]
    assert [e["action_id"] for e in parent.blocks[-1]["elements"]] == ["imagine_reroll", "imagine_4k", "imagine_delete"]
    [upload] = slack.uploads
    assert (upload.channel, upload.thread_ts) == ("C1", parent.ts)
    assert gemini.requests[0].aspect_ratio == "16:9" and gemini.requests[0].prompt == "a koi pond at dawn"
    # The status went queued -> generating -> done, in place.
    updates = [c.args.get("text", "") for c in slack.calls_to("chat.update")]
    assert any("Generating" in t for t in updates) and "Done" in updates[-1]

    reply = {
        "type": "message",
        "channel": "C1",
        "user": "U2",
        "text": "make it night",
        "ts": "1800000000.000200",
        "thread_ts": parent.ts,
        "channel_type": "channel",
    }
    status, _, _ = await world.event(reply, "Ev-reply-1")
    assert status == 200
    await slack.wait_for(lambda: len(slack.uploads) == 2)
    edited = slack.uploads[1]
    assert (edited.channel, edited.thread_ts) == ("C1", parent.ts)
    assert gemini.requests[1].prompt == "make it night"
    assert gemini.requests[1].input_images == [upload.data]  # the image being edited
    assert gemini.requests[1].aspect_ratio == "16:9"  # settings carry over

    # Slack retries the same event: no second job, no second charge.
    status, _, _ = await world.event(
        reply, "Ev-reply-1", extra={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert status == 200
    await world.settled()
    assert len(gemini.requests) == 2 and len(slack.uploads) == 2
    # Health and Prometheus metrics on the same HTTP port.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{world.base}/healthz") as r:
            assert r.status == 200 and (await r.json())["store"] is True
        async with session.get(f"{world.base}/metrics") as r:
            metrics = await r.text()
    assert 'imagine_jobs{state="succeeded"} 2.0' in metrics
    assert 'imagine_provider_calls_total{model="gemini-3-pro-image",route="gemini",status="ok"} 2.0' in metrics
    assert (
        'imagine_spend_usd_total{lane="standard",team="T1"}' in metrics
        and "imagine_generation_seconds_bucket" in metrics
    )
    # A reply to the edited image edits the newest image in the thread.
    reply2 = {**reply, "text": "add stars", "ts": "1800000000.000300"}
    await world.event(reply2, "Ev-reply-2")
    await slack.wait_for(lambda: len(slack.uploads) == 3)
    assert gemini.requests[2].input_images == [edited.data]
    # Stopped, the bot has let every acked listener finish: the retried event made no job of its own.
    await stop_cleanly(world.proc)
    assert len(read_jobs(world.db)) == 3


async def test_a_relaxed_request_is_answered_in_its_thread_by_the_flex_lane_at_half_price(world):
    slack, gemini = world.slack, world.gemini
    await world.command("/imagine", "a koi pond at dawn --relax --size 2K", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1 and "Done" in world.statuses()[0].text)
    [parent] = world.statuses()
    [upload] = slack.uploads
    assert (upload.channel, upload.thread_ts) == ("C1", parent.ts)
    [sent] = gemini.requests
    assert sent.service_tier == "flex" and sent.image_size == "2K" and not gemini.batches
    updates = [c.args.get("text", "") for c in slack.calls_to("chat.update")]
    first = slack.calls_to("chat.postMessage")[0].args.get("text", "")
    assert "relaxed (Flex): half price, usually within 15 minutes" in first
    assert any("Flex lane" in t for t in updates)
    # Half of Standard's bill for the same answer: $0.0672 for the image, the rest at half too.
    [(_, _, usage)] = gemini.sent_usage
    standard = (
        (
            usage["candidatesTokenCount"]
            - usage["candidatesTokensDetails"][0]["tokenCount"]
            + usage.get("thoughtsTokenCount", 0)
        )
        * 12
        + usage["promptTokenCount"] * 2
        + 1120 * 120
    )
    lane, state, result, ledger = only_job(world.db)
    assert (lane, state, ledger) == ("flex", "succeeded", {"flex"})
    assert round(float(json.loads(result)["cost_usd"]) * 1_000_000) == round(standard / 2)


async def test_a_flex_request_google_sheds_moves_to_the_batch_lane_and_the_user_is_told(world):
    slack, gemini = world.slack, world.gemini
    gemini.script_flex(error(503))
    await world.command("/imagine", "a koi pond --relax", response_url=slack.response_url())
    await slack.wait_for(
        lambda: any("moved to the Batch lane" in c.args.get("text", "") for c in slack.calls_to("chat.update"))
    )
    lane, state, _, ledger = only_job(world.db)
    # Waiting for the Batch runner (or in its batch already), still held at the Flex price.
    assert lane == "batch" and state in ("queued", "running") and ledger == {"flex"}
    assert [r.service_tier for r in gemini.requests] == ["flex"]


async def test_priority_needs_the_team_policy(world):
    await world.command("/imagine", "a koi pond --priority", response_url=world.slack.response_url())
    await world.slack.wait_for(lambda: world.slack.responses)
    assert "not enabled for this team" in world.answers()[-1] and not world.gemini.requests


async def test_forged_and_stale_requests_are_rejected_and_change_nothing(world):
    body = slash_command_body("/imagine", "a koi pond")
    status, _, _ = await world.post(body, secret="not-the-secret")
    assert status == 401
    status, _, _ = await world.post(body, timestamp=int(time.time()) - 600)
    assert status == 401
    await stop_cleanly(world.proc)  # every request it took is handled to the end: nothing more can happen
    assert world.slack.calls_to("chat.postMessage") == [] and world.gemini.requests == []
    assert read_jobs(world.db) == {}


async def test_bad_input_gets_an_ephemeral_answer_and_queues_nothing(world):
    slack = world.slack
    status, body, _ = await world.command("/imagine", "koi --bogus 3")
    assert status == 200
    answer = json.loads(body)
    assert answer["response_type"] == "ephemeral" and "--bogus" in answer["text"]
    url = slack.response_url()
    await world.command("/imagine", "koi --ar 7:3", response_url=url)
    await slack.wait_for(lambda: slack.responses)
    assert "aspect ratio '7:3'" in slack.responses[0]["text"] and slack.responses[0]["response_type"] == "ephemeral"
    # A reply in a thread that is not the bot's is ignored; a non-image attachment is refused.
    status, _, _ = await world.event(
        {
            "type": "message",
            "channel": "C1",
            "user": "U2",
            "text": "hello",
            "ts": "1800000000.000500",
            "thread_ts": "1700000000.999999",
        },
        "Ev-x",
    )
    assert status == 200
    await stop_cleanly(world.proc)  # its listener (acked already) runs to the end first
    assert world.gemini.requests == [] and slack.calls_to("chat.postMessage") == []
    assert read_jobs(world.db) == {}


async def test_non_image_reply_is_refused_in_the_thread(world):
    slack = world.slack
    await world.command("/imagine", "a lighthouse", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    parent = world.statuses()[0]
    text_file = slack.add_user_file(b"<html>not an image</html>", name="notes.png", mimetype="image/png", user="U2")
    await world.event(
        {
            "type": "message",
            "subtype": "file_share",
            "channel": "C1",
            "user": "U2",
            "text": "use this",
            "ts": "1800000000.000600",
            "thread_ts": parent.ts,
            "files": [text_file],
        },
        "Ev-file",
    )
    await slack.wait_for(lambda: any(m.ephemeral_user == "U2" for m in slack.posted("C1")))
    [note] = [m for m in slack.posted("C1") if m.ephemeral_user == "U2"]
    assert "not an image" in note.text and note.thread_ts == parent.ts
    assert len(world.gemini.requests) == 1
    assert slack.downloads and slack.downloads[0].headers["authorization"] == f"Bearer {slack.bot_token}"


async def test_budgets_are_for_moderators_and_usage_is_for_everyone(world):
    slack = world.slack
    await world.command("/imagine-budget", "set 5 day", user="U1", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 1)
    assert "Only moderators" in slack.responses[0]["text"]
    await world.command("/imagine-budget", "show", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 2)
    # The refused change changed nothing: the team is on the default budget, and both views say so.
    shown = slack.responses[1]["text"]
    assert "default team budget $20.00/month" in shown and DEFAULT_NOTE in shown, shown
    await world.command("/imagine-usage", "", user="U1", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 3)
    assert DEFAULT_NOTE in slack.responses[2]["text"] and "/imagine-budget set" in slack.responses[2]["text"]
    await world.command("/imagine-budget", "set 5 day", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 4)
    assert "$5.00 per day" in slack.responses[3]["text"]
    await world.command("/imagine-usage", "", user="U1", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 5)
    usage = slack.responses[4]
    assert "$5.00/day" in usage["text"] and usage["response_type"] == "ephemeral"
    assert "default" not in usage["text"]  # its own budget now


async def test_reroll_4k_and_delete_buttons(world):
    slack, gemini = world.slack, world.gemini
    await world.command("/imagine", "a red fox", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1 and "Done" in world.statuses()[0].text)
    parent = world.statuses()[0]
    job_id = parent.blocks[-1]["elements"][0]["value"]
    await world.click("imagine_reroll", job_id, "U2", parent.ts, response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 2)
    assert slack.uploads[1].thread_ts == parent.ts and gemini.requests[1].prompt == "a red fox"
    await world.click("imagine_4k", job_id, "U1", parent.ts, response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 3)
    assert gemini.requests[2].image_size == "4K"
    # Delete: not the requester, not an admin -> refused; the requester may.
    url = slack.response_url()
    await world.click("imagine_delete", job_id, "U2", parent.ts, response_url=url)
    await slack.wait_for(lambda: slack.responses)
    assert "Only the person who asked" in slack.responses[-1]["text"]
    assert slack.calls_to("files.delete") == []
    await world.click("imagine_delete", job_id, "U1", parent.ts, response_url=slack.response_url())
    await slack.wait_for(lambda: slack.calls_to("files.delete"))
    assert slack.uploads[0].deleted


@pytest.mark.parametrize("world", ["[policy]\nconfirm_above_usd = 0.20\n"], indirect=True)
async def test_an_expensive_request_asks_first_and_runs_on_confirmation(world):
    slack = world.slack
    await world.command("/imagine", "a cathedral --size 4K", response_url=slack.response_url())
    await slack.wait_for(lambda: slack.responses)
    question = slack.responses[0]
    assert question["response_type"] == "ephemeral" and world.gemini.requests == []
    buttons = question["blocks"][-1]["elements"]
    assert [b["action_id"] for b in buttons] == ["imagine_confirm_run", "imagine_confirm_flash"]
    await world.click(
        "imagine_confirm_flash",
        buttons[1]["value"],
        "U1",
        "1700000000.000100",
        container={"type": "message", "message_ts": "1700000000.000100", "channel_id": "C1", "is_ephemeral": True},
        response_url=slack.response_url(),
    )
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    assert world.gemini.requests[0].model == "gemini-3.1-flash-image"
    assert world.gemini.requests[0].image_size == "4K"


@pytest.mark.parametrize(
    "world",
    ['[policy]\nover_soft_threshold = "downgrade"\nconfirm_above_usd = 10\nsoft_threshold = 0.5\n'],
    indirect=True,
)
async def test_near_the_budget_pro_becomes_flash_and_moderators_are_alerted(world):
    slack = world.slack
    # Pro (about $0.135) twice fits $0.30 but passes the 50% line: the second becomes Flash.
    await world.command("/imagine-budget", "set 0.30 day", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: slack.responses)
    await world.command("/imagine", "first", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    assert slack.posted("CMODS") == []  # 45% of the budget: no alert yet
    await world.command("/imagine", "second", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 2 or len(slack.responses) > 1)
    assert len(slack.responses) == 1, slack.responses
    assert world.gemini.requests[1].model == "gemini-3.1-flash-image"
    second = [m for m in world.statuses() if "second" in m.blocks[0]["text"]["text"]][0]
    queued = [c.args["text"] for c in slack.calls_to("chat.postMessage") if "second" in c.args.get("text", "")]
    assert "switched from pro" in queued[0]
    [alert] = slack.posted("CMODS")
    assert "team budget of team T1 passed its 50% alert line" in alert.text
    assert second.ts


async def test_a_double_click_on_reroll_or_4k_makes_one_job(world):
    slack = world.slack
    await world.command("/imagine", "a red fox", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1 and "Done" in world.statuses()[0].text)
    parent = world.statuses()[0]
    job_id = parent.blocks[-1]["elements"][0]["value"]
    # A double click: two presses of one button arrive together...
    await asyncio.gather(
        *(world.click("imagine_reroll", job_id, "U2", parent.ts, response_url=slack.response_url()) for _ in range(2))
    )
    await slack.wait_for(lambda: sum(ALREADY in t for t in world.answers()) == 1)
    # ...or one right after the other.
    for _ in range(2):
        await world.click("imagine_4k", job_id, "U1", parent.ts, response_url=slack.response_url())
    await slack.wait_for(lambda: sum(ALREADY in t for t in world.answers()) == 2)
    await slack.wait_for(lambda: len(slack.uploads) == 3)
    jobs = read_jobs(world.db)
    assert len(jobs) == 3 and all(j["ledger"].count("reservation") == 1 for j in jobs.values()), jobs
    assert [r.image_size for r in world.gemini.requests][-1] == "4K" and len(world.gemini.requests) == 3
    assert not [t for t in world.answers() if "Sorry" in t or "expired" in t], world.answers()


@pytest.mark.parametrize("world", ["[policy]\nconfirm_above_usd = 0.20\n"], indirect=True)
async def test_a_double_click_on_run_makes_one_job_and_never_says_expired(world):
    slack = world.slack
    token = await world.asked("a cathedral --size 4K")
    presses = ["imagine_confirm_run", "imagine_confirm_run", "imagine_confirm_flash"]
    await asyncio.gather(*(world.answer(action, token) for action in presses))
    await slack.wait_for(lambda: sum(ALREADY in t for t in world.answers()) == 2)
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    jobs = read_jobs(world.db)
    assert len(jobs) == 1 and jobs[1]["ledger"].count("reservation") == 1, jobs
    assert [r.model for r in world.gemini.requests] == ["gemini-3-pro-image"]  # one image, the one first asked
    assert not [t for t in world.answers() if "expired" in t or "Going ahead" in t or "Sorry" in t], world.answers()


@pytest.mark.parametrize("world", ["[policy]\nconfirm_above_usd = 0.20\n"], indirect=True)
async def test_run_answers_with_the_refusal_when_the_budget_no_longer_fits(world):
    slack = world.slack
    token = await world.asked("a cathedral --size 4K")
    # Between the question and the answer a moderator tightens the budget.
    await world.command("/imagine-budget", "set 0.10 month", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 2)
    await world.answer("imagine_confirm_run", token)
    await slack.wait_for(lambda: any("would go over" in t for t in world.answers()))
    # The only answer is the core's: the refusal, in place of the question (its buttons go).
    assert [r for r in slack.responses[2:]] == [
        {**slack.responses[2], "response_type": "ephemeral", "replace_original": True}
    ], world.answers()
    assert read_jobs(world.db) == {} and world.statuses() == []


async def test_over_the_budget_is_refused_and_past_the_alert_line_asks_first(world):
    slack = world.slack
    await world.command(
        "/imagine-budget", f"set {TIGHT_BUDGET} month", user="UADMIN", response_url=slack.response_url()
    )
    await slack.wait_for(lambda: len(slack.responses) == 1)
    await world.command("/imagine", "a cathedral --size 4K", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 2)
    refused = slack.responses[1]
    assert "would go over the team budget of $0.16" in refused["text"] and "Nothing was charged" in refused["text"]
    assert "blocks" not in refused and "alert line" not in refused["text"]  # no [Run], no [Use Flash]
    await world.command("/imagine", "a small chapel", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 3)
    question = slack.responses[2]
    assert "alert line" in question["text"], question
    assert [b["action_id"] for b in question["blocks"][-1]["elements"]] == [
        "imagine_confirm_run",
        "imagine_confirm_flash",
    ]
    assert read_jobs(world.db) == {}


@pytest.mark.parametrize("world", ['[access]\nteams = ["T9"]\n'], indirect=True)
async def test_a_workspace_not_on_the_allow_list_is_refused_clearly(world):
    slack = world.slack
    await world.command("/imagine", "a koi pond", response_url=slack.response_url())
    await world.command("/imagine-usage", "", response_url=slack.response_url())
    await world.command("/imagine-budget", "show", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 3)
    assert all("isn't enabled for this workspace" in t for t in world.answers()), world.answers()
    assert read_jobs(world.db) == {} and world.gemini.requests == []


async def test_a_status_that_cannot_be_posted_cancels_the_job_before_it_costs_anything(world):
    slack = world.slack
    slack.fail_next("chat.postMessage", "not_in_channel")
    await world.command("/imagine", "a koi pond", response_url=slack.response_url())
    await slack.wait_for(lambda: slack.responses)
    assert "Invite me" in slack.responses[0]["text"]
    [job] = read_jobs(world.db).values()
    assert job["state"] == "cancelled" and job["ledger"] == ["reservation", "release"], job
    assert world.gemini.requests == []
