"""Which models and sizes a channel may use, and what happens near a budget's edge."""

from __future__ import annotations

from bot.types import InvalidRequest
from policies.config import TeamPolicy


class NotAllowedHere(InvalidRequest):
    pass


def check_channel(policy: TeamPolicy, channel: str, model_alias: str, size: str) -> None:
    rule = policy.channels.get(channel)
    if rule is None:
        return
    if rule.models is not None and model_alias not in rule.models:
        raise NotAllowedHere(f"{model_alias} isn't available in this channel. Use: {', '.join(rule.models)}.")
    if rule.sizes is not None and size not in rule.sizes:
        raise NotAllowedHere(f"{size} isn't available in this channel. Use: {', '.join(rule.sizes)}.")


# Near the soft threshold, a "downgrade" team gets this model instead of Pro.
DOWNGRADE = {"pro": "flash"}
