"""SIGTERM at any moment of start-up stops the bot cleanly (exit 0, no trace).

Importing the bot takes seconds, and opening the database can wait on a server that does not
answer; a supervisor (systemd, Kubernetes, a test) that stops a fresh process in either
window used to kill it with the signal's default action, as if it had crashed."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.support.bot_process import bot_env, start_worker
from tests.support.probe import eventually


def handles_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler installed (its SigCgt mask, from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


async def stopped(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    log = err.decode()
    assert proc.returncode == 0, log
    assert "Traceback" not in log, log
    return log


async def test_sigterm_while_importing_stops_before_anything_starts(tmp_path):
    env = bot_env(GEMINI_API_KEY="k", DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}")
    proc = await start_worker(env, tmp_path)
    # The first handler is the one `python -m bot` installs before its slow imports.
    await eventually(lambda: handles_sigterm(proc.pid), 20, interval=0.01, what="a SIGTERM handler")
    log = await stopped(proc)
    assert "worker slots" not in log  # asked to stop before it started: it never did
    assert not (tmp_path / "bot.db").exists()


async def test_sigterm_while_the_database_does_not_answer_stops_at_once(tmp_path):
    connected = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepts, reads nothing, answers nothing: a hung server
        connected.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    env = bot_env(GEMINI_API_KEY="k", DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/test")
    try:
        proc = await start_worker(env, tmp_path)
        await asyncio.wait_for(connected.wait(), 30)
        started = asyncio.get_running_loop().time()
        log = await stopped(proc)
        # Well inside the store's own connect timeout (10 s): the stop did not wait it out.
        assert asyncio.get_running_loop().time() - started < 5, log
        assert "worker slots" not in log
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
