"""Slack end to end: /imagine-dashboard answers only its asker with a one-time sign-in link,
bound to the team, the user and the role the budget commands would give them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.dashboard import who_signs_in

WEB = {"IMAGINE_WEB_SECRET": "s" * 40, "IMAGINE_PUBLIC_URL": "http://dash.example.com"}
SLACK_LINK = re.compile(r"<(http://dash\.example\.com/dashboard/sign-in/[^|>]+)\|Open the imagine dashboard>")
MANIFEST = Path(__file__).parents[3] / "adapters" / "slack" / "manifest.yaml"


async def ask_for_link(world, user: str) -> dict:
    slack = world.slack
    before = len(slack.responses)
    await world.command("/imagine-dashboard", "", user=user, response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == before + 1)
    return slack.responses[before]


def link_in(reply: dict) -> str:
    found = SLACK_LINK.search(reply["text"])
    assert found, reply
    return found[1]


@pytest.mark.parametrize("more_env", [WEB])
async def test_the_link_is_private_unfurls_nothing_and_signs_in_with_the_callers_role(world):
    member = await ask_for_link(world, "U1")
    assert member["response_type"] == "ephemeral"
    assert member["unfurl_links"] is False and member["unfurl_media"] is False
    assert "works once, for 10 minutes" in member["text"]
    assert await who_signs_in(world.base, link_in(member)) == "U1 · T1 · member"
    # A workspace admin is a moderator, as for /imagine-budget.
    moderator = await ask_for_link(world, "UADMIN")
    assert await who_signs_in(world.base, link_in(moderator)) == "UADMIN · T1 · moderator"
    # Nothing public was posted.
    assert world.slack.calls_to("chat.postMessage") == []


async def test_without_a_web_secret_the_answer_says_the_dashboard_is_not_set_up(world):
    reply = await ask_for_link(world, "U1")
    assert reply["response_type"] == "ephemeral"
    assert "not set up" in reply["text"] and "IMAGINE_WEB_SECRET" in reply["text"]
    assert "/dashboard/sign-in/" not in reply["text"]


@pytest.mark.parametrize("world", ['[access]\nteams = ["T9"]\n'], indirect=True)
@pytest.mark.parametrize("more_env", [WEB])
async def test_a_team_off_the_allow_list_gets_the_refusal_and_no_link(world):
    reply = await ask_for_link(world, "UADMIN")
    assert "allow-list" in reply["text"] and "/dashboard/sign-in/" not in reply["text"]


def test_the_app_manifest_declares_every_command_the_bot_listens_to():
    # Slack sends only the commands an app's manifest declares (no YAML parser here: one command per entry).
    declared = re.findall(r"^\s*- command: (\S+)$", MANIFEST.read_text(), re.MULTILINE)
    assert declared == [
        "/imagine",
        "/imagine-usage",
        "/imagine-budget",
        "/imagine-dashboard",
        "/imagine-history",
        "/imagine-link",
    ]
