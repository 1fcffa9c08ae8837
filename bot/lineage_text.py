"""What chat says about an image's place in its thread, in plain words every adapter uses
(each escapes it and adds its own markup): [Undo]'s answer and /imagine-history, in a thread
(its lineage with prompts and costs) and outside one (the user's latest images).

The line under each posted image is Lineage.summary() (bot/gallery.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.gallery import Lineage
from bot.money import usd
from bot.types import GalleryImage

PROMPT_CHARS = 80  # a prompt in a list: one short line
NO_IMAGES = "You have no images yet. Make one with /imagine."


def quoted(prompt: str) -> str:
    """A prompt on one short line, in quotes."""
    flat = re.sub(r"\s+", " ", prompt).strip()
    return f'"{flat if len(flat) <= PROMPT_CHARS else flat[: PROMPT_CHARS - 1] + "…"}"'


def place(edit_number: int) -> str:
    return "the original" if edit_number == 0 else f"edit {edit_number}"


def undone(image: GalleryImage, now_latest: Lineage) -> str:
    """After [Undo] on `image`: what the thread shows now (follows the presser's mention)."""
    back = now_latest.edit_number
    return (
        f"undid {place(back + 1)} ({quoted(image.prompt)}): the thread's latest image is {place(back)} again "
        f"({quoted(now_latest.image.prompt)}), so the next reply here edits that one. "
        f"Nothing was charged; the thread total stays {usd(now_latest.thread_micros)}."
    )


def history(lineage: Lineage) -> str:
    """A thread's images in reading order (each, then its edits), the current one marked."""
    count = len(lineage.steps)
    lines = [f"This thread: {count} image{'s' if count != 1 else ''} · thread total {usd(lineage.thread_micros)}"]
    for step in lineage.steps:
        notes = [usd(step.image.cost_micros)]
        if step.image.deleted:
            notes.append("deleted")
        if step.current:
            notes.append("latest: the next reply edits this one")
        what = "original" if step.depth == 0 else f"edit {step.depth}"
        lines.append(f"{'  ' * step.depth}• {what}: {quoted(step.image.prompt)} · {' · '.join(notes)}")
    return "\n".join(lines)


def recent(images: Sequence[GalleryImage]) -> str:
    """A user's latest images, newest first."""
    if not images:
        return NO_IMAGES
    lines = [f"Your last {len(images)} image{'s' if len(images) != 1 else ''} (newest first):"]
    for image in images:
        edit = " · edit" if image.parent_image_id is not None else ""
        lines.append(f"• {quoted(image.prompt)}{edit} · {image.model} {image.size} · {usd(image.cost_micros)}")
    return "\n".join(lines)
