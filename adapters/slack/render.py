"""Block Kit messages for the Slack adapter. Pure functions: data in, JSON out."""

from __future__ import annotations

from typing import Any

from adapters import status
from adapters.status import money
from bot.approvals import PendingApproval
from bot.money import usd
from bot.money.budgets import BudgetStatus
from bot.service import UsageReport
from bot.types import NeedsConfirmation, Refused

ACTION_REROLL, ACTION_4K, ACTION_DELETE = "imagine_reroll", "imagine_4k", "imagine_delete"
ACTION_RUN, ACTION_USE_FLASH = "imagine_confirm_run", "imagine_confirm_flash"
# [Undo] under an edit; [History] under every image: Slack has no slash commands in threads.
ACTION_UNDO, ACTION_HISTORY = "imagine_undo", "imagine_history"
ACTION_ASK, ACTION_APPROVE, ACTION_DENY = "imagine_ask_moderator", "imagine_approve", "imagine_deny"


def escape(text: str) -> str:
    # A prompt is user text: "<!channel>" in it must not ping anyone.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def dashboard_link(link: str) -> str:
    return f"<{link}|Open the imagine dashboard> (your own sign-in link). {status.DASHBOARD_LINK_NOTE}"


def status_message(
    prompt: str, user: str, line: str, *, buttons: list[dict] | None = None, edit: bool = False
) -> dict[str, Any]:
    verb = "asked to edit" if edit else "asked for"
    quoted = escape(prompt if len(prompt) <= 600 else prompt[:600] + "…")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"<@{user}> {verb}:\n>{quoted}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": line}]},
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    # The fallback text feeds notifications: escaped too, or "<!channel>" would ping everyone.
    return {"text": f"{verb} {escape(prompt[:150])} — {line}", "blocks": blocks}


# The status lines (queued, generating, done, failed) with Slack's emoji.
MARKS = status.Marks(
    queued_mark=":hourglass_flowing_sand:",
    note_mark=":information_source:",
    generating_mark=":art:",
    done_mark=":white_check_mark:",
    failed_mark=":warning:",
)
queued, generating, done, failed = MARKS.queued, MARKS.generating, MARKS.done, MARKS.failed


def button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        b["style"] = style
    return b


def result_buttons(job_id: int, *, edit: bool = False) -> list[dict[str, Any]]:
    value = str(job_id)
    undo = [button("Undo", ACTION_UNDO, value)] if edit else []
    return [
        button("Reroll", ACTION_REROLL, value),
        button("4K", ACTION_4K, value),
        *undo,
        button("History", ACTION_HISTORY, value),
        button("Delete", ACTION_DELETE, value, "danger"),
    ]


def confirmation(outcome: NeedsConfirmation, token: str) -> dict[str, Any]:
    left = f" {money(outcome.remaining_usd)} of the budget is left." if outcome.remaining_usd is not None else ""
    buttons = [button(f"Run ({money(outcome.estimate_usd)})", ACTION_RUN, token, "primary")]
    if outcome.flash_estimate_usd is not None:
        buttons.append(button(f"Use Flash ({money(outcome.flash_estimate_usd)})", ACTION_USE_FLASH, token))
    return {
        "text": outcome.detail,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": escape(outcome.detail) + left}},
            {"type": "actions", "elements": buttons},
        ],
    }


def refusal(refused: Refused) -> dict[str, Any]:
    """A refusal; a budget refusal a moderator may approve carries [Ask a moderator]."""
    if refused.ask_token is None:
        return {"text": refused.detail}
    return {
        "text": refused.detail,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": escape(refused.detail)}},
            {"type": "actions", "elements": [button("Ask a moderator", ACTION_ASK, refused.ask_token)]},
        ],
    }


def approval_request(pending: PendingApproval) -> dict[str, Any]:
    """The alert channel's message: who asks for what, and [Approve] [Deny] for moderators."""
    text = pending.text(escape)
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "actions",
                "elements": [
                    button("Approve", ACTION_APPROVE, pending.token, "primary"),
                    button("Deny", ACTION_DENY, pending.token, "danger"),
                ],
            },
        ],
    }


def usage(report: UsageReport) -> str:
    lines = [
        f"*Your spend:* {usd(report.user_spent_today_micros)} today, {usd(report.user_spent_month_micros)} this month.",
        f"*Team spend this month:* {usd(report.team_spent_month_micros)}.",
    ]
    if report.team_overage_month_micros:
        lines.append(f"*{status.overage_line(report.team_overage_month_micros)}*")
    lines += [f"• {s.describe()}" for s in report.budgets] or ["No budget limits this team."]
    return "\n".join(lines + _default_note(report.budgets))


def budgets(statuses: list[BudgetStatus]) -> str:
    if not statuses:
        return "No budgets are set. Set one with `/imagine-budget set 50 month`."
    return "\n".join([f"• {s.describe()}" for s in statuses] + _default_note(statuses))


def _default_note(statuses: list[BudgetStatus]) -> list[str]:
    return status.default_budget_note(statuses, "workspace", "`/imagine-budget set <usd> month`")
