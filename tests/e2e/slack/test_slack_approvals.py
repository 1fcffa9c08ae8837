"""Slack end to end: [Ask a moderator] on a budget refusal. The request goes to the alert channel
with [Approve] [Deny] for moderators only; an approval runs it once (a double click included) as
an approved overage, a denial or 24 hours without an answer tell the requester, and nothing is
held while it waits."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.bot_process import read_jobs

# Pro at its default size is about $0.135: over a $0.10 team budget.
TIGHT = "[policy]\nconfirm_above_usd = 10\ndefault_team_budget_usd = 0.10\n"
ALERTS = "CMODS"


def query(db: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


async def refused_with_ask(world, prompt: str = "a lighthouse at dusk") -> str:
    """/imagine over the budget: the refusal, with [Ask a moderator]; its token."""
    slack = world.slack
    before = len(slack.responses)
    await world.command("/imagine", prompt, response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) > before)
    refusal = slack.responses[before]
    assert "would go over" in refusal["text"] and "Ask a moderator" in refusal["text"], refusal
    [button] = refusal["blocks"][-1]["elements"]
    assert button["text"]["text"] == "Ask a moderator"
    return button["value"]


async def asked_moderators(world, token: str) -> str:
    """U1 presses [Ask a moderator]; the request shows in the alert channel. Its message's ts."""
    slack = world.slack
    before = len(slack.responses)
    await world.click("imagine_ask_moderator", token, "U1", "1700000000.000900", response_url=slack.response_url())
    await slack.wait_for(lambda: slack.posted(ALERTS) and len(slack.responses) > before)
    assert "Sent to the moderators" in slack.responses[before]["text"]
    [request] = slack.posted(ALERTS)
    return request.ts


@pytest.mark.parametrize("world", [TIGHT], indirect=True)
async def test_a_moderator_approves_once_despite_a_double_click_and_usage_shows_the_overage(world):
    slack = world.slack
    token = await refused_with_ask(world)
    assert read_jobs(world.db) == {}
    # A second press of [Ask a moderator] sends nothing more.
    alert_ts = await asked_moderators(world, token)
    [request] = slack.posted(ALERTS)
    text = request.text
    assert "<@U1>" in text and "a lighthouse at dusk" in text and "Model pro, size 2K" in text, text
    assert "$0.1" in text and "budget" in text.lower(), text
    assert [b["text"]["text"] for b in request.blocks[-1]["elements"]] == ["Approve", "Deny"]
    assert query(world.db, "SELECT COUNT(*) FROM holds") == [(0,)]  # waiting holds nothing

    # Not a moderator: a private no, and nothing changes.
    before = len(slack.responses)
    await world.click("imagine_approve", token, "U2", alert_ts, response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) > before)
    assert "Only a moderator" in slack.responses[before]["text"]
    assert slack.responses[before].get("replace_original") is False
    assert query(world.db, "SELECT state FROM approvals") == [("pending",)]

    # A moderator's double click: two presses at once.
    before = len(slack.responses)
    await asyncio.gather(
        *(
            world.click("imagine_approve", token, "UADMIN", alert_ts, response_url=slack.response_url())
            for _ in range(2)
        )
    )
    await slack.wait_for(lambda: len(slack.uploads) == 1 and len(slack.responses) >= before + 2, timeout=30)
    await world.settled()
    assert len(world.gemini.requests) == 1
    answers = [r["text"] for r in slack.responses[before:]]
    assert sum("Approved by <@UADMIN>" in t for t in answers) == 1, answers
    [job] = read_jobs(world.db).values()
    assert job["state"] == "succeeded" and job["ledger"].count("settlement") == 1
    [(approved_by,)] = query(world.db, "SELECT approved_by FROM ledger WHERE entry = 'settlement'")
    assert approved_by == "UADMIN"
    assert query(world.db, "SELECT state, answered_by FROM approvals") == [("approved", "UADMIN")]

    await world.command("/imagine-usage", "", response_url=slack.response_url())
    await slack.wait_for(lambda: "Your spend" in slack.responses[-1].get("text", ""))
    assert "Approved overage this month: $0.1" in slack.responses[-1]["text"]


