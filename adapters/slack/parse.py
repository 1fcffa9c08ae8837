"""`/imagine a koi pond --ar 16:9 --size 2K` -> prompt and options.

Options may come anywhere in the text. Slack and macOS turn a typed "--"
into an em or en dash, so "—ar" is read as "--ar".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.types import InvalidRequest

USAGE = (
    "Usage: /imagine <prompt> [--ar W:H] [--size 1K|2K|4K] [--model pro|flash|lite] [--relax | --batch | --priority]"
)
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
