"""Plain sentences about how a result was made, for every front end (both
adapters' replies and the CLI): an earlier image served while Gemini is down,
and what a hedged attempt's second call cost."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.money import to_micros, usd

STALE = "served from an earlier identical request while Gemini is unavailable"


def stale_note(result: dict[str, Any]) -> str | None:
    """For a result served stale: what it is, and that it cost nothing."""
    if not result.get("stale"):
        return None
    return f"{STALE}, so it is free (Reroll for a new image once Gemini is back)"


def hedge_note(result: dict[str, Any]) -> str | None:
    """For a hedged result: which call won and what the other one cost.

    A call cancelled before it answered reported no usage, so nothing was
    recorded for it; Google may still bill it, and the note says so."""
    hedge = result.get("hedge")
    if not hedge:
        return None
    after = f"{round(hedge['after_s'], 1):g} s"
    other = f"{hedge['model']} via {hedge['route']}"
    if hedge["cost_usd"] is not None:
        cost = f"cost {usd(to_micros(Decimal(hedge['cost_usd'])))}, included above"
    elif hedge["answered"]:
        cost = "was not billed"
    else:
        cost = "was cancelled unanswered: nothing recorded, though Google may still bill it"
    if hedge["won"]:
        return f"hedged after {after}: the hedge answered first; the first call ({other}) {cost}"
    return f"hedged after {after}: the hedge call ({other}) {cost}"
