"""`/imagine a koi pond --ar 16:9 --size 2K` -> prompt and options.

Options may come anywhere in the text. Slack and macOS turn a typed "--"
into an em or en dash, so "—ar" is read as "--ar".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.types import InvalidRequest

USAGE = (
    "Usage: /imagine <prompt> [--ar W:H] [--size 1K|2K|4K] [--model pro|flash|lite] [--relax | --batch | --priority]"
)
# A new request with images: slash commands carry no files, so it is a message that mentions the bot.
MENTION_USAGE = (
    "Mention me with the prompt and attach the images to use or blend: "
    "@imagine the three of them at a picnic --ar 16:9 (options as after /imagine)."
)
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_VALUED = {"--ar": "aspect_ratio", "--aspect": "aspect_ratio", "--size": "size", "--model": "model"}
# Lanes: --relax is Flex (half price, minutes), --batch the Batch API (half price, hours).
_LANES = {"--relax": "flex", "--batch": "batch", "--priority": "priority"}
_DASHES = re.compile(r"(?<!\S)[\u2014\u2013](?=[a-z])", re.IGNORECASE)


@dataclass(frozen=True)
class ImagineText:
    prompt: str
    aspect_ratio: str | None = None
    size: str | None = None
    model: str | None = None
    lane: str | None = None  # "flex", "batch" or "priority"; None: Standard

    @property
    def relax(self) -> bool:
        return self.lane == "flex"

    def options(self) -> dict[str, Any]:
        """The request's options, by the names ImagineRequest gives them."""
        return {"aspect_ratio": self.aspect_ratio, "size": self.size, "model": self.model, "lane": self.lane}


def parse_imagine(text: str) -> ImagineText:
    tokens = _DASHES.sub("--", text or "").split()
    words: list[str] = []
    options: dict[str, object] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("--") or token == "--":
            words.append(token)
            continue
        name, _, value = token.lower().partition("=")
        if name in _LANES:
            if options.get("lane", _LANES[name]) != _LANES[name]:
                raise InvalidRequest(f"Choose one of --relax, --batch and --priority. {USAGE}")
            options["lane"] = _LANES[name]
        elif name in _VALUED:
            if not value:
                if i >= len(tokens) or tokens[i].startswith("--"):
                    raise InvalidRequest(f"{name} needs a value. {USAGE}")
                value = tokens[i]
                i += 1
            options[_VALUED[name]] = value
        else:
            raise InvalidRequest(f"I don't know the option {name}. {USAGE}")
    return ImagineText(prompt=" ".join(words), **options)  # type: ignore[arg-type]


def mention_text(text: str, bot_user_id: str | None) -> str:
    """A message's text without the bot's mention (`<@UBOT> a koi pond` -> "a koi pond");
    other people's mentions stay part of the prompt. With the bot's id unknown, a leading
    mention is taken for it (Slack puts the one typed first there)."""
    if bot_user_id:
        return " ".join(
            m for m in _MENTION.sub(lambda m: " " if m.group(1) == bot_user_id else m.group(0), text).split()
        )
    return _MENTION.sub("", text.lstrip(), count=1).strip() if _MENTION.match(text.lstrip()) else text.strip()


def team_of(body: dict) -> str:
    """The workspace an interaction or event came from (a button's body names it in `team`, or
    only in its user's `team_id`)."""
    return (body.get("team") or {}).get("id") or body["user"].get("team_id")
