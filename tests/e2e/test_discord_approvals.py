"""Discord end to end: [Ask a moderator] on a budget refusal. The request goes to the alert channel
with [Approve] [Deny] for moderators only; an approval runs it once (a double click included) as an
approved overage, a denial tells the requester, and nothing is held while it waits."""

# ruff: noqa: F811 (the world fixture, imported from tests/e2e/test_discord.py, is each test's argument)

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e.test_discord import MOD, USER, use_config, world  # noqa: F401, F811 (the world fixture)
from tests.fakes.discord_server import FakeDiscord
from tests.support.bot_process import read_jobs

ALERTS = 777
# Pro at its default size is about $0.16: over a $0.10 team budget.
TIGHT = "[policy]\nconfirm_above_usd = 10\ndefault_team_budget_usd = 0.10\n"


@pytest.fixture
def prepare():
    async def alert_channel(discord: FakeDiscord) -> None:
        discord.add_channel(ALERTS, name="mods")

    return alert_channel


@pytest.fixture
def more_env() -> dict[str, str]:
    return {"DISCORD_ALERT_CHANNEL": str(ALERTS)}


@pytest.fixture
def tight(monkeypatch, tmp_path):
    use_config(monkeypatch, tmp_path, TIGHT)


def query(db: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


def ephemerals(discord: FakeDiscord, text: str) -> list:
    return [m for ms in discord.messages.values() for m in ms if m.ephemeral and not m.deleted and text in m.content]


def buttons(message) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row["components"]]


async def asked_moderators(world) -> tuple[str, object]:
    """USER's /imagine is refused with [Ask a moderator]; USER presses it. The token and the
    alert channel's request."""
    discord = world.discord
    await discord.slash("imagine", {"prompt": "a lighthouse at dusk"}, user_id=USER)
    await discord.wait_for(lambda: ephemerals(discord, "would go over"))
    [refusal] = ephemerals(discord, "would go over")
    [ask] = buttons(refusal)
    assert ask.startswith("imagine:ask:") and "Ask a moderator" in refusal.content
    await discord.click(ask, refusal, user_id=USER)
    await discord.wait_for(lambda: discord.posted(ALERTS) and ephemerals(discord, "Sent to the moderators"))
    [request] = discord.posted(ALERTS)
    assert f"<@{USER}>" in request.content and "a lighthouse at dusk" in request.content
    assert "Model pro, size 2K" in request.content and "$0.1" in request.content
    token = ask.removeprefix("imagine:ask:")
    assert buttons(request) == [f"imagine:approve:{token}", f"imagine:deny:{token}"]
    assert query(world.db, "SELECT COUNT(*) FROM holds") == [(0,)]
    return token, request


async def test_a_moderator_approves_once_despite_a_double_click(tight, world):
    discord = world.discord
    token, request = await asked_moderators(world)
    # Not a moderator: a private no, and nothing changes.
    await discord.click(f"imagine:approve:{token}", request, user_id=USER)
    await discord.wait_for(lambda: ephemerals(discord, "Only a moderator"))
    assert query(world.db, "SELECT state FROM approvals") == [("pending",)]
    await asyncio.gather(*(discord.click(f"imagine:approve:{token}", request, user_id=MOD) for _ in range(2)))
    await discord.wait_for(lambda: ephemerals(discord, "Approved: it runs now") and ephemerals(discord, "already"))
    await discord.wait_for(lambda: world.thread_images(), timeout=30)
    assert len(world.gemini.requests) == 1
    [job] = read_jobs(world.db).values()
    assert job["ledger"].count("reservation") == 1
    await discord.wait_for(lambda: read_jobs(world.db)[1]["ledger"].count("settlement") == 1)
    assert query(world.db, "SELECT approved_by FROM ledger WHERE entry = 'settlement'") == [(str(MOD),)]
    assert discord.message(request.id).content.startswith(f"Approved by <@{MOD}>")
    await discord.slash("imagine-usage", {}, user_id=USER)
    await discord.wait_for(lambda: ephemerals(discord, "Approved overage this month: $0.1"))


