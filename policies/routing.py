"""Which models and sizes a channel may use, and what happens near a budget's edge."""

from __future__ import annotations

from decimal import Decimal

from policies.config import TeamPolicy
from policies.errors import InvalidRequest


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


def downgrade_for(policy: TeamPolicy, model_alias: str) -> str | None:
    """Near a budget's soft threshold: the cheaper model a "downgrade" team switches to,
    or None when the team is asked first (its policy, or no cheaper model)."""
    return DOWNGRADE.get(model_alias) if policy.over_soft_threshold == "downgrade" else None


def over_confirm_limit(policy: TeamPolicy, estimate_usd: Decimal) -> bool:
    """Whether one request costs enough to need a confirmation on its own (the per-image limit)."""
    return policy.confirm_above_usd is not None and estimate_usd > policy.confirm_above_usd
