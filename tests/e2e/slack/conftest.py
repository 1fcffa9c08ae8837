"""The `world` every Slack end-to-end test runs in; a test names its own policy with
`@pytest.mark.parametrize("world", ["<imagine.toml>"], indirect=True)`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.gemini_server import FakeGemini
from tests.fakes.slack_server import (
    FakeSlack,
)
from tests.support.bot_process import bot_env, start_bot, stop_cleanly
from tests.support.slack_world import SECRET, World


@pytest.fixture
def more_env() -> dict[str, str]:
    """Settings beyond the world's own (tests parametrize it)."""
    return {}


@pytest.fixture
async def world(tmp_path: Path, request, more_env):
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
            **more_env,
        )
        # PORT=0: the bot binds a free port itself and names it in its log (no bind-and-release race).
        proc, base = await start_bot("run", env, tmp_path)
        world = World(gemini, slack, base, proc, tmp_path / "bot.db")
        try:
            yield world
        finally:
            await stop_cleanly(proc)
