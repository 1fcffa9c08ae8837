"""Discord's side of an image's thread lineage: [Undo] under an edit, and /imagine-history
(in an image's thread: its lineage with prompts and costs; anywhere else: the user's last 10
images). The words are the core's (bot/lineage_text.py); only [Undo]'s outcome is said in the
thread, for everyone there, and a refusal only to the one who pressed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

from adapters.discord import render
from adapters.discord.delivery import PLATFORM, thread_keys
from bot import lineage_text
from bot.types import Refused

if TYPE_CHECKING:
    from adapters.discord.commands import Handlers


async def on_undo(handlers: Handlers, interaction: discord.Interaction, job_id: int) -> None:
    await interaction.response.defer(thinking=True)
    undone = await handlers.service.undo(job_id, handlers.caller(interaction), PLATFORM, thread_keys)
    if isinstance(undone, Refused):
        await interaction.delete_original_response()
        await interaction.followup.send(render.clip(undone.detail), ephemeral=True)
        return
    said = discord.utils.escape_mentions(lineage_text.undone(undone.image, undone.now_latest))
    await interaction.edit_original_response(content=render.clip(f"↩️ <@{interaction.user.id}> {said}"))


def history_command(handlers: Handlers) -> app_commands.Command:
    @app_commands.command(
        name="imagine-history", description="In an image's thread: its images and costs; elsewhere: your last 10"
    )
    @app_commands.guild_only()
    async def history(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await _history(handlers, interaction)
        await interaction.followup.send(render.clip(discord.utils.escape_mentions(text)), ephemeral=True)

    return history


async def _history(handlers: Handlers, interaction: discord.Interaction) -> str:
    team, channel = str(interaction.guild_id), interaction.channel
    if isinstance(channel, discord.Thread):  # in a thread, the interaction's channel is the thread
        thread = str(channel.id)
        lineage = await handlers.service.thread_history(team, PLATFORM, (thread, thread))
        if isinstance(lineage, Refused):
            return lineage.detail
        if lineage is not None:
            return lineage_text.history(lineage)
    images = await handlers.service.recent_images(team, str(interaction.user.id), PLATFORM)
    return images.detail if isinstance(images, Refused) else lineage_text.recent(images)
