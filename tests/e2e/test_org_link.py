"""One team across Slack and Discord, end to end: one `python -m bot run` process between the
fake Slack, the fake Discord and the fake Gemini. Moderators link the workspace and the server
with a one-time code, a budget set on Discord caps Slack too, and spending on one side shows in
the other's usage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.slack.test_slack_lineage import reply
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.slack_server import FakeSlack
from tests.support.bot_process import start_bot, stop_cleanly, until_discord_ready
from tests.support.slack_world import World, slack_bot_env

USER, MOD = 111, 222
CODE = re.compile(r"`([A-Z0-9]{4}-[A-Z0-9]{4})`")


@pytest.fixture
async def worlds(tmp_path: Path):
    config = tmp_path / "imagine.toml"
    config.write_text("[policy]\nconfirm_above_usd = 10\n")
    async with FakeGemini(image_scale=0.125) as gemini, FakeSlack() as slack, FakeDiscord() as discord:
        slack.add_user("U1")
        slack.add_user("UADMIN", is_admin=True)
        discord.add_member(USER)
        discord.add_member(MOD, manage_guild=True)
        env = slack_bot_env(
            slack,
            gemini,
            f"sqlite:///{tmp_path / 'bot.db'}",
            config,
            DISCORD_TOKEN=discord.token,
            DISCORD_API_URL=f"{discord.url}/api/v10",
        )
        proc, base = await start_bot("run", env, tmp_path)
        try:
            await until_discord_ready(proc, discord, "imagine-link")
            yield World(gemini, slack, base, proc, tmp_path / "bot.db"), discord
        finally:
            await stop_cleanly(proc)


def ephemeral(discord: FakeDiscord) -> list[str]:
    return [m.content for ms in discord.messages.values() for m in ms if m.ephemeral and not m.deleted]


async def test_linked_workspace_and_server_spend_from_one_budget(worlds):
    slack_world, discord = worlds
    slack = slack_world.slack
    # The link command is registered on both platforms, with an optional string `code` on Discord.
    [link_command] = [c for c in discord.commands if c["name"] == "imagine-link"]
    assert [(o["name"], o["type"], o.get("required", False)) for o in link_command["options"]] == [("code", 3, False)]

    # A Slack admin asks for a code: it comes privately.
    await slack_world.command("/imagine-link", "", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: any(CODE.search(a) for a in slack_world.answers()))
    made = next(a for a in slack_world.answers() if CODE.search(a))
    assert slack.responses[-1]["response_type"] == "ephemeral" and "Discord server" in made
    code = CODE.search(made).group(1)  # type: ignore[union-attr]

    # A Discord member who is no moderator cannot use it; a moderator can, once.
    await discord.slash("imagine-link", {"code": code}, user_id=USER)
    await discord.wait_for(lambda: any("Only moderators can link this server" in t for t in ephemeral(discord)))
    await discord.slash("imagine-link", {"code": code}, user_id=MOD)
    await discord.wait_for(
        lambda: any(t.startswith("Linked: this server and Slack workspace T1") for t in ephemeral(discord))
    )
    # The Slack side hears it where the code was made.
    await slack.wait_for(lambda: any("Linked: this workspace and Discord server" in m.text for m in slack.posted("C1")))
    await discord.slash("imagine-link", {"code": code}, user_id=MOD)
    await discord.wait_for(lambda: any("used already" in t for t in ephemeral(discord)))

    # A budget set on Discord is the Slack workspace's too.
    await discord.slash("imagine-budget set", {"usd": 1, "period": "day"}, user_id=MOD)
    await discord.wait_for(lambda: any("Server budget set to $1.00 per day" in t for t in ephemeral(discord)))
    await slack_world.command("/imagine-usage", "", response_url=slack.response_url())
    await slack.wait_for(lambda: any("team budget $1.00/day: spent $0.00" in a for a in slack_world.answers()))

    # Spent on Discord, seen from Slack.
    await discord.slash("imagine", {"prompt": "a koi pond"}, user_id=USER)
    await discord.wait_for(
        lambda: any(
            m.attachments for t in discord.threads for m in discord.posted(t) if m.author_id == discord.bot_user_id
        ),
        timeout=30,
    )
    # Replies in its thread still edit it: the thread is the organisation's.
    [thread] = discord.threads.values()
    await discord.user_message("make it night", user_id=USER, channel_id=thread.id)
    await discord.wait_for(lambda: len(slack_world.gemini.requests) == 2, timeout=30)
    assert slack_world.gemini.requests[1].prompt == "make it night"
    await slack_world.settled()
    await slack_world.command("/imagine-usage", "", response_url=slack.response_url())
    await slack.wait_for(
        lambda: any(re.search(r"team budget \$1\.00/day: spent \$0\.[1-9]", a) for a in slack_world.answers())
    )
    shared = next(a for a in slack_world.answers() if re.search(r"team budget \$1\.00/day: spent \$0\.[1-9]", a))
    assert "*Your spend:* $0.00 today" in shared  # U1 spent nothing: the organisation did


async def test_a_code_made_on_discord_completes_on_slack_and_discord_hears_it(worlds):
    slack_world, discord = worlds
    slack = slack_world.slack
    await discord.slash("imagine-link", {}, user_id=MOD)
    await discord.wait_for(lambda: any(CODE.search(t) for t in ephemeral(discord)))
    made = next(t for t in ephemeral(discord) if CODE.search(t))
    assert "Slack workspace" in made
    code = CODE.search(made).group(1)  # type: ignore[union-attr]
    # The same platform, a non-admin, a wrong code: each told why, and nothing linked.
    await discord.slash("imagine-link", {"code": code}, user_id=MOD)
    await discord.wait_for(lambda: any("made on Discord too" in t for t in ephemeral(discord)))
    await slack_world.command("/imagine-link", code, user="U1", response_url=slack.response_url())
    await slack.wait_for(lambda: any("Only moderators can link this workspace" in a for a in slack_world.answers()))
    await slack_world.command("/imagine-link", "WXYZ-2345", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: any("doesn't work" in a for a in slack_world.answers()))
    # A Slack admin completes it; the Discord channel where the code was made is told.
    await slack_world.command("/imagine-link", code.lower(), user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(
        lambda: any(a.startswith("Linked: this workspace and Discord server") for a in slack_world.answers())
    )
    bot = discord.bot_user_id
    await discord.wait_for(
        lambda: any(
            "Linked: this server and Slack workspace T1" in m.content
            for m in discord.posted(discord.channel_id)
            if m.author_id == bot and not m.ephemeral
        )
    )


async def test_a_slack_thread_from_before_the_link_keeps_editing_under_a_discord_home(worlds):
    """The organisation's home is the Discord server (its code, completed on Slack): a Slack
    thread begun before the link still edits on reply, and [History] lists the whole thread."""
    slack_world, discord = worlds
    slack = slack_world.slack
    await slack_world.command("/imagine", "a lighthouse", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1 and "Done" in slack_world.statuses()[0].text, timeout=30)
    parent = slack_world.statuses()[0]

    await discord.slash("imagine-link", {}, user_id=MOD)
    await discord.wait_for(lambda: any(CODE.search(t) for t in ephemeral(discord)))
    code = CODE.search(next(t for t in ephemeral(discord) if CODE.search(t))).group(1)  # type: ignore[union-attr]
    await slack_world.command("/imagine-link", code, user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: any(a.startswith("Linked: this workspace") for a in slack_world.answers()))

    await slack_world.event(reply(parent.ts, "make it night", "1800000000.000200", user="U1"), "Ev-night")
    await slack.wait_for(lambda: len(slack.uploads) == 2 and "Done" in slack_world.statuses()[-1].text, timeout=30)
    assert slack_world.gemini.requests[1].prompt == "make it night"
    assert "edit 1 of this thread" in (slack.uploads[1].initial_comment or ""), slack.uploads[1].initial_comment
    # [History] under the edit (the organisation's job) and under the original (the workspace's own).
    for status in (slack_world.statuses()[-1], parent):
        history = {e["action_id"]: e["value"] for e in status.blocks[-1]["elements"]}["imagine_history"]
        before = len(slack_world.answers())
        await slack_world.click("imagine_history", history, "U1", status.ts, response_url=slack.response_url())
        await slack.wait_for(lambda: len(slack_world.answers()) > before)  # noqa: B023
        assert "This thread: 2 images" in slack_world.answers()[-1], slack_world.answers()[-1]