async def test_a_denial_tells_the_requester_and_leaves_no_hold(tight, world):
    discord = world.discord
    token, request = await asked_moderators(world)
    await discord.click(f"imagine:deny:{token}", request, user_id=MOD)
    await discord.wait_for(
        lambda: any("denied your request" in m.content for m in discord.posted(discord.channel_id)), timeout=30
    )
    [notice] = [m for m in discord.posted(discord.channel_id) if "denied your request" in m.content]
    assert notice.content.startswith(f"<@{USER}>") and "Nothing was charged" in notice.content
    # Answered: the request says so, and its buttons are gone.
    answered = discord.message(request.id)
    assert answered.content == f"Denied by <@{MOD}>." and answered.components == []
    assert query(world.db, "SELECT state, answered_by FROM approvals") == [("denied", str(MOD))]
    assert read_jobs(world.db) == {} and world.gemini.requests == []
    assert query(world.db, "SELECT COUNT(*) FROM holds") == [(0,)]


@pytest.mark.parametrize("more_env", [{"DISCORD_ALERT_CHANNEL": str(ALERTS), "IMAGINE_APPROVAL_SWEEP_SECONDS": "0.2"}])
async def test_a_request_unanswered_for_a_day_lapses_and_tells_the_requester(tight, world):
    discord = world.discord
    await asked_moderators(world)
    # A day passes (the bot reads its own clock): the request's time is up.
    with closing(sqlite3.connect(world.db)) as conn, conn:
        conn.execute("UPDATE approvals SET expires_at = expires_at - 86400")
    await discord.wait_for(lambda: any("lapsed" in m.content for m in discord.posted(discord.channel_id)), timeout=30)
    assert query(world.db, "SELECT state FROM approvals") == [("expired",)]
    assert read_jobs(world.db) == {} and world.gemini.requests == []


@pytest.fixture
def roomy(monkeypatch, tmp_path):
    use_config(monkeypatch, tmp_path, "[policy]\nconfirm_above_usd = 10\n")


async def test_an_edit_refused_in_a_thread_can_be_asked_for_and_is_approved_into_that_thread(roomy, world):
    """A message in an image's thread refused on the budget carries [Ask a moderator]; once
    approved the edit is posted in that thread, as an edit of its image, not in a new thread."""
    discord = world.discord
    await discord.slash("imagine", {"prompt": "a lighthouse", "model": "flash"}, user_id=USER)
    await discord.wait_for(lambda: len(world.thread_images()) == 1, timeout=30)
    [thread] = discord.threads
    await discord.slash("imagine-budget set", {"usd": 0.01, "period": "month"}, user_id=MOD)
    await discord.wait_for(lambda: ephemerals(discord, "$0.01"))
    await discord.user_message("make it night", user_id=USER, channel_id=thread)
    await discord.wait_for(lambda: any("would go over" in m.content for m in discord.posted(thread)))
    [refusal] = [m for m in discord.posted(thread) if "would go over" in m.content]
    assert "press Ask a moderator" in refusal.content
    [ask] = buttons(refusal)
    assert ask.startswith("imagine:ask:")
    await discord.click(ask, refusal, user_id=USER)
    await discord.wait_for(lambda: discord.posted(ALERTS))
    [request] = discord.posted(ALERTS)
    token = ask.removeprefix("imagine:ask:")
    await discord.click(f"imagine:approve:{token}", request, user_id=MOD)
    await discord.wait_for(lambda: len(world.thread_images()) == 2, timeout=30)
    assert list(discord.threads) == [thread]  # no new thread: the edit is in the image's own
    edited = world.thread_images()[1]
    assert edited.channel_id == thread
    assert buttons(edited) == [f"imagine:{a}:2" for a in ("reroll", "4k", "undo", "delete")]
    # The thread now points at the approved edit: the next message edits that one.
    await discord.slash("imagine-budget set", {"usd": 5, "period": "month"}, user_id=MOD)
    await discord.wait_for(lambda: ephemerals(discord, "$5.00"))
    await discord.user_message("add a moon", user_id=USER, channel_id=thread)
    await discord.wait_for(lambda: len(world.thread_images()) == 3, timeout=30)
    assert world.gemini.requests[2].input_images == [discord.attachment_bytes(edited.attachments[0])]


