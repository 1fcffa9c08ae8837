"""Discord end to end: per-role limits by server role (issue 18). The roles are the ones
Discord sends with each interaction and message (the member's role ids), never user text."""

from __future__ import annotations

import pytest

from tests.e2e import test_discord
from tests.e2e.test_discord import use_config
from tests.fakes.discord_server import FakeDiscord
from tests.support.bot_process import read_jobs

# test_discord.py's world (the bot between the fake Discord and the fake Gemini), as this module's
# fixtures: pytest finds them by these names.
world = test_discord.world
prepare = test_discord.prepare
more_env = test_discord.more_env

INTERN, MOD_INTERN = 333, 444
INTERNS_ROLE = 2103  # the fake's first add_role() id in guild 2000 (checked below)


@pytest.fixture
def interns(monkeypatch, tmp_path):
    use_config(
        monkeypatch,
        tmp_path,
        "[policy]\nconfirm_above_usd = 10\n"
        f'[teams."2000".roles."{INTERNS_ROLE}"]\nuser_images_per_day = 1\nmodels = ["flash"]\n',
    )


async def _with_interns(discord: FakeDiscord) -> None:
    assert discord.add_role("Interns") == INTERNS_ROLE
    discord.add_member(INTERN, roles=[INTERNS_ROLE])
    discord.add_member(MOD_INTERN, roles=[INTERNS_ROLE], manage_guild=True)


@pytest.mark.parametrize("prepare", [_with_interns])
async def test_a_role_limited_member_is_refused_naming_the_role_while_a_moderator_passes(interns, world):
    discord = world.discord
    await discord.slash("imagine", {"prompt": "a cathedral", "model": "pro"}, user_id=INTERN)
    refusal = "Your role Interns allows flash; pro isn't one of them. Nothing was charged."
    await discord.wait_for(lambda: refusal in world.ephemeral_texts())
    assert world.gemini.requests == [] and read_jobs(world.db) == {}
    # A moderator (Manage Server) holding the same role: not limited by it.
    await discord.slash("imagine", {"prompt": "a cathedral", "model": "pro"}, user_id=MOD_INTERN)
    await discord.wait_for(lambda: len(world.thread_images()) == 1)
    # The role's images a day: one, and then a refusal naming it.
    await discord.slash("imagine", {"prompt": "a heron", "model": "flash"}, user_id=INTERN)
    await discord.wait_for(lambda: len(world.thread_images()) == 2)
    await discord.slash("imagine", {"prompt": "a swan", "model": "flash"}, user_id=INTERN)
    one_a_day = "Your role Interns allows 1 image a day; you have made 1. It resets "
    await discord.wait_for(lambda: any(t.startswith(one_a_day) for t in world.ephemeral_texts()))
    # A message in the image's thread is an edit: the roles come with the message, and bind it too.
    thread = next(t for t in discord.threads if "heron" in discord.threads[t].name)
    await discord.user_message("make it night", user_id=INTERN, channel_id=thread)
    await discord.wait_for(lambda: any(m.content.startswith(one_a_day) for m in discord.posted(thread)))
    assert len(read_jobs(world.db)) == 2
