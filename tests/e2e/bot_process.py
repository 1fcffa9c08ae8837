"""Starting and stopping the bot as a user does, for the end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import aiohttp

# Configuration a developer may have exported must not leak into a bot a test starts
# (a real key, a gateway URL, another database).
_CONFIG_PREFIXES = ("SLACK_", "DISCORD_", "GEMINI_", "GOOGLE_", "IMAGINE_", "OPENAI_COMPAT_", "DATABASE_")


def bot_env(**settings: str) -> dict[str, str]:
    """This process's environment without any bot configuration, plus `settings`."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(_CONFIG_PREFIXES) and k.upper() != "PORT"}
    env.update(settings)
    return env


async def stop_cleanly(proc: asyncio.subprocess.Process) -> str:
    """SIGTERM the bot; it must exit 0 with no trace anywhere in its log. Returns the log
    (empty when the bot was already stopped and its log read)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    log = stderr.decode()
    assert proc.returncode == 0, log
    assert "Traceback" not in log, log
    return log


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_healthy(proc: asyncio.subprocess.Process, base: str, timeout: float = 20) -> dict:
    """Poll GET /healthz until the bot answers with its store up; its JSON."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"bot exited: {(await proc.stderr.read()).decode()}")
            try:
                async with session.get(f"{base}/healthz") as r:
                    if r.status == 200 and (health := await r.json())["store"]:
                        return health
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("bot did not become healthy")


def read_jobs(db: Path) -> dict[int, dict]:
    """The bot's SQLite jobs, by id, each with its state and its ledger entries in order
    (reservation, settlement, release), read as an operator would."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        jobs = {job_id: {"state": state, "idempotency_key": key, "ledger": []}
                for job_id, state, key in conn.execute("SELECT id, state, idempotency_key FROM jobs ORDER BY id")}
        for job_id, entry in conn.execute("SELECT job_id, entry FROM ledger ORDER BY id"):
            jobs[job_id]["ledger"].append(entry)
    return jobs