async def test_when_the_alert_cannot_be_posted_the_requester_is_told_and_may_ask_again(tight, world):
    discord = world.discord
    await discord.slash("imagine", {"prompt": "a lighthouse"}, user_id=USER)
    await discord.wait_for(lambda: ephemerals(discord, "would go over"))
    [refusal] = ephemerals(discord, "would go over")
    discord.fail_next("POST", rf"/channels/{ALERTS}/messages$", 403, {"code": 50013, "message": "Missing Permissions"})
    await discord.click(buttons(refusal)[0], refusal, user_id=USER)
    await discord.wait_for(lambda: ephemerals(discord, "couldn't post"))
    [said] = ephemerals(discord, "couldn't post")
    assert "alert channel" in said.content and "Nothing was charged" in said.content
    assert query(world.db, "SELECT state FROM approvals") == [("offered",)]
    await discord.click(buttons(refusal)[0], refusal, user_id=USER)
    await discord.wait_for(lambda: discord.posted(ALERTS) and ephemerals(discord, "Sent to the moderators"))
    assert query(world.db, "SELECT state FROM approvals") == [("pending",)]


OTHER_SERVER, OTHER_ALERTS = 5000, 888


async def other_servers_alert_channel(discord: FakeDiscord) -> None:
    await discord.add_guild(OTHER_SERVER)
    discord.add_channel(OTHER_ALERTS, name="mods", guild_id=OTHER_SERVER)


async def no_channel(discord: FakeDiscord) -> None:
    pass


@pytest.mark.parametrize(
    ("prepare", "more_env"),
    [
        (no_channel, {}),  # no alert channel at all
        # One of a server this one is not linked to: its moderators are not this server's.
        (other_servers_alert_channel, {"DISCORD_ALERT_CHANNEL": str(OTHER_ALERTS)}),
    ],
)
async def test_without_an_alert_channel_for_this_server_the_refusal_has_no_button_and_says_so(tight, world):
    discord = world.discord
    await discord.slash("imagine", {"prompt": "a lighthouse"}, user_id=USER)
    await discord.wait_for(lambda: ephemerals(discord, "would go over"))
    [refusal] = ephemerals(discord, "would go over")
    assert buttons(refusal) == [] and "press Ask a moderator" not in refusal.content
    assert "no alert channel for this server" in refusal.content
    assert discord.posted(OTHER_ALERTS) == []


async def in_both_servers(discord: FakeDiscord) -> None:
    discord.add_channel(ALERTS, name="mods")
    await other_servers_alert_channel(discord)


@pytest.mark.parametrize("prepare", [in_both_servers])
@pytest.mark.parametrize(
    ("more_env", "posted_in"), [({"DISCORD_ALERT_CHANNEL": str(a)}, a) for a in (ALERTS, OTHER_ALERTS)]
)
async def test_a_budget_alert_goes_only_to_an_alert_channel_of_the_server(roomy, world, posted_in):
    """A budget passing its alert line is told in the alert channel of the server it is
    about, never in another server's (whose members must not see this server's money)."""
    discord = world.discord
    await discord.slash("imagine-budget set", {"usd": 0.16}, user_id=MOD)
    await discord.wait_for(lambda: ephemerals(discord, "$0.16 per month"))
    await discord.slash("imagine", {"prompt": "a small chapel"}, user_id=USER)
    await discord.wait_for(lambda: [m for m in ephemerals(discord, "alert line") if m.components])
    [question] = [m for m in ephemerals(discord, "alert line") if m.components]
    await discord.click(buttons(question)[0], question, user_id=USER)
    await discord.wait_for(lambda: world.thread_images(), timeout=30)
    if posted_in == ALERTS:
        await discord.wait_for(lambda: discord.posted(ALERTS))
        [alert] = discord.posted(ALERTS)
        assert "passed its 80% alert line" in alert.content
    else:  # an alert is posted as the job is announced: before its image, which is out now
        assert discord.posted(OTHER_ALERTS) == [] and discord.posted(ALERTS) == []
