"""Prompt checks that need no model: empty, too long.

Team banned-term lists join this module with the spend and quota policies.
"""

from __future__ import annotations

from bot.types import InvalidRequest

DEFAULT_MAX_PROMPT_CHARS = 2000


def check_prompt(prompt: str, *, max_chars: int = DEFAULT_MAX_PROMPT_CHARS) -> str:
    """The prompt to use (whitespace trimmed), or InvalidRequest saying what is wrong."""
    cleaned = prompt.strip()
    if not cleaned:
        raise InvalidRequest("Tell me what to draw, for example: /imagine a koi pond at dawn --ar 16:9")
    if len(cleaned) > max_chars:
        raise InvalidRequest(
            f"That prompt is {len(cleaned):,} characters; the limit is {max_chars:,}. Please shorten it."
        )
    return cleaned
