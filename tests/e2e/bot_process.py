"""Starting and stopping the bot as a user does, for the end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal

# Configuration a developer may have exported must not leak into a bot a test starts
# (a real key, a gateway URL, another database).
_CONFIG_PREFIXES = ("SLACK_", "DISCORD_", "GEMINI_", "GOOGLE_", "IMAGINE_", "OPENAI_COMPAT_", "DATABASE_")


def bot_env(**settings: str) -> dict[str, str]:
    """This process's environment without any bot configuration, plus `settings`."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(_CONFIG_PREFIXES) and k.upper() != "PORT"}
    env.update(settings)
    return env


async def stop_cleanly(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the bot; it must exit 0 with no trace anywhere in its log."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    log = stderr.decode()
    assert proc.returncode == 0, log
    assert "Traceback" not in log, log
