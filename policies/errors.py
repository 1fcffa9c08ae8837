"""The one error policies raise: a request the user must change.

It lives here, not in bot/, so that policies/ imports nothing from bot/ (bot
depends on policies, never the other way round); bot.types re-exports it.
"""


class InvalidRequest(Exception):
    """Bad input from a user; the message is safe to show them as is."""
