"""Discord end to end: /imagine-dashboard answers at once, ephemerally (flags 64) and with no
embed, with a one-time sign-in link bound to the server, the user and their role (Manage Server:
moderator, as for /imagine-budget)."""

from __future__ import annotations

import re

import pytest

from tests.e2e import test_discord
from tests.e2e.test_discord import MOD, USER
from tests.fakes.discord_model import EPHEMERAL, SUPPRESS_EMBEDS
from tests.support.dashboard import who_signs_in

# test_discord.py's world (the bot between the fake Discord and the fake Gemini), as this module's
# fixtures: pytest finds them by these names.
world = test_discord.world
prepare = test_discord.prepare
more_env = test_discord.more_env

WEB = {"IMAGINE_WEB_SECRET": "d" * 40, "IMAGINE_PUBLIC_URL": "http://dash.example.com"}
DISCORD_LINK = re.compile(r"\[Open the imagine dashboard\]\(<(http://dash\.example\.com/dashboard/sign-in/[^>]+)>\)")


async def reply_to(world, user: int) -> dict:
    """The interaction's one response (type 4: a message at once), its data."""
    discord = world.discord
    it = await discord.slash("imagine-dashboard", {}, user_id=user)
    await discord.wait_for(lambda: discord.interaction_responses[it.id])
    [response] = discord.interaction_responses[it.id]
    assert response["type"] == 4, response
    return response["data"]


def link_in(content: str) -> str:
    found = DISCORD_LINK.search(content)
    assert found, content
    return found[1]


@pytest.mark.parametrize("more_env", [WEB])
async def test_the_link_is_ephemeral_has_no_preview_and_signs_in_with_the_callers_role(world):
    member = await reply_to(world, USER)
    assert member["flags"] & EPHEMERAL and member["flags"] & SUPPRESS_EMBEDS
    assert "works once, for 10 minutes" in member["content"]
    guild = world.discord.guild_id
    assert await who_signs_in(world.base, link_in(member["content"])) == f"{USER} · {guild} · member"
    moderator = await reply_to(world, MOD)
    assert await who_signs_in(world.base, link_in(moderator["content"])) == f"{MOD} · {guild} · moderator"
    # Nothing public: every message the bot made for these is ephemeral.
    assert not [m for m in world.discord.posted(world.discord.channel_id) if not m.ephemeral]
    command = next(c for c in world.discord.commands if c["name"] == "imagine-dashboard")
    assert command.get("contexts") == [0] and command["description"]


async def test_without_a_web_secret_the_answer_says_the_dashboard_is_not_set_up(world):
    reply = await reply_to(world, MOD)
    assert reply["flags"] & EPHEMERAL
    assert "not set up" in reply["content"] and "IMAGINE_WEB_SECRET" in reply["content"]
    assert "/dashboard/sign-in/" not in reply["content"]
