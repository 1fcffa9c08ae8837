"""A stop asked for before the event loop can take it.

Importing the bot takes seconds (google-genai, slack-bolt, discord.py...). A SIGTERM in that
window used to get the default action: the process died as if it had crashed (exit -15), and
a supervisor stopping a fresh worker saw a failure. `python -m bot` calls hold() before its
imports, so the signal is noted instead; a service hands it to its loop (requested()), a
one-shot command gets the default action back (release()).

Standard library only: this module is imported before everything else.
"""

from __future__ import annotations

import signal
from types import FrameType

_asked: list[int] = []


def _note(signum: int, _frame: FrameType | None) -> None:
    _asked.append(signum)


def hold() -> None:
    signal.signal(signal.SIGTERM, _note)


def requested() -> bool:
    return bool(_asked)


def release() -> None:
    """The default SIGTERM action back, and a SIGTERM already noted delivered to it."""
    if signal.getsignal(signal.SIGTERM) is _note:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _asked:
        signal.raise_signal(signal.SIGTERM)
