"""Discord's buttons and the edit form. The buttons are dynamic items: their
custom_id carries everything they need (the job, or the question's token), so
they keep working after a restart. Each hands its press to the client's
handlers (adapters/discord/commands.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

import discord

from adapters.discord import render
from bot.types import NeedsConfirmation

if TYPE_CHECKING:
    from adapters.discord.client import ImagineClient
    from adapters.discord.commands import Handlers

RESULT_ACTIONS = ("reroll", "4k", "delete")


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"imagine:(?P<action>reroll|4k|undo|delete):(?P<job>\d+)"
):
    """[Reroll] [4K] [Delete] under a result, and [Undo] under an edit."""

    LABELS = {
        "reroll": ("Reroll", discord.ButtonStyle.secondary),
        "4k": ("4K", discord.ButtonStyle.secondary),
        "undo": ("Undo", discord.ButtonStyle.secondary),
        "delete": ("Delete", discord.ButtonStyle.danger),
    }

    def __init__(self, action: str, job_id: int) -> None:
        label, style = self.LABELS[action]
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"imagine:{action}:{job_id}"))
        self.action, self.job_id = action, job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(match["action"], int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _answered(interaction, lambda handlers: handlers.on_job_button(interaction, self.action, self.job_id))


class ConfirmButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"imagine:(?P<action>run|flash):(?P<token>[\w-]+)"
):
    """[Run] [Use Flash] for a request that needs a confirmation; the token
    names the request kept in the database."""

    def __init__(self, action: str, token: str, label: str | None = None) -> None:
        style = discord.ButtonStyle.primary if action == "run" else discord.ButtonStyle.secondary
        super().__init__(
            discord.ui.Button(label=label or action.title(), style=style, custom_id=f"imagine:{action}:{token}")
        )
        self.action, self.token = action, token

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(match["action"], match["token"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _answered(
            interaction, lambda handlers: handlers.on_confirm(interaction, self.token, use_flash=self.action == "flash")
        )


class ApprovalButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"imagine:(?P<action>ask|approve|deny):(?P<token>[\w-]+)"
):
    """[Ask a moderator] on a budget refusal, and [Approve] [Deny] in the alert channel; the
    token names the request kept in the database (bot/approvals.py)."""

    LABELS = {
        "ask": ("Ask a moderator", discord.ButtonStyle.primary),
        "approve": ("Approve", discord.ButtonStyle.success),
        "deny": ("Deny", discord.ButtonStyle.danger),
    }

    def __init__(self, action: str, token: str) -> None:
        label, style = self.LABELS[action]
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"imagine:{action}:{token}"))
        self.action, self.token = action, token

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(match["action"], match["token"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _answered(interaction, lambda handlers: handlers.on_approval_button(interaction, self.action, self.token))


class EditModal(discord.ui.Modal, title="Edit image"):
    instruction: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
        label="What should change?", style=discord.TextStyle.paragraph, max_length=2000
    )

    def __init__(self, handlers: Handlers, target: discord.Message) -> None:
        super().__init__()
        self.handlers, self.target = handlers, target

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.handlers.on_edit_modal(interaction, self.target, self.instruction.value)

    # Modal's own on_error drops View's `item` argument; mypy holds it to View's.
    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        await self.handlers.on_interaction_error(interaction, error)


def _handlers(interaction: discord.Interaction) -> Handlers:
    """The handlers of the client the press came to (always an ImagineClient)."""
    return cast("ImagineClient", interaction.client).handlers


async def _answered(interaction: discord.Interaction, press: Callable[[Handlers], Awaitable[None]]) -> None:
    """Run a button's press; a failure ends in the handlers' one error handler. discord.py runs a
    dynamic item's callback outside every on_error hook and would only log what it raises: the
    user would get no answer, and an expected outage a traceback."""
    handlers = _handlers(interaction)
    try:
        await press(handlers)
    except Exception as exc:
        await handlers.on_interaction_error(interaction, exc)


def result_view(job_id: int, *, edit: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    # [Undo] only under an edit: the first image of a thread has nothing before it.
    for action in ("reroll", "4k", "undo", "delete") if edit else RESULT_ACTIONS:
        view.add_item(JobButton(action, job_id))
    return view


def approval_view(token: str, actions: tuple[str, ...]) -> discord.ui.View:
    """[Ask a moderator] (actions ("ask",)) or [Approve] [Deny] (("approve", "deny"))."""
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(ApprovalButton(action, token))
    return view


def confirm_view(outcome: NeedsConfirmation, token: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ConfirmButton("run", token, f"Run ({render.money(outcome.estimate_usd)})"))
    if outcome.flash_estimate_usd is not None:
        view.add_item(ConfirmButton("flash", token, f"Use Flash ({render.money(outcome.flash_estimate_usd)})"))
    return view
