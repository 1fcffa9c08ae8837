"""Prompt checks that need no model: empty, too long, a team's banned terms."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from policies.errors import InvalidRequest

DEFAULT_MAX_PROMPT_CHARS = 2000


class ModerationRefusal(InvalidRequest):
    """A prompt refused before it cost anything; `reason` is what gets recorded."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@lru_cache(maxsize=256)
def _banned_pattern(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    cleaned = [as_matched(t).strip() for t in terms if as_matched(t).strip()]
    if not cleaned:
        return None
    # Whole words: "art" must not match "party"; lookarounds also work for terms
    # that start or end with punctuation, where \b would not. A space in a term matches any
    # run of spaces, so "blood  bath" is still "blood bath".
    alternatives = "|".join(
        r"\s+".join(re.escape(word) for word in t.split()) for t in sorted(cleaned, key=len, reverse=True)
    )
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


# Letters that show as nothing (Hangul fillers): category Lo, so dropped by code point.
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def as_matched(text: str) -> str:
    """Text as banned terms are matched against it. NFKD first, so full-width letters,
    ligatures and no-break spaces read as the plain letters and spaces they show, and accents
    come apart from their letters; then everything that shows nothing or only marks a letter
    is dropped: format characters (Cf: zero-width spaces and joiners, soft hyphens, BOMs),
    combining marks (Mn, Me: strike-throughs, the combining grapheme joiner, variation
    selectors) and the Hangul fillers."""
    return "".join(
        ch
        for ch in unicodedata.normalize("NFKD", text)
        if unicodedata.category(ch) not in ("Cf", "Mn", "Me") and ch not in INVISIBLE_LETTERS
    )


def printable(text: str) -> str:
    """Text without control characters (NUL and the like) except newlines and tabs:
    they mean nothing to a model, and a database may refuse them."""
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


def check_prompt(
    prompt: str, *, max_chars: int = DEFAULT_MAX_PROMPT_CHARS, banned_terms: tuple[str, ...] | list[str] = ()
) -> str:
    """The prompt to use (whitespace trimmed), or ModerationRefusal saying what is wrong."""
    cleaned = printable(prompt).strip()
    if not cleaned:
        raise ModerationRefusal("Tell me what to draw, for example: /imagine a koi pond at dawn --ar 16:9", "empty")
    if len(cleaned) > max_chars:
        raise ModerationRefusal(
            f"That prompt is {len(cleaned):,} characters; the limit is {max_chars:,}. Please shorten it.", "too_long"
        )
    pattern = _banned_pattern(tuple(banned_terms))
    if pattern is not None and (match := pattern.search(as_matched(cleaned))):
        raise ModerationRefusal(
            f'Your team doesn\'t allow "{match.group(0)}" in prompts. Nothing was charged.', "banned_term"
        )
    return cleaned