@pytest.mark.parametrize("world", [TIGHT], indirect=True)
async def test_a_denial_tells_the_requester_and_leaves_no_hold(world):
    slack = world.slack
    token = await refused_with_ask(world)
    alert_ts = await asked_moderators(world, token)
    before = len(slack.responses)
    await world.click("imagine_deny", token, "UADMIN", alert_ts, response_url=slack.response_url())
    await slack.wait_for(lambda: any("denied your request" in m.text for m in slack.posted("C1")))
    [notice] = [m for m in slack.posted("C1") if "denied your request" in m.text]
    assert notice.text.startswith("<@U1>") and "Nothing was charged" in notice.text
    assert slack.responses[before]["text"] == "Denied by <@UADMIN>."
    # Answered: a late [Approve] changes nothing.
    await world.click("imagine_approve", token, "UADMIN", alert_ts, response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) > before + 1)
    assert "already answered" in slack.responses[before + 1]["text"]
    assert read_jobs(world.db) == {} and world.gemini.requests == []
    assert query(world.db, "SELECT COUNT(*) FROM holds") == [(0,)]


@pytest.mark.parametrize("world", [TIGHT], indirect=True)
@pytest.mark.parametrize("more_env", [{"IMAGINE_APPROVAL_SWEEP_SECONDS": "0.2"}])
async def test_a_request_unanswered_for_a_day_lapses_and_tells_the_requester(world):
    slack = world.slack
    token = await refused_with_ask(world)
    alert_ts = await asked_moderators(world, token)
    # A day passes (the bot reads its own clock): the request's time is up.
    with closing(sqlite3.connect(world.db)) as conn, conn:
        conn.execute("UPDATE approvals SET expires_at = expires_at - 86400")
    await slack.wait_for(lambda: any("lapsed" in m.text for m in slack.posted("C1")), timeout=30)
    assert query(world.db, "SELECT state FROM approvals") == [("expired",)]
    before = len(slack.responses)
    await world.click("imagine_approve", token, "UADMIN", alert_ts, response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) > before)
    assert "already answered, or it has expired" in slack.responses[before]["text"]
    assert read_jobs(world.db) == {} and world.gemini.requests == []


@pytest.mark.parametrize("world", [TIGHT + "approvals = false\n"], indirect=True)
async def test_with_approvals_off_a_budget_refusal_has_no_button(world):
    slack = world.slack
    await world.command("/imagine", "a lighthouse", response_url=slack.response_url())
    await slack.wait_for(lambda: slack.responses)
    [refusal] = slack.responses
    assert "would go over" in refusal["text"] and "moderator" not in refusal["text"]
    assert "blocks" not in refusal


@pytest.mark.parametrize("world", [TIGHT], indirect=True)
@pytest.mark.parametrize("more_env", [{"SLACK_ALERT_CHANNEL": ""}])
async def test_without_an_alert_channel_the_requester_is_told_so(world):
    slack = world.slack
    token = await refused_with_ask(world)
    before = len(slack.responses)
    await world.click("imagine_ask_moderator", token, "U1", "1700000000.000900", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) > before)
    assert "no alert channel" in slack.responses[before]["text"]
    assert query(world.db, "SELECT state FROM approvals") == [("offered",)]


@pytest.mark.parametrize("world", [TIGHT], indirect=True)
async def test_when_the_alert_cannot_be_posted_the_requester_is_told_and_may_ask_again(world):
    slack = world.slack
    token = await refused_with_ask(world)
    slack.fail_next("chat.postMessage", "not_in_channel")  # the bot was removed from the alert channel
    before = len(slack.responses)
    await world.click("imagine_ask_moderator", token, "U1", "1700000000.000900", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) > before)
    said = slack.responses[before]["text"]
    assert "couldn't post" in said and "alert channel" in said and "Nothing was charged" in said, said
    assert query(world.db, "SELECT state FROM approvals") == [("offered",)]
    # Once the channel is fixed, the same button works.
    await asked_moderators(world, token)
    assert query(world.db, "SELECT state FROM approvals") == [("pending",)]
