"""What a job's status says, in plain words both platforms use.

Each adapter adds its own markup and emoji around these sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.money import to_micros, usd
from bot.money.budgets import BudgetStatus
from bot.result_notes import hedge_note, stale_note
from bot.types import Accepted

# A job's status when its adapter could not announce it and cancelled it (its hold released).
NOT_STARTED = "This request could not start. Nothing was charged."
# Beside a dashboard sign-in link (/imagine-dashboard): it is a key to this person's session.
DASHBOARD_LINK_NOTE = "It works once, for 10 minutes, and signs in as you: don't share it."


def money(value: Decimal | str | None) -> str:
    return usd(to_micros(Decimal(value))) if value is not None else "n/a"


# What each lane promises, in the words the statuses use.
FLEX_PROMISE = "relaxed (Flex): half price, usually within 15 minutes; the image is posted here"
BATCH_PROMISE = "results usually within a few hours (Google allows up to 48 h)"


def queued(accepted: Accepted) -> str:
    what = f"{accepted.model} {accepted.size} {accepted.aspect_ratio}"
    note = f" · {accepted.lane_note}" if accepted.lane_note else ""
    # The estimate prices every input image: a blend says so beside it.
    about = f"about {money(accepted.estimate_usd)}" + (f" for a {accepted.blend_note}" if accepted.blend_note else "")
    if accepted.relaxed:
        return f"Queued for the Batch lane · {what} · {about} (half price) · {BATCH_PROMISE}{note}"
    where = "next up" if accepted.position <= 1 else f"position {accepted.position} in the queue"
    if accepted.lane == "flex":
        return f"Queued, {where} · {what} · {about} · {FLEX_PROMISE}"
    switched = (
        f" (switched from {accepted.downgraded_from}: the team is near its budget)" if accepted.downgraded_from else ""
    )
    priority = " · Priority lane: dearer, never shed" if accepted.lane == "priority" else ""
    return f"Queued, {where} · {accepted.model}{switched} {accepted.size} {accepted.aspect_ratio} · {about}{priority}"


def generating(
    model: str, size: str, attempt: int, *, relaxed: bool = False, lane: str = "standard", relaned: bool = False
) -> str:
    """A "started" status: `relaxed` when a batch took the job, `relaned` when Flex shed it."""
    again = f" (attempt {attempt})" if attempt > 1 else ""
    if relaned:
        return (
            "Google's Flex lane was too busy for this one, so it moved to the Batch lane at the same "
            f"half price; {BATCH_PROMISE}. This message changes when the image is ready"
        )
    if relaxed or lane == "batch":
        return (
            f"Sent to Google's Batch lane with {model} at {size}{again}. Results usually arrive within "
            "a few hours (Google allows up to 48 h); this message changes when the image is ready"
        )
    if lane == "flex":
        return f"Sent to Google's Flex lane with {model} at {size}{again}: {FLEX_PROMISE}"
    on = " on the Priority lane" if lane == "priority" else ""
    return f"Generating with {model} at {size}{on}{again}… this takes 15–60 s"


def overage_line(micros: int) -> str:
    """/imagine-usage's line for what moderators approved past the budgets this month."""
    return f"Approved overage this month: {usd(micros)}"


def default_budget_note(statuses: list[BudgetStatus], team: str, how: str) -> list[str]:
    """A line for a team that has no budget of its own and so spends under the
    default cap; `how` is the platform's way to set one."""
    if not any(s.budget.default for s in statuses):
        return []
    return [
        f"This {team} is on the default budget, which the bot's operator sets for every {team} without "
        f"its own. A moderator can set its own with {how}."
    ]


def done(result: dict[str, Any]) -> str:
    if result.get("cached"):
        return (
            f"Done · {result['model_version']} · {result['size']} {result['aspect_ratio']} · "
            "the same request was answered recently, so this one is free (Reroll for a new image)"
        )
    if note := stale_note(result):
        return f"Done · {result['model_version']} · {result['size']} {result['aspect_ratio']} · {note}"
    fallback = f" (instead of {result['fallback_from']})" if result.get("fallback_from") else ""
    # Google serves Priority past its limit at Standard, and bills it so.
    served = (
        " · served at Standard (Priority was at its limit), charged as Standard"
        if result.get("lane") == "priority" and result.get("served_lane") == "standard"
        else ""
    )
    hedged = f" · {note}" if (note := hedge_note(result)) else ""
    return (
        f"Done · {result['model_version']}{fallback} · {result['size']} {result['aspect_ratio']} · "
        f"{money(result['cost_usd'])} · {result['elapsed_s']:.0f} s{served}{hedged}"
    )


def caption(result: dict[str, Any]) -> str:
    """The words under a posted image: the model and cost, then its place in its thread."""
    first = f"{result['model_version']} · {money(result['cost_usd'])}"
    return f"{first}\n{result['lineage']}" if result.get("lineage") else first


@dataclass(frozen=True)
class Marks:
    """The status lines in one platform's emoji: Slack writes :shortcodes:, Discord shows
    only Unicode in bot messages. The sentences are the same on both."""

    queued_mark: str
    note_mark: str
    generating_mark: str
    done_mark: str
    failed_mark: str

    def queued(self, accepted: Accepted) -> str:
        line = f"{self.queued_mark} {queued(accepted)}"
        return line + (f"\n{self.note_mark} {accepted.retired_note}" if accepted.retired_note else "")

    def generating(self, model: str, size: str, attempt: int, **lane: Any) -> str:
        return f"{self.generating_mark} {generating(model, size, attempt, **lane)}"

    def done(self, result: dict[str, Any]) -> str:
        return f"{self.done_mark} {done(result)}"

    def failed(self, message: str) -> str:
        return f"{self.failed_mark} {message}"
