"""Starting and stopping the bot as a user does, for the end-to-end tests (and bench/).

A test starts the bot with PORT=0 and reads the port it bound from its log
(`start_bot`, `listening_port`), rather than picking a free port first and racing
whoever takes it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
import time
import weakref
from contextlib import closing
from pathlib import Path

import aiohttp

# Configuration a developer may have exported must not leak into a bot a test starts
# (a real key, a gateway URL, another database).
_CONFIG_PREFIXES = ("SLACK_", "DISCORD_", "GEMINI_", "GOOGLE_", "IMAGINE_", "OPENAI_COMPAT_", "DATABASE_")


def bot_env(**settings: str) -> dict[str, str]:
    """This process's environment without any bot configuration, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_CONFIG_PREFIXES) and k.upper() != "PORT"}
    env.update(settings)
    return env


async def stop_cleanly(proc: asyncio.subprocess.Process) -> str:
    """SIGTERM the bot; it must exit 0 with no trace anywhere in its log. Returns the log
    (empty when the bot was already stopped and its log read)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    log = _read_already.pop(proc, "") + stderr.decode()
    assert proc.returncode == 0, log
    assert "Traceback" not in log, log
    return log


# The log lines listening_port() read before the port line, by process: stop_cleanly() checks
# them with the rest of the log.
_read_already: weakref.WeakKeyDictionary[asyncio.subprocess.Process, str] = weakref.WeakKeyDictionary()
_LISTENING = re.compile(r" HTTP on \S+:(\d+) ")


async def listening_port(proc: asyncio.subprocess.Process, timeout: float = 20) -> int:
    """The port a bot started with PORT=0 bound, read from its `HTTP on HOST:PORT` log line."""
    return int((await read_log_until(proc, _LISTENING, timeout, "the bot named no HTTP port in its log"))[1])


async def read_log_until(
    proc: asyncio.subprocess.Process, pattern: re.Pattern[str], timeout: float = 20, missing: str = ""
) -> re.Match[str]:
    """Read the bot's log (stderr) up to the first line matching `pattern`: its match. The lines
    read are kept for stop_cleanly()'s checks."""
    seen = []
    try:
        async with asyncio.timeout(timeout):
            while line := (await proc.stderr.readline()).decode():
                seen.append(line)
                if match := pattern.search(line):
                    return match
    except TimeoutError:
        pass
    finally:
        _read_already[proc] = _read_already.get(proc, "") + "".join(seen)
    raise AssertionError(f"{missing or 'no line matching ' + pattern.pattern} in the log:\n" + "".join(seen))


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


async def until_discord_ready(proc: asyncio.subprocess.Process, discord, command: str, timeout: float = 30) -> None:
    """Until the bot has identified on the fake Discord's gateway and synced `command`.

    `identified` is the fake's ready event: READY and every GUILD_CREATE have gone out on the
    bot's websocket. Whatever a test does next (a slash command, a message) comes after them on
    that same ordered connection, so the client has its guild cached before it sees it."""
    deadline = time.monotonic() + timeout
    while not (discord.identified.is_set() and any(c["name"] == command for c in discord.commands)):
        assert proc.returncode is None, (await proc.stderr.read()).decode()
        assert time.monotonic() < deadline, "the bot never connected and synced its commands"
        await asyncio.sleep(0.1)


async def start_worker(env: dict[str, str], cwd: Path | str) -> asyncio.subprocess.Process:
    """`python -m bot worker` (no HTTP side): the process, its log on stderr."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "worker",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def start_bot(command: str, env: dict[str, str], cwd: Path | str) -> tuple[asyncio.subprocess.Process, str]:
    """`python -m bot COMMAND` serving HTTP on PORT=0: the process and its base URL, once healthy."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        command,
        cwd=cwd,
        env={**env, "PORT": "0"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{await listening_port(proc)}"
        await wait_healthy(proc, base)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        raise
    return proc, base


async def healthz(base: str) -> dict:
    """GET /healthz: the queue's depth (`queued`, `running`) and every job by state (`jobs`),
    what a test probes for "nothing queued, nothing new" instead of sleeping."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/healthz") as r:
        assert r.status == 200, await r.text()
        return await r.json()


def stored_results(db: Path) -> dict[int, bool]:
    """The bot's SQLite result images by their job's id, each with whether its bytes are
    still stored (a deleted image is gone, or a tombstone without bytes)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT images.job_id, blobs.sha256 IS NOT NULL FROM images"
            " LEFT JOIN blobs ON blobs.sha256 = images.sha256 WHERE images.role = 'output'"
        )
        return {job_id: bool(stored) for job_id, stored in rows}


def read_jobs(db: Path) -> dict[int, dict]:
    """The bot's SQLite jobs, by id, each with its state and its ledger entries in order
    (reservation, settlement, release), read as an operator would."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        jobs = {
            job_id: {"state": state, "idempotency_key": key, "ledger": []}
            for job_id, state, key in conn.execute("SELECT id, state, idempotency_key FROM jobs ORDER BY id")
        }
        for job_id, entry in conn.execute("SELECT job_id, entry FROM ledger ORDER BY id"):
            jobs[job_id]["ledger"].append(entry)
    return jobs
