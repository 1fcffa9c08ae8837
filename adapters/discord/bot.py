"""The Discord adapter's old home, kept so imports of it keep working while
branches merge: the adapter is in adapters/discord/client.py, the commands
in commands.py."""

from adapters.discord.client import DiscordAdapter
from adapters.discord.commands import RATIOS

__all__ = ["DiscordAdapter", "RATIOS"]
