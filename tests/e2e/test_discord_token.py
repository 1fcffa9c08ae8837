"""Discord at start-up, as `python -m bot run` meets it: a token Discord rejects ends the
process with exit 4 and one line naming DISCORD_TOKEN; Discord being down (5xx, nothing
listening) is waited out in the background while the HTTP server and the workers run,
and SIGTERM still ends the process cleanly."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from bot.catalog import load_catalog
from bot.service import ImagineService
from bot.store.sqlite import SQLiteStore
from bot.types import Accepted, ImagineRequest
from tests.e2e.test_cli import run_cli
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.gemini_server import FakeGemini
from tests.support.bot_process import bot_env, read_jobs, start_bot, stop_cleanly

EXIT_CONFIG = 4


def _env(discord_url: str, gemini: FakeGemini, tmp_path: Path, token: str) -> dict[str, str]:
    return bot_env(
        DISCORD_TOKEN=token,
        DISCORD_API_URL=f"{discord_url}/api/v10",
        GEMINI_API_KEY="k",
        GEMINI_BASE_URL=gemini.url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
        PORT="0",
    )


@pytest.mark.parametrize("command", ["run", "discord"])
async def test_a_token_discord_rejects_ends_the_bot_with_exit_4_and_one_line_naming_discord_token(
    tmp_path: Path, command: str
):
    async with FakeGemini() as gemini, FakeDiscord() as discord:
        env = _env(discord.url, gemini, tmp_path, token="a-token-discord-does-not-know")
        run = await run_cli(env, tmp_path, command, timeout=30)
        log = run.stderr
        assert run.code == EXIT_CONFIG, log
        assert "Traceback" not in log, log
        [error] = [line for line in log.splitlines() if line.startswith("error:")]
        assert "DISCORD_TOKEN" in error and "401" in error, log
        assert discord.token not in log and "a-token-discord-does-not-know" not in log  # never the secret
        assert [c.path for c in discord.calls if c.path == "/users/@me"], discord.calls  # Discord was asked


async def test_discord_down_at_start_up_blocks_neither_http_nor_workers_and_the_bot_connects_when_it_is_back(
    tmp_path: Path,
):
    async with FakeGemini(image_scale=0.125) as gemini, FakeDiscord() as discord:
        discord.outage = 503
        # start_bot returns once /healthz answers: the HTTP server is not waiting for Discord.
        proc, _ = await start_bot("run", _env(discord.url, gemini, tmp_path, discord.token), tmp_path)
        try:
            await discord.wait_for(lambda: len([c for c in discord.calls if c.path == "/users/@me"]) >= 2, 20)
            # The workers run meanwhile: a job queued now is made.
            store = SQLiteStore(str(tmp_path / "bot.db"))
            await store.open()
            try:
                request = ImagineRequest(team="T1", channel="C1", user="U1", platform="cli", prompt="a koi pond")
                accepted = await ImagineService(store, load_catalog()).submit(request)
                assert isinstance(accepted, Accepted), accepted
            finally:
                await store.close()
            deadline = time.monotonic() + 30
            while read_jobs(tmp_path / "bot.db")[accepted.job_id]["state"] != "succeeded":
                assert time.monotonic() < deadline, read_jobs(tmp_path / "bot.db")
                await asyncio.sleep(0.1)
            assert not discord.commands and not discord.identified.is_set()
            discord.outage = None  # Discord is back: the bot logs in, syncs and connects on its own
            await discord.wait_for(lambda: discord.identified.is_set() and discord.commands, 30)
        finally:
            log = await stop_cleanly(proc)
        assert "DISCORD_TOKEN" not in log and "503" in log, log


async def test_sigterm_ends_the_bot_cleanly_while_discord_cannot_be_reached(tmp_path: Path):
    with socket.socket() as closed:  # a port nothing listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}"
    async with FakeGemini() as gemini:
        proc, _ = await start_bot("run", _env(nobody, gemini, tmp_path, "bot-token"), tmp_path)
        started = time.monotonic()
        log = await stop_cleanly(proc)  # exit 0, no trace
        assert time.monotonic() - started < 15, log
        assert "discord" in log.lower(), log


async def test_a_token_reset_while_the_bot_runs_ends_it_with_exit_4_when_the_gateway_refuses_it(tmp_path: Path):
    async with FakeGemini() as gemini, FakeDiscord() as discord:
        proc, _ = await start_bot("run", _env(discord.url, gemini, tmp_path, discord.token), tmp_path)
        try:
            await discord.wait_for(lambda: discord.identified.is_set() and discord.commands, 30)
            discord.token = "reset-in-the-developer-portal"  # the old one is refused from now on
            await discord.reconnect_clients()  # RESUME with the old token: op 9, then IDENTIFY: close 4004
            _, stderr = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        log = stderr.decode()
        assert proc.returncode == EXIT_CONFIG, log
        assert "Traceback" not in log, log
        [error] = [line for line in log.splitlines() if line.startswith("error:")]
        assert "DISCORD_TOKEN" in error and "4004" in error, log
