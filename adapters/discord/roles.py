"""A Discord member's roles as the core reads them (per-role limits, bot.roles): Discord sends
them with every interaction and message, so nothing is looked up."""

from __future__ import annotations

from typing import Any

import discord

from policies.roles import PlatformRole


def member_standing(user: discord.Member | discord.User) -> dict[str, Any]:
    """`roles` (each role's id and name; @everyone too, whose id is the server's) and
    `platform_admin` (Manage Server or Administrator in the server), as request fields.

    A bare User (no member data came with the event) has unknown roles (None): the core
    then applies the strictest role limits rather than none."""
    if not isinstance(user, discord.Member):
        return {"roles": None, "platform_admin": False}
    permissions = user.guild_permissions
    return {
        "roles": tuple(PlatformRole(str(role.id), role.name) for role in user.roles),
        "platform_admin": bool(permissions.manage_guild or permissions.administrator),
    }
