"""The /imagine slash command's shape: the prompt, its options, and one attachment option per
image a blend may carry (`image`, `image2`, `image3`...).

Discord has no "several files" option type, so a blend takes one ATTACHMENT option per image:
as many as the catalog's most generous model takes (its `max_reference_images`), within
Discord's 25 options a command may have. discord.py reads a command's options from its
callback's signature, so the callback gets one built for that count; the model asked for
refuses more than it takes, before anything is downloaded (bot.attachments).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord
from discord import app_commands

# Every aspect ratio some model in the catalog takes (Discord allows 25 choices).
RATIOS = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:4", "4:1", "1:8", "8:1"]
# The lanes by the names Slack's flags use (--relax, --batch, --priority); no choice is Standard.
LANE_CHOICES = [
    app_commands.Choice(name="relax (Flex): half price, within 15 minutes", value="flex"),
    app_commands.Choice(name="batch: half price, within hours", value="batch"),
    app_commands.Choice(name="priority: dearer, never shed", value="priority"),
]
# Discord's limit on a command's options.
MAX_OPTIONS = 25
DESCRIPTIONS = {
    "prompt": "What to draw",
    "aspect": "Aspect ratio",
    "size": "Image size",
    "model": "Model (pro is best, flash is cheaper)",
    "lane": "relax or batch: half price, slower; priority: dearer, never shed",
}

OnImagine = Callable[..., Awaitable[None]]


def image_option_names(count: int) -> list[str]:
    """`image`, `image2`, ... for `count` images, within Discord's option limit."""
    count = max(1, min(count, MAX_OPTIONS - len(DESCRIPTIONS)))
    return ["image", *(f"image{n}" for n in range(2, count + 1))]


def imagine_command(on_imagine: OnImagine, max_images: int) -> app_commands.Command[Any, ..., None]:
    """/imagine, calling `on_imagine(interaction, prompt, aspect, size, model, lane, images)`
    with the attachments given, in the order of their options."""
    names = image_option_names(max_images)

    async def imagine(interaction: discord.Interaction, prompt: str, **options: object) -> None:
        images = [options[name] for name in names if options.get(name) is not None]
        asked = (options.get(name) for name in ("aspect", "size", "model", "lane"))
        await on_imagine(interaction, prompt, *asked, images)

    optional = inspect.Parameter.KEYWORD_ONLY
    imagine.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction),
            inspect.Parameter(
                "prompt", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=app_commands.Range[str, 1, 2000]
            ),
            *(inspect.Parameter(n, optional, default=None, annotation=str | None) for n in ("aspect", "size")),
            *(inspect.Parameter(n, optional, default=None, annotation=str | None) for n in ("model", "lane")),
            *(inspect.Parameter(n, optional, default=None, annotation=discord.Attachment | None) for n in names),
        ]
    )
    described = app_commands.describe(**DESCRIPTIONS, **_image_descriptions(names))(imagine)
    chosen = app_commands.choices(
        aspect=_choices(RATIOS),
        size=_choices(["512", "1K", "2K", "4K"]),
        model=_choices(["pro", "flash", "lite"]),
        lane=LANE_CHOICES,
    )(described)
    command: app_commands.Command[Any, ..., None] = app_commands.command(
        name="imagine", description="Make an image from a prompt"
    )(chosen)
    return app_commands.guild_only()(command)


def _image_descriptions(names: Sequence[str]) -> dict[str, str]:
    first = "An image to edit or use as a reference"
    return {name: first if n == 0 else f"Image {n + 1} to blend in" for n, name in enumerate(names)}


def _choices(values: list[str]) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=v, value=v) for v in values]
