"""Discord message texts and views. Discord shows no :shortcodes: in bot
messages, so the emoji are Unicode."""

from __future__ import annotations

import re

import discord

from adapters import status
from adapters.status import money
from bot.money import usd
from bot.money.budgets import BudgetStatus
from bot.service import UsageReport
from bot.types import NeedsConfirmation

MAX_CONTENT = 2000
# How a moderator sets the server's budget (adapters/discord/budget_command.py), for the bot's hints.
SET_BUDGET = "/imagine-budget set usd:<amount> period:month"


def clip(text: str, limit: int = MAX_CONTENT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(prompt: str) -> str:
    # Mentions in a prompt must not ping anyone (allowed_mentions also blocks them).
    return "> " + discord.utils.escape_mentions(clip(prompt, 600)).replace("\n", "\n> ")


def dashboard_link(link: str) -> str:
    # <...> inside the link keeps Discord from fetching it for a preview.
    return f"[Open the imagine dashboard](<{link}>) (your own sign-in link). {status.DASHBOARD_LINK_NOTE}"


def status_message(prompt: str, user: str, line: str, *, edit: bool = False) -> str:
    verb = "asked to edit" if edit else "asked for"
    return clip(f"<@{user}> {verb}:\n{quote(prompt)}\n{line}")


# The status lines (queued, generating, done, failed) with Discord's emoji.
MARKS = status.Marks(queued_mark="⏳", note_mark="ℹ️", generating_mark="🎨", done_mark="✅", failed_mark="⚠️")
queued, generating, done, failed = MARKS.queued, MARKS.generating, MARKS.done, MARKS.failed


def confirmation(outcome: NeedsConfirmation) -> str:
    left = f" {money(outcome.remaining_usd)} of the budget is left." if outcome.remaining_usd is not None else ""
    return clip(outcome.detail + left)


def usage(report: UsageReport) -> str:
    lines = [
        f"**Your spend:** {usd(report.user_spent_today_micros)} today, "
        f"{usd(report.user_spent_month_micros)} this month.",
        f"**Team spend this month:** {usd(report.team_spent_month_micros)}.",
    ]
    if report.team_overage_month_micros:
        lines.append(f"**{status.overage_line(report.team_overage_month_micros)}**")
    lines += [f"• {s.describe()}" for s in report.budgets] or ["No budget limits this server."]
    return clip("\n".join(lines + _default_note(report.budgets)))


def budgets(statuses: list[BudgetStatus]) -> str:
    if not statuses:
        return "No budgets are set. Set one with `/imagine-budget set usd:50 period:month`."
    return clip("\n".join([f"• {s.describe()}" for s in statuses] + _default_note(statuses)))


def _default_note(statuses: list[BudgetStatus]) -> list[str]:
    return status.default_budget_note(statuses, "server", f"`{SET_BUDGET}`")


def thread_name(prompt: str) -> str:
    name = re.sub(r"\s+", " ", prompt).strip() or "imagine"
    return name[:90]
