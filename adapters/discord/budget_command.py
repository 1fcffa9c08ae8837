"""/imagine-budget on Discord: the subcommands `show` and `set`, as Discord users expect.

`usd` is a NUMBER option and `period` a choice, so Discord's own client checks them
(range, type, choices) before anything reaches the bot; the core checks again and
decides (moderators only, the amount, the period)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

from adapters.discord import render
from bot.money.budgets import MAX_BUDGET_USD, Period
from bot.types import Refused

if TYPE_CHECKING:
    from adapters.discord.commands import Handlers

# One cent: Discord's min_value is inclusive, and a budget of $0 would let nothing run.
MIN_USD = 0.01
MAX_USD = float(MAX_BUDGET_USD)


class BudgetCommands(app_commands.Group):
    def __init__(self, handlers: Handlers) -> None:
        super().__init__(
            name="imagine-budget",
            description="Moderators: show or set the server's budget",
            # Budgets belong to a server: not offered in DMs (guild_only= alone sends no `contexts`).
            allowed_contexts=app_commands.AppCommandContext(guild=True),
            default_permissions=discord.Permissions(manage_guild=True),
        )
        self._handlers = handlers

    @app_commands.command(name="show", description="The server's budgets and what is spent")
    async def show(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        statuses = await self._handlers.service.show_budgets(self._handlers.caller(interaction))
        text = statuses.detail if isinstance(statuses, Refused) else render.budgets(statuses)
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="set", description="Set the server's budget")
    @app_commands.describe(usd="The limit in dollars, e.g. 50 or 12.5", period="Per day, week or month")
    @app_commands.choices(period=[app_commands.Choice(name=p.value, value=p.value) for p in Period])
    async def set(
        self,
        interaction: discord.Interaction,
        usd: app_commands.Range[float, MIN_USD, MAX_USD],
        period: str = Period.MONTH.value,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        # The shortest text of the float (12.5, not 12.4999...): the core parses it exactly.
        budget = await self._handlers.service.set_budget(self._handlers.caller(interaction), str(usd), period)
        text = (
            budget.detail
            if isinstance(budget, Refused)
            else f"Server budget set to {render.usd(budget.limit_micros)} per {budget.period.value}."
        )
        await interaction.followup.send(text, ephemeral=True)
