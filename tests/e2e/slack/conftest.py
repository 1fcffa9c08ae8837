"""The `world` every Slack end-to-end test runs in; a test names its own policy with
`@pytest.mark.parametrize("world", ["<imagine.toml>"], indirect=True)`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.gemini_server import FakeGemini
from tests.fakes.slack_server import (
    FakeSlack,
)
from tests.support.bot_process import start_bot, stop_cleanly
from tests.support.slack_world import World, slack_bot_env


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
        env = slack_bot_env(
            slack, gemini, f"sqlite:///{tmp_path / 'bot.db'}", config, **{"SLACK_ALERT_CHANNEL": "CMODS", **more_env}
        )
        # PORT=0: the bot binds a free port itself and names it in its log (no bind-and-release race).
        proc, base = await start_bot("run", env, tmp_path)
        world = World(gemini, slack, base, proc, tmp_path / "bot.db")
        try:
            yield world
        finally:
            await stop_cleanly(proc)
